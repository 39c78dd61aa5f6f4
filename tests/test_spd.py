"""SPD: rendering maps, boxes <-> frames, training data, and `vcopy train spd` end to end (small)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tests.conftest import run_vcopy
from vcopy.localize.spd import SimilarityPatternDetector, boxes_to_frames, load_weights, render_maps
from vcopy.localize.spd_train import CopyTruth, Piece, copy_boxes


def test_render_keeps_thin_bands_and_stretches_small_maps() -> None:
    big = np.full((1000, 1500), -0.1, dtype=np.float32)
    big[np.arange(500), np.arange(500) + 700] = 0.8  # a one-frame-wide diagonal
    small = np.full((20, 30), 0.3, dtype=np.float32)
    images = render_maps([big, small], 64)
    assert images.shape == (2, 1, 64, 64)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    # max pooling keeps the band: every pooled row in its span is bright somewhere
    band_rows = images[0, 0, : 64 * 500 // 1000].amax(dim=1)
    assert torch.all(band_rows == 1.0)
    assert torch.allclose(images[1], torch.full((1, 64, 64), 0.5))


def test_box_pixels_map_back_to_frames() -> None:
    assert boxes_to_frames(np.array([0, 0, 64, 64]), (600, 1800), 64) == ((0, 599), (0, 1799))
    # x = reference axis: pixels 32..48 of 64 on 1800 frames are frames 900..1349
    assert boxes_to_frames(np.array([32, 16, 48, 32]), (600, 1800), 64) == ((150, 299), (900, 1349))
    # a stretched small map: pixel boxes round outwards to whole frames
    assert boxes_to_frames(np.array([10, 10, 20, 20]), (16, 16), 64) == ((2, 4), (2, 4))


def _piece(key: str, n: int) -> Piece:
    return Piece(key, np.zeros((n, 4), np.float32), np.arange(n, dtype=float), np.zeros(n))


def test_copy_boxes_follow_pieces_laid_end_to_end() -> None:
    copies = {"q": [CopyTruth("r", 2.0, 5.0, 10.0, 13.0)]}
    query = [_piece("x", 7), _piece("q", 8)]
    reference = [_piece("r", 20), _piece("y", 5), _piece("r", 20)]  # the reference twice
    boxes = copy_boxes(query, reference, copies)
    np.testing.assert_array_equal(boxes, [[9, 12, 10, 13], [9, 12, 35, 38]])
    assert copy_boxes([_piece("x", 7)], reference, copies).shape == (0, 4)


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
    assert weights["descriptor"].startswith("efficientnet_lite0/")
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
