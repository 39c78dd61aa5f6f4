"""Text search: retrieval metrics, the zero-shot text space, and `vcopy search-text` end to end on
videos of real photographs."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import run_vcopy

from vcopy import synth
from vcopy.features import FrameClasses
from vcopy.synth.captioned import REAL_PHOTOS, load_photo, object_over_background
from vcopy.text.encoder import TextEncoder
from vcopy.text.metrics import ranks, retrieval_metrics
from vcopy.text.zeroshot import ZeroShotSpace, imagenet_class_names

PHOTOS = {"chelsea": "a cat", "coffee": "a cup of coffee", "bus": "a bus in the street"}


def test_ranks_count_strictly_higher_scores_so_ties_do_not_help() -> None:
    scores = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9], [0.3, 0.1, 0.2]])
    assert ranks(scores, np.array([0, 1, 2])).tolist() == [1, 1, 2]
    assert ranks(scores, np.array([2, 0, 1])).tolist() == [3, 3, 3]
    m = retrieval_metrics(scores, np.array([0, 1, 2]))
    assert (m.r1, m.r5, m.median_rank, m.mean_rank) == pytest.approx((200 / 3, 100.0, 1.0, 4 / 3))
    assert m.rsum == pytest.approx(m.r1 + m.r5 + m.r10)


@pytest.fixture(scope="module")
def space() -> ZeroShotSpace:
    return ZeroShotSpace(TextEncoder())


def test_zero_shot_frames_are_convex_combinations_of_class_names(space: ZeroShotSpace) -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and names[281] == "tabby"
    one_class = FrameClasses(np.array([[281, 0]]), np.array([[1.0, 0.0]], dtype=np.float32))
    vector = space.frame_vectors(one_class)[0]
    assert np.allclose(vector, space.class_embeddings[281], atol=1e-5)
    mixed = FrameClasses(np.array([[281, 963]]), np.array([[0.3, 0.3]], dtype=np.float32))
    expected = space.class_embeddings[281] + space.class_embeddings[963]
    assert np.allclose(space.frame_vectors(mixed)[0], expected / np.linalg.norm(expected), atol=1e-5)
    cat, pizza = space.encoder.encode(["a cat", "a pizza"])
    assert vector @ cat > vector @ pizza


@pytest.fixture(scope="module")
def photo_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i, photo in enumerate(p for p in REAL_PHOTOS if Path(p.file).stem in PHOTOS):
        image = load_photo(photo)
        assert image is not None, photo
        synth.write_video(
            root / "videos" / f"{Path(photo.file).stem}.mp4", object_over_background(image, i, 4.0)
        )
    synth.write_video(root / "videos" / "shapes.mp4", synth.procedural_video(5, 4.0, fps=8))
    library = root / "library"
    proc = run_vcopy("index", root / "videos", "--library", library)
    assert proc.returncode == 0, proc.stderr
    assert list((library / "text").glob("*.faiss")), "index stores the text vectors"
    return library


@pytest.mark.slow
def test_search_text_finds_the_video_that_shows_it(photo_library: Path) -> None:
    proc = run_vcopy("search-text", "a cat", "--library", photo_library, "--top", "2", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [q["text"] for q in report["queries"]] == ["a cat"]
    results = report["queries"][0]["results"]
    assert len(results) == 2 and Path(results[0]["path"]).name == "chelsea.mp4"
    assert results[0]["score"] >= results[1]["score"] and len(results[0]["sha256"]) == 64
    moment = results[0]["moment"]
    assert 0 <= moment["start"] <= moment["best_frame"] < moment["end"] <= 5.0
    assert {m["role"] for m in report["models"]} == {"text_encoder", "text_space"}


@pytest.mark.slow
def test_many_queries_in_one_run(photo_library: Path, tmp_path: Path) -> None:
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(PHOTOS.values()) + "\n\n")
    out = tmp_path / "results.json"
    proc = run_vcopy("search-text", "--queries", queries, "--library", photo_library, "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [q["text"] for q in report["queries"]] == list(PHOTOS.values())
    for (stem, _), q in zip(PHOTOS.items(), report["queries"], strict=True):
        assert len(q["results"]) == 4
        assert Path(q["results"][0]["path"]).stem == stem
    assert "a cup of coffee" in proc.stdout  # the tables


@pytest.mark.slow
def test_text_vectors_are_computed_on_first_use_without_decoding(photo_library: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"  # no text index yet
    shutil.copytree(
        photo_library, copy, ignore=shutil.ignore_patterns("text", "write.lock", "*-wal", "*-shm")
    )
    proc = run_vcopy("search-text", "a cat", "--library", copy, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["queries"][0]["results"][0]["path"]).name == "chelsea.mp4"
    assert list((copy / "text").glob("*.faiss"))
    with sqlite3.connect(copy / "library.sqlite") as db:  # videos indexed without what text search reads
        db.execute("DELETE FROM frame_classes")
    for path in (copy / "text").iterdir():
        path.unlink()
    proc = run_vcopy("search-text", "a cat", "--library", copy, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["queries"][0]["results"] == []
    assert "indexed by an older vcopy" in proc.stderr


def test_bad_search_input_is_one_clear_line(photo_library: Path, tmp_path: Path) -> None:
    proc = run_vcopy("search-text", "a cat", "--library", tmp_path / "nowhere")
    assert proc.returncode == 5 and "not a vcopy library" in proc.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    proc = run_vcopy("search-text", "--queries", empty, "--library", photo_library)
    assert proc.returncode == 2 and "no queries" in proc.stderr  # a usage error
    proc = run_vcopy("search-text", "a cat", "--queries", empty, "--library", photo_library)
    assert proc.returncode == 2 and "either TEXT or --queries" in proc.stderr
