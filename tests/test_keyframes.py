"""Key frames: selection, maps drawn back on the sampling grid, the differentiable drawing the joint
training uses, and the key-frame network through ONNX Runtime."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import Corpus, run_vcopy
from vcopy.errors import VcopyError
from vcopy.keyframes import (
    COVERAGE_THRESHOLD,
    GAP_CONTRAST,
    Coverage,
    create_keyframer,
    grid_axis,
    grid_map,
    holds_span,
    one_step_spans,
    span_ends,
    with_first,
)
from vcopy.keyframes.model import KeyFrameNet, NetConfig, export_onnx, load_net, weights_record
from vcopy.keyframes.ske import LearnedKeyFrames, SkeSettings
from vcopy.library import Library
from vcopy.localize.spd import Rendering, render_maps
from vcopy.train.config import CopyTrainConfig
from vcopy.train.copy import held_map
from vcopy.train.maps import draw_maps
from vcopy.video import sha256_file


def test_uniform_keeps_every_frame_and_unknown_names_are_refused() -> None:
    uniform = create_keyframer("uniform")
    assert uniform.name == "uniform" and list(uniform.select(np.zeros((5, 8)))) == [0, 1, 2, 3, 4]
    with pytest.raises(VcopyError, match="unknown key frames"):
        create_keyframer("sometimes")
    assert list(with_first(np.array([3, 1, 3]), 6)) == [0, 1, 3]


def test_a_map_between_key_frames_is_drawn_on_the_full_grid() -> None:
    q_times = np.array([0.5, 2.5, 3.5])  # grid rows 0, 2, 3 at 1 frame/s
    r_times = np.array([1.0, 4.0])  # grid columns 0, 3
    contrast = np.arange(6, dtype=np.float32).reshape(3, 2)
    source, times = grid_axis(q_times, one_step_spans(q_times, 1.0), 1.0)
    assert list(source) == [0, -1, 1, 2]
    np.testing.assert_allclose(times, [0.5, 1.5, 2.5, 3.5])
    full, q_full, r_full = grid_map(contrast, q_times, r_times, 1.0)
    assert full.shape == (4, 4)
    np.testing.assert_array_equal(full[[0, 2, 3]][:, [0, 3]], contrast)
    assert (full[1] == GAP_CONTRAST).all() and (full[:, 1:3] == GAP_CONTRAST).all()
    np.testing.assert_allclose(q_full, [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(r_full, [1.0, 2.0, 3.0, 4.0])
    same = grid_map(contrast[:2], np.array([0.0, 1.0]), np.array([5.0, 6.0]), 1.0)
    assert same[0] is contrast[:2] or np.shares_memory(same[0], contrast)  # nothing left out: as it is


def test_coverage_keeps_a_frame_when_the_picture_has_moved_on_and_it_holds_its_span() -> None:
    e = np.eye(3, dtype=np.float32)
    drift = np.array([0.9, 0.436, 0.0], np.float32)  # cosine 0.9 with e0: still covered at 0.8
    vectors = np.stack([e[0], e[0], drift, e[1], e[1], e[2], e[2], e[2]])
    coverage = create_keyframer("coverage")
    assert coverage.name == f"coverage/{COVERAGE_THRESHOLD:g}" and coverage.models == []
    rows = coverage.select(vectors)
    assert list(rows) == [0, 3, 5]  # the first frame, then each new picture
    assert list(Coverage(0.95).select(vectors)) == [0, 2, 3, 5]
    assert holds_span(coverage.name) and not holds_span("ske/1a2b3c4d")
    times = np.arange(8.0)
    ends = span_ends(times, rows, 1.0, holds=True)
    np.testing.assert_allclose(ends, [3, 5, 8])  # the last key frame stands for the rest of the video
    np.testing.assert_allclose(span_ends(times, rows, 1.0, holds=False), [1, 4, 6])
    contrast = np.array([[1.0, 2.0, 3.0]], np.float32)  # one query frame x key frames 0, 3, 5
    held, _, r_full = grid_map(contrast, np.array([0.0]), times[rows], 1.0, ends)
    np.testing.assert_array_equal(held, [[1, 1, 1, 2, 2, 3, 3, 3]])  # each key frame fills its span
    np.testing.assert_allclose(r_full, np.arange(8))
    gap, _, _ = grid_map(contrast, np.array([0.0]), times[rows], 1.0)
    np.testing.assert_array_equal(gap[0] == GAP_CONTRAST, [0, 1, 1, 0, 1, 0])


@pytest.mark.parametrize("shape", [(40, 30), (300, 90), (1000, 1500), (64, 200), (7, 129)])
def test_the_differentiable_drawing_is_the_inference_drawing(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    maps = [rng.normal(-0.1, 0.2, shape).astype(np.float32)]
    plans = [Rendering.plan(shape, 64, 128)]
    expected = render_maps(maps, plans)
    drawn = draw_maps([torch.from_numpy(m) for m in maps], plans).numpy()
    np.testing.assert_allclose(drawn, expected, atol=1e-6)


def test_the_training_map_holds_key_frames_and_passes_the_soft_hold_gradient() -> None:
    config = CopyTrainConfig(uniform_period=4, threshold=0.5)
    p = torch.tensor([0.1, 0.9, 0.2, 0.6, 0.3, 0.1, 0.1, 0.1, 0.1], requires_grad=True)
    dense = torch.arange(18.0).reshape(2, 9)
    held, mask, soft = held_map(dense, p, config)
    assert mask.tolist() == [1, 1, 0, 1, 1, 0, 0, 0, 1]  # uniform 0, 4, 8, keys 1, 3
    assert held[0].tolist() == [0, 1, 1, 3, 4, 4, 4, 4, 8]  # each key frame fills its span
    assert soft[2].item() == pytest.approx(0.2) and soft[4].item() == 1.0
    column = torch.zeros(2, 9)
    column[:, 2] = 1.0
    (held * column).sum().backward()
    # column 2 shows key frame 1; keeping 1 or 2 changes it by C_j - H_{j-1}: 1 per row, both rows
    assert p.grad is not None and p.grad.tolist() == [0, 2, 2, 0, 0, 0, 0, 0, 0]
    grid, _, _ = grid_map(
        dense[:, [0, 1, 3, 4, 8]].numpy(),
        np.arange(2.0),
        np.array([0.0, 1, 3, 4, 8]),
        1.0,
        span_ends(np.arange(9.0), np.array([0, 1, 3, 4, 8]), 1.0, holds=True),
    )
    np.testing.assert_array_equal(grid, held.detach().numpy())  # as inference draws it


def test_the_onnx_network_selects_as_torch_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = KeyFrameNet(NetConfig(dim=16, hidden=8, dilations=(1, 2))).eval()
    settings = SkeSettings(threshold=0.5, uniform_period=5, descriptor="test/16")
    path = tmp_path / "ske.onnx"
    path.write_bytes(export_onnx(net, settings))
    vectors = torch.nn.functional.normalize(torch.randn(23, 16), dim=1)
    with torch.no_grad():
        p = net(vectors[None])[0].numpy()
    learned = LearnedKeyFrames(path)
    np.testing.assert_allclose(learned.probabilities(vectors.numpy()), p, atol=1e-5)
    expected = with_first(np.concatenate([np.flatnonzero(p >= 0.5), np.arange(0, 23, 5)]), 23)
    np.testing.assert_array_equal(learned.select(vectors.numpy()), expected)
    assert learned.name.startswith("ske/") and learned.spd_weights == tmp_path / "spd.onnx"
    torch.save(weights_record(net, settings, {}), tmp_path / "ske.pt")
    _, again_settings, _ = load_net(tmp_path / "ske.pt")
    assert again_settings == settings
    bad = weights_record(net, settings, {})
    bad["net_config"]["hidden"] = 10**7
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(VcopyError, match="not SKE weights made by vcopy"):
        load_net(tmp_path / "bad.pt")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(VcopyError, match="not SKE weights"):
        LearnedKeyFrames(tmp_path / "junk.onnx")


@pytest.mark.slow
def test_train_copy_resume_then_index_and_query_with_key_frames(small_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = (
        "train",
        "copy",
        small_bench.parent,
        "--out",
        out,
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "4",
    )
    proc = run_vcopy(*common, "--epochs", "1")
    assert proc.returncode == 0, proc.stderr
    assert "kept" in proc.stderr and "validation segment F1" in proc.stderr
    proc = run_vcopy(*common, "--epochs", "2", "--resume")
    assert proc.returncode == 0, proc.stderr
    log = [json.loads(line) for line in (out / "train-log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2] and all(0 < e["details"]["key_rate"] <= 1 for e in log)
    mismatched = run_vcopy(*common, "--epochs", "3", "--resume", "--key-rate", "0.5")
    assert mismatched.returncode != 0 and "other training settings" in mismatched.stderr

    refs, lib, uniform_lib = tmp_path / "refs", tmp_path / "lib", tmp_path / "uniform"
    refs.mkdir()
    for ref in sorted((small_bench.parent / "test" / "refs").glob("*.mp4"))[:3]:  # three are enough
        shutil.copyfile(ref, refs / ref.name)
    proc = run_vcopy("index", refs, "--library", lib, "--keyframe-weights", out / "ske.onnx")
    assert proc.returncode == 0, proc.stderr
    assert run_vcopy("index", refs, "--library", uniform_lib).returncode == 0
    with Library.open(lib) as library, Library.open(uniform_lib) as uniform:
        assert library.pipeline_spec.keyframes == LearnedKeyFrames(out / "ske.onnx").name
        assert uniform.pipeline_spec.keyframes == "uniform"
        assert library.vector_count < uniform.vector_count  # only key frames are stored
        video = library.videos()[0]
        same = uniform.video_by_path(video.path)
        assert same is not None
        kept, every = library.frames_of(video.id)[1], uniform.frames_of(same.id)[1]
        assert kept[0] == every[0]  # the first frame is kept
        assert set(kept) <= set(every)
    refused = run_vcopy("index", refs, "--library", lib, "--keyframes", "uniform")
    assert refused.returncode == 2 and "key frames" in refused.stderr
    query = small_bench.parent / "test" / "queries" / "q0000.mp4"
    report = tmp_path / "report.json"
    proc = run_vcopy("query", query, "--library", lib, "--spd-weights", out / "spd.onnx", "--json", report)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(report.read_text())
    assert (
        data["parameters"]["keyframes"]
        == data["library"]["keyframes"]
        == LearnedKeyFrames(out / "ske.onnx").name
    )
    [model] = [m for m in data["models"] if m.get("role") == "keyframes"]
    assert model["sha256"] == sha256_file(out / "ske.onnx")
    for match in data["queries"][0]["matches"]:
        for segment in match["segments"]:
            assert (
                0
                <= segment["reference_start"]
                < segment["reference_end"]
                <= match["reference"]["duration"] + 1
            )


def test_the_shipped_key_frames_come_with_their_spd() -> None:
    from vcopy.features import DEFAULT_DESCRIPTOR
    from vcopy.keyframes.ske import jointly_trained_spd
    from vcopy.localize.spd import SimilarityPatternDetector

    shipped = create_keyframer("ske")
    assert isinstance(shipped, LearnedKeyFrames) and shipped.name.startswith("ske/")
    assert shipped.settings.descriptor.startswith(f"{DEFAULT_DESCRIPTOR}/")
    spd = jointly_trained_spd(shipped.name)
    assert spd is not None and spd.name == "spd-ske.onnx"
    assert SimilarityPatternDetector(weights_path=spd).trained_on == shipped.settings.descriptor
    assert jointly_trained_spd("uniform") is None
    with pytest.raises(VcopyError, match="--spd-weights"):
        jointly_trained_spd("ske/00000000")


@pytest.mark.slow
def test_a_coverage_library_stores_fewer_frames_and_still_finds_the_copy(
    corpus: Corpus, tmp_path: Path
) -> None:
    lib = tmp_path / "coverage"
    proc = run_vcopy("index", corpus.refs, "--library", lib, "--keyframes", "coverage")
    assert proc.returncode == 0, proc.stderr
    with Library.open(lib) as library:
        assert library.pipeline_spec.keyframes == f"coverage/{COVERAGE_THRESHOLD:g}"
        frames = sum(len(library.frames_of(v.id)[1]) for v in library.videos())
        seconds = sum(v.duration_s for v in library.videos())
        for video in library.videos():  # each key frame stands for the time to the next, the last to the end
            times, ends = library.timestamps_of(video.id), library.span_ends_of(video.id)
            np.testing.assert_array_equal(ends[:-1], times[1:])
            assert video.duration_s - 1 <= ends[-1] <= video.duration_s + 1
    assert frames < 0.8 * seconds  # fewer than one frame per sampled second
    report = tmp_path / "report.json"
    proc = run_vcopy("query", corpus.copy, "--library", lib, "--json", report)
    assert proc.returncode == 0, proc.stderr
    [match] = json.loads(report.read_text())["queries"][0]["matches"]
    assert Path(match["reference"]["path"]) == corpus.copied_reference

    with Library.open(lib) as library:
        recorded = {v.path: library.span_ends_of(v.id) for v in library.videos()}
    with sqlite3.connect(lib / "library.sqlite") as db:  # as vcopy 0.4 before spans left it
        db.execute("ALTER TABLE videos DROP COLUMN span_ends_s")
        db.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    assert run_vcopy("library", "upgrade", lib).returncode == 0
    with Library.open(lib) as library:
        for video in library.videos():
            ends = library.span_ends_of(video.id)
            np.testing.assert_array_equal(ends[:-1], recorded[video.path][:-1])
            assert abs(ends[-1] - recorded[video.path][-1]) <= 1  # the last to the video's duration
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("UPDATE videos SET span_ends_s = x'00'")
    damaged = run_vcopy("query", corpus.copy, "--library", lib)
    assert damaged.returncode == 5 and "spans" in damaged.stderr and "\n" not in damaged.stderr.strip()
