"""SPD: rendering maps, boxes <-> frames, training data, and `vcopy train spd` end to end (small)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_vcopy
from vcopy.errors import VcopyError
from vcopy.features import DEFAULT_DESCRIPTOR
from vcopy.localize.spd import (
    Rendering,
    SimilarityPatternDetector,
    canvas_width,
    refine_span,
    render_maps,
    shipped_weights_path,
)
from vcopy.localize.spd_model import load_weights
from vcopy.train.data import CopyTruth, Piece, copy_boxes


def _synthetic_spd(**options: float) -> SimilarityPatternDetector:
    """SPD with the weights for EfficientNet-Lite0 maps, which these synthetic maps imitate (a band
    near contrast 0.6 over a background near -0.1); SPD on SSCD maps is tested on real videos."""
    return SimilarityPatternDetector(weights_path=shipped_weights_path("efficientnet_lite0"), **options)  # type: ignore[arg-type]


def test_render_keeps_thin_bands_and_stretches_small_maps() -> None:
    big = np.full((1000, 1500), -0.1, dtype=np.float32)
    big[np.arange(500), np.arange(500) + 700] = 0.8  # a one-frame-wide diagonal
    small = np.full((20, 30), 0.3, dtype=np.float32)
    plans = [Rendering.plan(m.shape, 64, 64) for m in (big, small)]
    images = render_maps([big, small], plans)
    assert images.shape == (2, 1, 64, 64)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    # 1000 rows at 16 frames per pixel: 63 pixels, then padding (0)
    assert plans[0].y.pixels == 63 and np.all(images[0, 0, 63] == 0)
    # max pooling keeps the band: every pooled row in its span is bright somewhere
    assert np.all(images[0, 0, : 500 // 16].max(axis=1) == 1.0)
    # a uniform map is all background: its median is drawn at contrast -0.1, image value 0.1
    np.testing.assert_allclose(images[1], np.full((1, 64, 64), 0.1), atol=1e-6)


def test_a_faint_band_in_a_long_map_is_found_by_the_second_look_and_in_windows() -> None:
    rng = np.random.default_rng(0)
    contrast = rng.normal(-0.1, 0.06, (1200, 1800)).astype(np.float32)  # 20 x 30 minutes at 1 fps
    band = np.arange(120)  # a 2-minute copy, faint (contrast 0.3 +- 0.1) and one frame wide
    contrast[540 + band, 840 + band] = 0.3 + rng.normal(0, 0.1, 120)
    spd = _synthetic_spd()
    found = [d for d in spd.detect([contrast])[0] if d.score >= spd.match_threshold]
    assert len(found) == 1
    (r0, r1), (c0, c1) = found[0].rows, found[0].cols
    assert abs(r0 - 540) <= 6 and abs(r1 - 659) <= 6 and abs(c0 - 840) <= 6 and abs(c1 - 959) <= 6
    whole = spd._detect_once([contrast], [spd.rendering(contrast.shape)], [spd.score_floor])[0]
    assert all(d.score < spd.match_threshold for d in whole)  # too faint drawn whole at one look
    in_windows = _synthetic_spd(second_look_score=1.0).detect([contrast])[0]  # windows alone find it too
    assert [d for d in in_windows if d.score >= spd.match_threshold]


def test_crops_of_a_second_look_share_one_network_call() -> None:
    rng = np.random.default_rng(1)
    square = rng.normal(-0.1, 0.06, (240, 240)).astype(np.float32)
    square[60 + np.arange(120), 60 + np.arange(120)] = 0.6
    wide = rng.normal(-0.1, 0.06, (240, 480)).astype(np.float32)  # a copy played at half speed
    wide[60 + np.arange(120), 120 + 2 * np.arange(120)] = 0.6
    wide[60 + np.arange(120), 121 + 2 * np.arange(120)] = 0.6
    spd = _synthetic_spd()
    plans = [spd.rendering(m.shape) for m in (square, wide)]
    assert plans[0].canvas != plans[1].canvas
    calls = []
    network = spd.network

    def counted(images: np.ndarray) -> np.ndarray:
        calls.append(images.shape)
        return network(images)

    spd.network = counted
    found = spd._detect_once([square, wide], plans, [spd.score_threshold] * 2, pad_to_widest=True)
    assert calls == [(2, 1, 64, 128)]
    apart = spd._detect_once([square, wide], plans, [spd.score_threshold] * 2)
    assert len(calls) == 3  # one call per canvas
    truth = [((60, 179), (60, 179)), ((60, 179), (120, 360))]  # (rows, cols) of each band
    for together, alone, (rows, cols) in zip(found, apart, truth, strict=True):
        assert together and alone  # the padded square map is found as on its own canvas
        (r0, r1), (c0, c1) = together[0].rows, together[0].cols
        assert abs(r0 - rows[0]) <= 3 and abs(r1 - rows[1]) <= 3
        assert abs(c0 - cols[0]) <= 4 and abs(c1 - cols[1]) <= 4


def test_a_box_end_is_a_strong_frame_or_two_in_a_row() -> None:
    strength = np.array([0.0, 0.9, 0.0, 0.0, 0.5, 0.6, 0.7, 0.0, 0.8, 0.0, 0.2, 0.3, 0.0])
    assert refine_span(strength, 0.15) == (1, 11)
    assert refine_span(strength, 0.15, min_run=2) == (4, 11)  # the lone frames 1 and 8 are noise
    assert refine_span(strength, 0.15, min_run=3) == (4, 6)
    assert refine_span(np.array([0.9, 0.0, 0.9]), 0.15, min_run=2) is None


def test_a_lone_bright_cell_does_not_extend_a_band_on_a_coarse_map() -> None:
    rng = np.random.default_rng(1)
    contrast = rng.normal(-0.1, 0.03, (600, 900)).astype(np.float32)  # drawn at 10 and 8 frames/px
    band = np.arange(100)
    contrast[200 + band, 400 + band] = 0.6
    contrast[197, 397] = 0.6  # a noise cell on the band's line, two frames before it starts
    spd = _synthetic_spd()
    found = [d for d in spd.detect([contrast])[0] if d.score >= spd.match_threshold]
    assert len(found) == 1
    assert found[0].rows == (200, 299) and found[0].cols == (400, 499)


@pytest.mark.parametrize("content", [b"", b"junk", b"\x80\x02}q\x00."])
def test_a_file_that_is_not_spd_weights_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "spd.pt"
    path.write_bytes(content)
    with pytest.raises(VcopyError, match=r"spd\.pt: not (readable )?SPD weights"):
        load_weights(path)


def test_long_maps_get_wider_canvases_with_the_long_axis_along_x() -> None:
    assert canvas_width((1200, 1800), 64, 4) == 128  # 19 frames per pixel on both axes
    assert canvas_width((108, 3602), 64, 4) == 256  # capped at 4x
    assert canvas_width((60, 60), 64, 4) == 64
    tall = Rendering.plan((3602, 108), 64, 256)
    assert tall.transposed and tall.query_axis.frames == 3602 and tall.reference_axis.frames == 108


def test_box_pixels_map_back_to_frames() -> None:
    wide = Rendering.plan((600, 1800), 64, 64)  # 10 and 29 frames per pixel
    assert wide.frames(np.array([0, 0, 64, 64])) == ((0, 599), (0, 1799))
    # x = reference axis: pixels 32..48 are frames 928..1391, y pixels 16..32 frames 160..319
    assert wide.frames(np.array([32, 16, 48, 32])) == ((160, 319), (928, 1391))
    # a stretched small map: pixel boxes round outwards to whole frames
    assert Rendering.plan((16, 16), 64, 64).frames(np.array([10, 10, 20, 20])) == ((2, 4), (2, 4))
    # a tall map is drawn transposed: x is the query axis
    tall = Rendering.plan((1800, 600), 64, 64)
    assert tall.frames(np.array([32, 16, 48, 32])) == ((928, 1391), (160, 319))
    # boxes for training go the other way and round-trip
    x, y, w, h = tall.box_xywh((928, 1391), (160, 319))
    assert tall.frames(
        np.array([(x - w / 2) * 64, (y - h / 2) * 64, (x + w / 2) * 64, (y + h / 2) * 64])
    ) == (
        (928, 1391),
        (160, 319),
    )


def _piece(key: str, n: int) -> Piece:
    return Piece(key, np.zeros((n, 4), np.float32), np.arange(n, dtype=float), np.zeros(n))


def test_copy_boxes_follow_pieces_laid_end_to_end() -> None:
    copies = {"q": [CopyTruth("r", 2.0, 5.0, 10.0, 13.0)]}
    query = [_piece("x", 7), _piece("q", 8)]
    reference = [_piece("r", 20), _piece("y", 5), _piece("r", 20)]  # the reference twice
    boxes = copy_boxes(query, reference, copies)
    np.testing.assert_array_equal(boxes, [[9, 12, 10, 13], [9, 12, 35, 38]])
    assert copy_boxes([_piece("x", 7)], reference, copies).shape == (0, 4)


@pytest.mark.slow
def test_train_resume_and_query_with_the_weights(small_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ("train", "spd", small_bench.parent, "--out", out, "--steps-per-epoch", "3", "--batch-size", "4")
    proc = run_vcopy(*common, "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "validation segment F1" in proc.stderr
    proc = run_vcopy(*common, "--epochs", "2", "--resume")
    assert proc.returncode == 0, proc.stderr
    log = [json.loads(line) for line in (out / "train-log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    weights = load_weights(out / "spd.pt")
    assert weights["descriptor"].startswith(f"{DEFAULT_DESCRIPTOR}/")
    assert "vcopy train spd" in weights["command"] and weights["dataset"]["split"] == "train"
    assert 0 < weights["score_threshold"] < 1
    detector = SimilarityPatternDetector(weights_path=out / "spd.pt")
    assert detector.input_size == 64

    mismatched = run_vcopy(*common, "--epochs", "3", "--resume", "--batch-size", "8")
    assert mismatched.returncode != 0 and "other training settings" in mismatched.stderr

    lib, report = tmp_path / "lib", tmp_path / "report.json"
    root = small_bench.parent
    assert run_vcopy("index", root / "test" / "refs", "--library", lib).returncode == 0
    proc = run_vcopy(
        "query",
        root / "test" / "queries" / "q0000.mp4",
        "--library",
        lib,
        "--spd-weights",
        out / "spd.pt",
        "--json",
        report,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["localizer"] == "spd"
    assert any(m["name"] == "spd:spd.pt" for m in data["models"])
    assert data["parameters"]["localizer_settings"]["weights"] == str(out / "spd.pt")
    assert data["parameters"]["localizer_settings"]["second_look_score"] == 0.15


def test_a_short_band_in_a_long_map_is_drawn_in_windows_and_found_with_its_ends() -> None:
    rng = np.random.default_rng(2)
    contrast = rng.normal(-0.1, 0.05, (1500, 30)).astype(np.float32)  # a 25-minute upload, a 30-s reference
    band = np.arange(30)
    contrast[700 + band, band] = 0.55
    spd = _synthetic_spd()
    views = spd.views(contrast.shape)
    assert views[0] == ((0, 1500), (0, 30)) and len(views) > 20  # the whole map, then windows
    assert all(
        r1 - r0 == 64 and c1 - c0 == 30 for (r0, r1), (c0, c1) in views[1:]
    )  # 0.47 frames/px both ways
    found = [d for d in spd.detect([contrast])[0] if d.score >= spd.match_threshold]
    assert len(found) == 1
    (r0, r1), (c0, c1) = found[0].rows, found[0].cols
    assert abs(r0 - 700) <= 1 and abs(r1 - 729) <= 1 and c0 <= 1 and c1 >= 28
