"""The store: exact vector files, the approximate index written as snapshots plus pending changes,
`auto` moving to IVF-PQ, and `vcopy library` (filled through the real commit path with random
vectors: nothing here is decoded)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import run_vcopy

from vcopy import ann
from vcopy.ann import AnnSpec
from vcopy.errors import LibraryError
from vcopy.library import Library
from vcopy.library_db import as_stored
from vcopy.pipeline import PipelineSpec
from vcopy.synth.vectors import random_video

DIM = 64
LIBRARY_SPEC = PipelineSpec(descriptor="synthetic/64d", dim=DIM, sample_fps=1.0, frame_size=224)


def _library(root: Path, videos: int, frames: int = 60, seed: int = 0) -> list:
    """A library of ``videos`` random videos, committed ten at a time; returns them."""
    rng = np.random.default_rng(seed)
    made = [random_video(rng, i, frames, DIM, text=False) for i in range(videos)]
    with Library.open(root, write=True, spec=LIBRARY_SPEC) as library:
        for lo in range(0, videos, 10):
            batch = made[lo : lo + 10]
            library.commit(batch, [float(len(v.vectors)) for v in batch])
    return made


def _index_file(root: Path) -> str:
    with sqlite3.connect(root / "library.sqlite") as db:
        row = db.execute("SELECT value FROM meta WHERE key = 'ann_file'").fetchone()
    return "" if row is None else str(row[0])


def _owner(library: Library, vector: np.ndarray) -> int:
    _, videos, _ = library.search(vector[None], 1)
    return int(videos[0, 0])


def test_small_commits_do_not_rewrite_the_index_file_and_readers_see_them(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    _library(root, 20)
    with Library.open(root, write=True) as library:
        library.rebuild_index(AnnSpec.parse("IVF8,Flat"))  # an index file that is not the vectors
    first = _index_file(root)
    rng = np.random.default_rng(1)
    with Library.open(root, write=True, spec=LIBRARY_SPEC) as library:
        extra = random_video(rng, 100, 60, DIM, text=False)
        library.commit([extra], [60.0])  # 60 of 1260 vectors pending: under a tenth
        assert _index_file(root) == first
        with Library.open(root) as reader:  # the index file plus what was committed since
            assert reader.ann.ntotal == reader.vector_count == 1260
            new_id = reader.video_by_path(str(extra.path)).id  # type: ignore[union-attr]
            assert _owner(reader, extra.vectors[7]) == new_id
            vectors, times = reader.frames_of(new_id)
            np.testing.assert_array_equal(vectors, as_stored(extra.vectors))
            assert list(times[:3]) == [0, 1, 2]
        more = [random_video(rng, 200 + i, 60, DIM, text=False) for i in range(2)]
        library.commit(more, [60.0, 60.0])  # 180 pending: over a tenth, the index file is written
        assert _index_file(root) != first
        assert not (root / first).exists()
        with Library.open(root) as reader:
            assert reader.info().index_pending == 0 and reader.ann.ntotal == 1380


def test_exact_vectors_are_float16_and_an_exact_index_is_not_a_second_copy(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    made = _library(root, 20)
    assert _index_file(root) == "" and not list(root.glob("ann-*"))
    vector_files = list((root / "vectors").iterdir())
    assert len(vector_files) == 20 and all(np.load(f).dtype == np.float16 for f in vector_files)
    with Library.open(root) as reader:  # the Flat index is filled from the vector files
        assert reader.info().index_built == "Flat" and reader.ann.ntotal == 1200
        ids = _ids(reader, made)
        assert _owners(reader, made) == ids
        vectors, _ = reader.frames_of(ids[4])
        assert vectors.dtype == np.float32
        cosines = np.sum(vectors * made[4].vectors, axis=1) / np.sum(made[4].vectors ** 2, axis=1)
        assert np.all(np.abs(cosines - 1) < 1e-3)
    with Library.open(root, write=True) as library:  # an IVF index is written; back to Flat drops it
        library.rebuild_index(AnnSpec.parse("IVF8,Flat"))
        written = _index_file(root)
        assert (root / written).is_file()
        library.rebuild_index(AnnSpec.parse("Flat"))
    assert _index_file(root) == "" and not (root / written).exists()
    with Library.open(root) as reader:
        assert reader.ann.ntotal == 1200 and _owners(reader, made) == _ids(reader, made)


def test_a_removed_video_leaves_the_search_at_once(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    made = _library(root, 20)
    with Library.open(root, write=True) as library:
        gone = library.video_by_path(str(made[3].path))
        assert gone is not None and _owner(library, made[3].vectors[0]) == gone.id
        library.remove([gone.id])
        assert _owner(library, made[3].vectors[0]) != gone.id
    with Library.open(root) as reader:
        assert _owner(reader, made[3].vectors[0]) != gone.id
        assert reader.ann.ntotal == reader.vector_count == 19 * 60
        assert len(list((root / "vectors").iterdir())) == 19


@pytest.mark.slow
def test_auto_moves_a_growing_library_to_ivf_pq_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "AUTO_IVF_VECTORS", 2_000)
    monkeypatch.setattr(ann, "TRAINING_SAMPLES_PER_LIST", 10)
    root = tmp_path / "lib"
    made = _library(root, 60)  # 3,600 vectors
    with Library.open(root) as library:
        info = library.info()
        assert info.index_spec == "auto" and info.index_built.startswith("IVF") and ",PQ8" in info.index_built
        hits = [_owner(library, v.vectors[5]) for v in made]
        assert hits == [library.video_by_path(str(v.path)).id for v in made]  # type: ignore[union-attr]


@pytest.mark.slow
def test_auto_trains_again_when_the_library_outgrows_its_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann, "AUTO_IVF_VECTORS", 2_000)
    monkeypatch.setattr(ann, "TRAINING_SAMPLES_PER_LIST", 10)
    monkeypatch.setattr("vcopy.library_ann.AUTO_REBUILD_GROWTH", 2)
    root = tmp_path / "lib"
    made = _library(root, 60)  # IVF128 from 2,000 vectors; 3,600 call for 256 lists, twice as many
    with Library.open(root) as library:
        assert library.info().index_built.startswith("IVF256,")
        assert _owners(library, made) == _ids(library, made)


def _owners(library: Library, made: list) -> list[int]:
    return [_owner(library, v.vectors[5]) for v in made]


def _ids(library: Library, made: list) -> list[int]:
    return [v.id if (v := library.video_by_path(str(m.path))) else -1 for m in made]


def test_an_ivf_index_takes_adds_in_an_exact_delta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "DELTA_MAX_VECTORS", 100)
    root = tmp_path / "lib"
    made = _library(root, 20)
    rng = np.random.default_rng(3)
    with Library.open(root, write=True) as library:
        library.rebuild_index(AnnSpec.parse("IVF4,Flat;nprobe=4"))
        more = [random_video(rng, 300 + i, 60, DIM, text=False) for i in range(2)]
        library.commit(more[:1], [60.0])
        assert library.ann.index.ntotal == 1200 and library.ann.ntotal == 1260  # 60 in the delta
        assert _owners(library, more[:1]) == _ids(library, more[:1])
        library.commit(more[1:], [60.0])  # 120 in the delta: encoded into the lists
        assert library.ann.index.ntotal == 1320
        library.remove([library.video_by_path(str(more[0].path)).id])  # type: ignore[union-attr]
        assert library.ann.ntotal == 1260 and _owners(library, made + more[1:]) == _ids(
            library, made + more[1:]
        )
    with Library.open(root) as reader:
        assert reader.ann.ntotal == reader.vector_count == 1260
        assert _owners(reader, made + more[1:]) == _ids(reader, made + more[1:])


def test_on_disk_inverted_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "lib"
    made = _library(root, 30)
    proc = run_vcopy("library", "rebuild-index", root, "--spec", "IVF8,Flat;nprobe=8;ondisk")
    assert proc.returncode == 0, proc.stderr
    [lists] = root.glob("ann-*.ivfdata")
    rng = np.random.default_rng(5)
    more = [random_video(rng, 400 + i, 60, DIM, text=False) for i in range(3)]
    with Library.open(root, write=True) as library:
        assert library.ann.disk_vectors == 1800 and library.ann.memory_vectors == 0
        library.commit(more[:1], [60.0])  # into memory; the on-disk tier stays as written
        gone = library.video_by_path(str(made[4].path))
        assert gone is not None
        library.remove([gone.id])  # in the on-disk tier: hidden from search
        assert list(root.glob("ann-*.ivfdata")) == [lists]
        with Library.open(root) as reader:
            assert reader.ann.ntotal == reader.vector_count == 1800
            kept = made[:4] + made[5:] + more[:1]
            assert _owners(reader, kept) == _ids(reader, kept)
            assert _owner(reader, made[4].vectors[5]) != gone.id
        monkeypatch.setattr("vcopy.library.SNAPSHOT_MAX_PENDING", 100)
        library.commit(more[1:], [60.0, 60.0])  # 180 in memory: a tenth of the 1,800 on disk, a new tier
        [merged] = root.glob("ann-*.ivfdata")
        assert merged != lists and library.ann.disk_vectors == 1920 and library.ann.memory_vectors == 0
    with Library.open(root) as reader:
        assert reader.info().index_pending == 0 and reader.ann.ntotal == reader.vector_count == 1920
        kept = made[:4] + made[5:] + more
        assert _owners(reader, kept) == _ids(reader, kept) and _owner(reader, made[4].vectors[5]) != gone.id
        assert reader.verify() == []
    data = bytearray(merged.read_bytes())
    data[100] ^= 0xFF
    merged.write_bytes(bytes(data))
    proc = run_vcopy("library", "verify", root)
    assert (
        proc.returncode == 5
        and merged.name in proc.stdout + proc.stderr
        and "damaged" in proc.stdout + proc.stderr
    )
    merged.write_bytes(bytes(data[:-8]))
    with Library.open(root) as reader, pytest.raises(LibraryError, match=f"{merged.name}.*rebuild-index"):
        reader.load_index()  # a query's first step: the damaged lists refused before any work
    assert run_vcopy("library", "rebuild-index", root).returncode == 0
    with Library.open(root) as reader:
        assert reader.verify() == [] and _owners(reader, kept) == _ids(reader, kept)


def test_the_library_command(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    made = _library(root, 12)
    proc = run_vcopy("library", "info", root, "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert (info["videos"], info["vectors"], info["index_built"]) == (12, 720, "Flat")
    assert (
        info["hours"] == pytest.approx(720 / 3600) and info["bytes_on_disk"] > 720 * DIM * 2
    )  # float16 vectors
    listed = json.loads(run_vcopy("library", "ls", root, "--json").stdout)
    assert [v["path"] for v in listed] == [str(v.path) for v in made]
    proc = run_vcopy("library", "rm", root, made[0].path, tmp_path / "not-there.mp4")
    assert proc.returncode == 1 and "removed 1 video" in proc.stdout and "not in the library" in proc.stderr
    proc = run_vcopy("library", "rebuild-index", root, "--spec", "IVF4,Flat;nprobe=4")
    assert proc.returncode == 0 and "IVF4,Flat;nprobe=4, 660 vectors" in proc.stdout, proc.stderr
    with Library.open(root) as library:
        assert library.info().index_built == "IVF4,Flat;nprobe=4"
        assert _owner(library, made[5].vectors[0]) == library.video_by_path(str(made[5].path)).id  # type: ignore[union-attr]
    assert run_vcopy("library", "verify", root).returncode == 0
    bad = run_vcopy("library", "rebuild-index", root, "--spec", "NotAnIndex")
    assert bad.returncode == 2 and "--spec" in bad.stderr
    assert run_vcopy("library", "info", tmp_path / "nowhere").returncode == 5


def test_index_specs_are_checked() -> None:
    assert str(AnnSpec.parse("IVF64,PQ8;nprobe=16")) == "IVF64,PQ8;nprobe=16"
    assert AnnSpec.parse("auto").resolved(512, 1_000) == AnnSpec("Flat")
    big = AnnSpec.parse("auto").resolved(512, 3_600_000)
    assert big.factory == "IVF8192,PQ64" and big.nprobe == ann.AUTO_NPROBE
    assert str(AnnSpec.parse("IVF64,PQ8; ondisk ;nprobe=16")) == "IVF64,PQ8;nprobe=16;ondisk"
    assert not big.ondisk and AnnSpec.parse("auto").resolved(512, ann.AUTO_ONDISK_VECTORS).ondisk
    for bad in ("", "Flat;k=3", "HNSW32", "IVF64,PQ8;nprobe=0", "Flat;ondisk"):
        with pytest.raises(ValueError):
            AnnSpec.parse(bad)


@pytest.mark.skipif(ann.gpus() == 0, reason="faiss-gpu with a visible GPU (vcopy[gpu]) is not here")
def test_gpu_search_and_training_give_the_cpu_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lib"
    made = _library(root, 30)
    with Library.open(root, write=True) as library:
        library.rebuild_index(AnnSpec.parse("IVF16,Flat;nprobe=16"))  # trained on the GPU
        queries = np.stack([v.vectors[3] for v in made])
        on_gpu = library.search(queries, 5)
        monkeypatch.setattr(ann, "gpus", lambda: 0)
        library._ann = None  # reloaded, searched on the CPU
        on_cpu = library.search(queries, 5)
    np.testing.assert_array_equal(on_gpu[1], on_cpu[1])
    np.testing.assert_allclose(on_gpu[0], on_cpu[0], atol=1e-4)


def test_text_search_keeps_its_tables_through_the_store(tmp_path: Path) -> None:
    from vcopy.text.store import frame_classes, frame_layouts  # registers its tables

    rng = np.random.default_rng(3)
    video = random_video(rng, 1, 30, DIM, text=True)
    with Library.open(tmp_path / "lib", write=True, spec=LIBRARY_SPEC) as library:
        library.commit([video], [30.0])
        [stored] = library.videos()
        assert library.complete(stored.id)
        classes, layouts = frame_classes(library, stored.id), frame_layouts(library, stored.id)
        assert classes is not None and layouts is not None and video.text is not None
        np.testing.assert_array_equal(classes.ids, video.text.classes.ids)
        assert layouts.shape == video.text.layouts.shape
        library.remove([stored.id])
        assert frame_classes(library, stored.id) is None and frame_layouts(library, stored.id) is None


def test_a_library_records_the_pipeline_its_frames_are_computed_with(tmp_path: Path) -> None:
    from vcopy.errors import VcopyError
    from vcopy.pipeline import Pipeline

    _library(tmp_path / "lib", 1)
    with Library.open(tmp_path / "lib") as library:
        spec = library.pipeline_spec
    assert spec == LIBRARY_SPEC
    with pytest.raises(VcopyError, match="needs descriptor synthetic/64d"):
        Pipeline(spec, SimpleNamespace(name="sscd_distilled/288px", frame_size=288))  # type: ignore[arg-type]


def test_library_commands_that_fail_change_nothing(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    for args in (("rm", nowhere, "x.mp4"), ("rebuild-index", nowhere), ("upgrade", nowhere)):
        proc = run_vcopy("library", *args)
        assert proc.returncode == 5 and "not a vcopy library" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not nowhere.exists()  # nothing was created where there was no library
    root = tmp_path / "lib"
    _library(root, 2)
    proc = run_vcopy("library", "rebuild-index", root, "--spec", "IVF4096,PQ8")  # too few vectors to train
    assert proc.returncode == 5 and "needs at least 4096 vectors" in proc.stderr
    info = json.loads(run_vcopy("library", "info", root, "--json").stdout)
    assert (info["index_spec"], info["index_built"]) == ("auto", "Flat")  # the failed build recorded nothing
