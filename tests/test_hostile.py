"""What a hostile user tries: crafted weights and checkpoints, file names that are markup or
terminal escapes, damaged libraries, NaN options, read-only libraries, loops and FIFOs."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from conftest import Corpus, remux, run_vcopy

from vcopy import synth
from vcopy.ann import AnnSpec
from vcopy.library import Library
from vcopy.library_db import as_stored
from vcopy.localize.spd import shipped_weights_path
from vcopy.text.encoder import TextEncoder
from vcopy.text.zeroshot import ZeroShotSpace, shipped_classes

PAYLOAD_FILE = "PWNED"
ACTIVATION_PAYLOAD = f"__import__('pathlib').Path('{PAYLOAD_FILE}').write_text('x') and torch.nn.SiLU()"


class _Exploit:
    """A pickle that would run code when loaded unsafely."""

    def __reduce__(self) -> tuple:
        return (Path(PAYLOAD_FILE).write_text, ("x",))


def _one_line_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "internal error" not in proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


def _crafted_spd_weights(path: Path) -> Path:
    weights = torch.load(shipped_weights_path().with_suffix(".pt"), weights_only=True)
    weights["model_config"]["activation"] = ACTIVATION_PAYLOAD
    torch.save(weights, path)
    return path


# -- weights and checkpoints are data ---------------------------------------------------------


@pytest.mark.slow
def test_crafted_spd_weights_are_refused_and_run_nothing(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    crafted = _crafted_spd_weights(tmp_path / "crafted.pt")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "vcopy.spd/2", "model_config": _Exploit()}, pickled)
    for weights in (crafted, pickled):
        proc = run_vcopy("query", corpus.copy, "--library", library, "--spd-weights", weights, cwd=tmp_path)
        _one_line_error(proc, 5, weights.name, "not SPD weights")
    assert not (tmp_path / PAYLOAD_FILE).exists()


def test_crafted_training_checkpoint_is_refused_before_any_work(tmp_path: Path) -> None:
    run, dataset = tmp_path / "run", tmp_path / "dataset"
    run.mkdir()
    dataset.mkdir()
    (dataset / "groundtruth.json").write_text('{"references": [], "queries": []}')  # never read
    _crafted_spd_weights(run / "last.pt")
    for trainer in ("spd", "copy"):
        proc = run_vcopy("train", trainer, dataset, "--out", run, "--resume", cwd=tmp_path)
        _one_line_error(proc, 5, "last.pt", "not a training checkpoint")
    assert not (tmp_path / PAYLOAD_FILE).exists() and not (run / "features").exists()


def test_crafted_text_training_checkpoint_is_refused_before_any_work(tmp_path: Path) -> None:
    run, videos = tmp_path / "run", tmp_path / "videos"
    run.mkdir()
    videos.mkdir()
    torch.save({"settings": _Exploit()}, run / "last.pt")
    captions = tmp_path / "captions.jsonl"
    captions.write_text('{"video": "v.mp4", "caption": "a cat"}\n')
    args = ["train", "text", "--captions", captions, "--videos", videos, "--out", run, "--resume"]
    _one_line_error(run_vcopy(*args, cwd=tmp_path), 5, "last.pt", "not a training checkpoint")
    assert not (tmp_path / PAYLOAD_FILE).exists() and not (run / "library").exists()


@pytest.mark.slow
def test_crafted_text_models_are_refused(library: Path, tmp_path: Path) -> None:
    huge = tmp_path / "huge.pt"  # would ask for a 10^7-wide hidden layer (tens of GB)
    torch.save({"format": "vcopy.text-model/1", "config": {"hidden": 10**7}, "state_dict": {}}, huge)
    unknown = tmp_path / "unknown.pt"
    torch.save({"format": "vcopy.text-model/1", "config": {"activation": ACTIVATION_PAYLOAD}}, unknown)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "vcopy.text-model/1", "config": _Exploit()}, pickled)
    for model, words in [(huge, "hidden"), (unknown, "activation"), (pickled, "text-model")]:
        proc = run_vcopy("search-text", "a dog", "--library", library, "--model", model, cwd=tmp_path)
        _one_line_error(proc, 5, model.name, words)
    assert not (tmp_path / PAYLOAD_FILE).exists()


# -- names are text, never markup or terminal control ---------------------------------------------

HOSTILE_NAMES = ["clip [hd].mp4", "a[/b]b.mp4", "esc\x1b]0;retitled\x07\x1b[2J.mp4", "two\nlines.mp4"]


@pytest.mark.slow
def test_hostile_file_names_are_printed_as_text(corpus: Corpus, tmp_path: Path) -> None:
    videos, lib = tmp_path / "videos [/b]", tmp_path / "lib"
    sources = sorted(corpus.refs.glob("*.mp4"))
    for name, source in zip(HOSTILE_NAMES, [*sources, sources[0]], strict=True):
        (videos / name).parent.mkdir(parents=True, exist_ok=True)  # "[/b]" spans a folder and a file
        shutil.copy(source, videos / name)
    index = run_vcopy("index", videos, "--library", lib)
    assert index.returncode == 0, index.stderr
    assert "indexed 4, skipped 0, failed 0" in index.stdout

    report_path = tmp_path / "report.json"
    query = run_vcopy(
        "query", videos / HOSTILE_NAMES[1], corpus.copy, "--library", lib, "--json", report_path
    )
    assert query.returncode == 0, query.stderr
    search = run_vcopy("search-text", "[bold]a photo[/bold]", "--library", lib, "--top", "4")
    assert search.returncode == 0, search.stderr
    for proc in (index, query, search):
        assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout + proc.stderr
    assert "videos [/b]/a[/b]b.mp4" in query.stdout  # the query itself, its name intact
    assert "'[bold]a photo[/bold]'" in search.stdout
    for name in ("clip [hd].mp4", "esc\\x1b]0;retitled\\x07\\x1b[2J.mp4", "two\\nlines.mp4"):
        assert name in search.stdout, search.stdout
    report = json.loads(report_path.read_text())
    assert report["queries"][0]["path"].endswith("videos [/b]/a[/b]b.mp4")
    found = [m["reference"]["path"] for q in report["queries"] for m in q["matches"]]
    assert any(path.endswith("videos [/b]/a[/b]b.mp4") for path in found)  # itself, in the library

    failing = tmp_path / "bad [/red] \x1b[31m\n.mp4"
    failing.parent.mkdir()
    failing.write_text("not a video")
    proc = run_vcopy("query", failing, "--library", lib)
    assert proc.returncode == 1 and "\x1b" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if "bad [/red]" in line]
    assert "\\x1b[31m\\n.mp4: not a readable video" in line


@pytest.mark.slow
def test_a_name_that_is_not_utf8_fails_alone(corpus: Corpus, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(corpus.copied_reference, videos / "good.mp4")
    shutil.copy(corpus.copied_reference, os.fsencode(videos) + b"/bad\xff.mp4")
    proc = run_vcopy("index", videos, "--library", tmp_path / "lib")
    assert proc.returncode == 1, proc.stderr
    assert "indexed 1, skipped 0, failed 1" in proc.stdout
    assert "bad\\udcff.mp4: its name is not valid UTF-8" in proc.stderr


# -- a library that knows its own shape -----------------------------------------------------------


def _library_copy(library: Path, tmp_path: Path) -> Path:
    with Library.open(library, write=True):  # merged into library.sqlite, nothing left in its journal
        pass
    lib = tmp_path / "lib"
    shutil.copytree(library, lib, ignore=shutil.ignore_patterns("write.lock", "*-wal", "*-shm"))
    return lib


def _videos_and_rows(lib: Path) -> tuple[int, int]:
    with sqlite3.connect(lib / "library.sqlite") as db:
        return db.execute("SELECT COUNT(*), COALESCE(SUM(frames), 0) FROM videos").fetchone()


def _index_file(lib: Path) -> Path:
    [path] = lib.glob("ann-*.faiss")
    return path


def _vector_file(lib: Path, reference: Path) -> Path:
    with sqlite3.connect(lib / "library.sqlite") as db:
        [name] = db.execute("SELECT vectors_file FROM videos WHERE path = ?", (str(reference),)).fetchone()
    return lib / "vectors" / name


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "garbled", "another kind of index"])
def test_a_damaged_index_file_is_an_error_until_it_is_rebuilt(
    how: str, corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    lib = _library_copy(library, tmp_path)
    with Library.open(lib, write=True) as writer:  # an index file (an exact index is not written)
        writer.rebuild_index(AnnSpec.parse("IVF2,Flat"))
    before = _videos_and_rows(lib)
    path = _index_file(lib)
    if how == "deleted":
        path.unlink()
    elif how == "garbled":
        _garble(path)
    else:
        faiss.write_index(faiss.IndexFlatL2(512), str(path))
    query = run_vcopy("query", corpus.copy, "--library", lib)
    _one_line_error(query, 5, path.name, "rebuild-index")
    assert _videos_and_rows(lib) == before
    rebuilt = run_vcopy("library", "rebuild-index", lib)
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = _query_json_of(lib, corpus.copy)
    assert Path(report["queries"][0]["matches"][0]["reference"]["path"]) == corpus.copied_reference
    assert _videos_and_rows(lib) == before


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "garbled"])
def test_a_damaged_vector_file_is_named_and_never_searched(
    how: str, corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    lib = _library_copy(library, tmp_path)
    before = _videos_and_rows(lib)
    path = _vector_file(lib, corpus.copied_reference)
    path.unlink() if how == "deleted" else _garble(path)
    query = run_vcopy("query", corpus.copy, "--library", lib)  # the copied reference is a candidate
    _one_line_error(query, 5, path.name, "index it again")
    verify = run_vcopy("library", "verify", lib)
    assert verify.returncode == 5 and path.name in verify.stderr and verify.stderr.count("\n") == 1
    assert _videos_and_rows(lib) == before
    assert run_vcopy("library", "rm", lib, corpus.copied_reference).returncode == 0  # the repair
    assert run_vcopy("index", corpus.refs, "--library", lib).returncode == 0
    assert run_vcopy("library", "verify", lib).returncode == 0
    assert _videos_and_rows(lib) == before


def _query_json_of(lib: Path, *videos: Path) -> dict:
    proc = run_vcopy("query", *videos, "--library", lib, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_library_of_vcopy_0_2_is_upgraded_in_place(corpus: Corpus, tmp_path: Path) -> None:
    lib = tmp_path / "v5"
    shutil.copytree(Path(__file__).parent / "data" / "library-v5", lib)
    old = faiss.read_index(str(lib / "index.faiss"))
    with sqlite3.connect(lib / "library.sqlite") as db:
        rows = db.execute("SELECT id, video_id FROM vectors ORDER BY video_id, timestamp_s").fetchall()
    refused = run_vcopy("query", corpus.copy, "--library", lib)
    _one_line_error(refused, 5, "older vcopy", "vcopy library upgrade")
    upgraded = run_vcopy("library", "upgrade", lib)
    assert upgraded.returncode == 0, upgraded.stderr
    assert not (lib / "index.faiss").exists()
    with Library.open(lib) as library:
        assert library.meta["schema_version"] == "7" and len(library) == 2
        for video in library.videos():
            vectors, times = library.frames_of(video.id)
            expected = np.stack([old.reconstruct(v) for v, owner in rows if owner == video.id])
            np.testing.assert_array_equal(vectors, as_stored(expected))
            assert list(times) == [0, 1, 2, 3, 4, 5]
    report = _query_json_of(lib, corpus.unrelated)  # an upgraded library answers queries
    assert report["queries"][0]["matches"] == []


def test_a_library_path_that_is_a_file_is_one_line(corpus: Corpus, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "lib"
    not_a_folder.write_text("a file")
    _one_line_error(run_vcopy("index", corpus.unrelated, "--library", not_a_folder), 5, "lib")
    _one_line_error(run_vcopy("query", corpus.unrelated, "--library", not_a_folder), 5, "not a vcopy library")


def test_library_settings_are_checked_when_opened(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("UPDATE meta SET value = 'nan' WHERE key = 'sample_fps'")
    for command in ("query", "index"):
        proc = run_vcopy(command, corpus.unrelated, "--library", lib)
        _one_line_error(proc, 5, "library.sqlite", "sample_fps")


# -- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("index", "x.mp4", "--library", "lib", "--sample-fps", "nan"),
        ("index", "x.mp4", "--library", "lib", "--decode-timeout", "nan"),
        ("index", "x.mp4", "--library", "lib", "--commit-every", "inf"),
        ("query", "x.mp4", "--library", "lib", "--min-score", "nan"),
        ("query", "x.mp4", "--library", "lib", "--decode-timeout", "inf"),
        ("train", "spd", "--lr", "nan", ".", "--out", "run"),
        ("train", "text", "--temperature", "nan", "--captions", "c", "--videos", ".", "--out", "run"),
    ],
)
def test_nan_and_infinite_options_are_usage_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    proc = run_vcopy(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "not a finite number" in proc.stderr or "not in the range" in proc.stderr
    assert not (tmp_path / "lib").exists()


def test_a_report_that_cannot_be_written_is_refused_before_any_work(library: Path, tmp_path: Path) -> None:
    for destination in (tmp_path / "no" / "such" / "r.json", tmp_path):
        proc = run_vcopy("query", "x.mp4", "--library", library, "--json", destination)
        assert proc.returncode == 2 and "--json" in proc.stderr, proc.stderr


# -- read-only libraries -------------------------------------------------------------------------


def _read_only(lib: Path, *args: str | Path) -> subprocess.CompletedProcess:
    """Run vcopy with ``lib`` bind-mounted read-only in a private mount namespace."""
    script = 'mount --bind -o ro "$1" "$1" && shift && exec "$@"'
    command = ["unshare", "-m", "sh", "-c", script, "sh", str(lib), sys.executable, "-m", "vcopy"]
    return run_vcopy_raw([*command, *map(str, args)])


def run_vcopy_raw(command: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.mark.slow
def test_a_read_only_library_can_be_read(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    probe = subprocess.run(
        ["unshare", "-m", "mount", "--bind", "-o", "ro", tmp_path, tmp_path], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here ({probe.stderr.decode().strip()})")
    lib = _library_copy(library, tmp_path)
    shutil.rmtree(lib / "text")  # text search has to work out its index in memory
    proc = _read_only(lib, "query", corpus.copy, "--library", lib, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    [query] = json.loads(proc.stdout)["queries"]
    assert Path(query["matches"][0]["reference"]["path"]) == corpus.copied_reference
    proc = _read_only(lib, "search-text", "a flower", "--library", lib, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["queries"][0]["results"]) == 3
    proc = _read_only(lib, "index", corpus.refs, "--library", lib)
    _one_line_error(proc, 5, "lib")
    assert sorted(p.name for p in lib.iterdir()) == ["library.id", "library.sqlite", "vectors"]


# -- loops, FIFOs, truncated files ----------------------------------------------------------------


@pytest.mark.slow
def test_loops_and_fifos_among_the_arguments_are_named_and_skipped(corpus: Corpus, tmp_path: Path) -> None:
    loop, fifo = tmp_path / "loop.mp4", tmp_path / "fifo.mp4"
    loop.symlink_to(loop)
    os.mkfifo(fifo)
    started = time.monotonic()
    proc = run_vcopy("index", loop, fifo, corpus.copied_reference, "--library", tmp_path / "lib")
    assert time.monotonic() - started < 60  # the FIFO is not waited on (--decode-timeout is 120 s)
    assert proc.returncode == 1, proc.stderr
    assert "indexed 1, skipped 0, failed 2" in proc.stdout
    assert any(
        "loop.mp4: cannot read file (Too many levels of symbolic links)" in x
        for x in proc.stderr.splitlines()
    )
    assert any("fifo.mp4: not a regular file (a FIFO)" in x for x in proc.stderr.splitlines())


@pytest.mark.slow
def test_a_truncated_file_is_reported_as_partly_decoded(corpus: Corpus, tmp_path: Path) -> None:
    clip = synth.concat([synth.procedural_video(300, 20), synth.procedural_video(301, 16)])
    source = synth.write_video(tmp_path / "whole.mp4", clip)  # remuxed with its index (moov) first,
    whole = remux(source, tmp_path / "faststart.mp4", options={"movflags": "faststart"})  # as web encoders do
    truncated = tmp_path / "truncated.mp4"
    data = whole.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.4)])
    index = run_vcopy("index", truncated, "--library", tmp_path / "lib")
    assert index.returncode == 0, index.stderr
    assert "truncated.mp4: warning: only" in index.stderr and "of the 36.0 s" in index.stderr
    query = run_vcopy("query", truncated, "--library", tmp_path / "lib", "--json", "-")
    [entry] = json.loads(query.stdout)["queries"]
    assert entry["status"] == "ok" and "truncated or damaged" in entry["warnings"][0]
    assert "truncated.mp4: warning: only" in query.stderr
    [plain] = json.loads(run_vcopy("query", whole, "--library", tmp_path / "lib", "--json", "-").stdout)[
        "queries"
    ]
    assert plain["warnings"] == []


@pytest.mark.slow
def test_class_embeddings_of_another_encoder_are_kept_and_a_damaged_copy_computed_again(
    tmp_path: Path,
) -> None:
    encoder = TextEncoder()
    encoder.sha256 = "0" * 64  # not the encoder the shipped embeddings were made with
    space = ZeroShotSpace(encoder, cache_dir=tmp_path)
    [cache] = tmp_path.glob("class-embeddings-*.npy")
    # the same network: the shipped embeddings are what it computes
    np.testing.assert_allclose(space.class_embeddings, shipped_classes().embeddings, atol=1e-5)
    cache.write_bytes(cache.read_bytes()[:1000])
    ZeroShotSpace(encoder, cache_dir=tmp_path)
    assert np.load(cache).shape == (1000, 384)  # repaired
