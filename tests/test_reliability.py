"""What a hostile test of vcopy 0.3 found (issue 28), one test or more per case: outputs that
replace device nodes or follow symbolic links, a lost or foreign database, damage nobody checked,
crafted reports and model files, bad options, Ray addresses, index specs, and the commit path."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from conftest import Corpus, run_vcopy
from onnx import TensorProto, helper
from test_hostile import _library_copy, _one_line_error
from test_library import DIM, _library, _owner

from vcopy import library as library_module
from vcopy.ann import AnnSpec
from vcopy.errors import LibraryError
from vcopy.library import Library
from vcopy.localize.spd import shipped_weights_path
from vcopy.pipeline import PipelineSpec
from vcopy.synth.vectors import random_video

# -- reports go only to regular files -------------------------------------------------------------


def _device_node(path: Path) -> Path:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    except PermissionError:
        pytest.skip("making a device node needs root (the case is root's: containers, cron)")
    return path


def test_reports_never_replace_a_device_node_a_link_or_a_fifo(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    node = _device_node(tmp_path / "null")
    target = tmp_path / "target.txt"
    target.write_text("kept")
    link = tmp_path / "stdout"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for destination in (node, link, fifo):
        proc = run_vcopy("query", corpus.unrelated, "--library", library, "--json", destination, timeout=120)
        assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr
    proc = run_vcopy("search-text", "a flower", "--library", library, "--json", node, timeout=120)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode) and link.is_symlink() and target.read_text() == "kept"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    started = time.monotonic()  # /proc accepts os.access as root; no file can be made there
    proc = run_vcopy("query", corpus.unrelated, "--library", library, "--json", "/proc/x.json")
    assert proc.returncode == 2 and "cannot be written" in proc.stderr, proc.stderr
    assert time.monotonic() - started < 30  # refused before the batch


# -- a database that is not the library's own ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["lost", "emptied", "foreign"])
def test_a_writer_never_deletes_vectors_its_database_does_not_name(
    corpus: Corpus, library: Path, tmp_path: Path, how: str
) -> None:
    lib = _library_copy(library, tmp_path)
    database = lib / "library.sqlite"
    stored = sorted(p.name for p in [*(lib / "vectors").iterdir(), *lib.glob("ann-*")])
    backup = database.read_bytes()
    if how == "lost":
        database.unlink()
    elif how == "emptied":
        database.write_bytes(b"")
    else:
        assert run_vcopy("index", corpus.unrelated, "--library", tmp_path / "other").returncode == 0
        with Library.open(tmp_path / "other", write=True):  # its journal merged into the database
            pass
        shutil.copy(tmp_path / "other" / "library.sqlite", database)
    for args in (
        ("index", corpus.unrelated, "--library", lib),
        ("library", "rebuild-index", lib),
        ("library", "rm", lib, corpus.copied_reference),
        ("library", "upgrade", lib),
        ("query", corpus.copy, "--library", lib),
    ):
        proc = run_vcopy(*args)
        _one_line_error(proc, 5, "restore")
        assert sorted(p.name for p in [*(lib / "vectors").iterdir(), *lib.glob("ann-*")]) == stored
    database.write_bytes(backup)  # restored from a backup: everything is still there
    with Library.open(lib) as opened:
        assert len(opened) == 3 and opened.verify() == []


def test_files_a_killed_writer_listed_are_removed_and_no_other(library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    orphans = [
        lib / "vectors" / f"{'ab' * 16}.npy",
        lib / "ann-99-deadbeef.faiss",
        lib / "ann-99-deadbeef.ivfdata",
    ]
    stranger = lib / "vectors" / f"{'cd' * 16}.npy"  # a file the database does not list
    with sqlite3.connect(lib / "library.sqlite") as db:  # listed before they are written, as a writer does
        db.executemany("INSERT INTO loose_files VALUES (?)", [(p.name,) for p in orphans])
        db.execute("INSERT INTO loose_files VALUES ('../../outside.npy')")  # never a path out of the folder
    for path in [*orphans, stranger, tmp_path / "outside.npy"]:
        path.write_bytes(b"half a file")
    with Library.open(lib) as opened:  # a reader ignores them
        assert opened.verify() == []
    with Library.open(lib, write=True):
        pass
    assert not any(p.exists() for p in orphans)
    assert stranger.exists() and (tmp_path / "outside.npy").exists()


# -- damage that gave silent wrong answers -------------------------------------------------------


def test_verify_catches_one_flipped_bit_in_a_path(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    database = lib / "library.sqlite"
    data = bytearray(database.read_bytes())
    at = data.index(str(corpus.copied_reference).encode())
    data[at + 1] ^= 0x01  # "/tmp/..." -> "/ump/...", in the row or in the path's unique index
    database.write_bytes(bytes(data))
    proc = run_vcopy("library", "verify", lib)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "library.sqlite: damaged" in proc.stdout + proc.stderr


def test_a_zeroed_lists_file_is_an_error_at_open(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    proc = run_vcopy("library", "rebuild-index", lib, "--spec", "IVF4,Flat;nprobe=4;ondisk")
    assert proc.returncode == 0, proc.stderr
    [lists] = lib.glob("ann-*.ivfdata")
    lists.write_bytes(bytes(lists.stat().st_size))  # the same size, all zeros
    _one_line_error(run_vcopy("query", corpus.copy, "--library", lib), 5, lists.name, "rebuild-index")
    [header] = lib.glob("ann-*-disk.faiss")
    header.write_bytes(b"garbage")
    problems = run_vcopy("library", "verify", lib).stderr.splitlines()
    assert problems and len(problems) == len(set(problems)), problems  # each problem once


@pytest.mark.slow
def test_another_librarys_text_index_is_not_used(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    other = tmp_path / "other"  # the same videos under other ids
    proc = run_vcopy("index", corpus.refs / "r2.mp4", corpus.refs / "r0.mp4", "--library", other)
    assert proc.returncode == 0, proc.stderr

    def ranking() -> list[str]:
        proc = run_vcopy("search-text", "a flower", "--library", lib, "--json", "-")
        return [hit["path"] for hit in json.loads(proc.stdout)["queries"][0]["results"]]

    own = ranking()
    for path in (other / "text").iterdir():
        shutil.copy(path, lib / "text" / path.name)
    assert ranking() == own


def test_a_damaged_vector_file_names_its_video(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    with sqlite3.connect(lib / "library.sqlite") as db:
        [name] = db.execute(
            "SELECT vectors_file FROM videos WHERE path = ?", (str(corpus.copied_reference),)
        ).fetchone()
    (lib / "vectors" / name).write_bytes(b"not vectors")
    proc = run_vcopy("library", "verify", lib)
    assert proc.returncode == 5 and f"the vectors of {corpus.copied_reference}" in proc.stdout + proc.stderr


# -- evidence from crafted reports ---------------------------------------------------------------


@pytest.fixture(scope="module")
def report(corpus: Corpus, library: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("report") / "report.json"
    proc = run_vcopy("query", corpus.copy, "--library", library, "--json", path)
    assert proc.returncode == 0, proc.stderr
    made = json.loads(path.read_text())
    assert made["queries"][0]["matches"]
    return made


def _evidence(report: dict, tmp_path: Path, text: str | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "crafted.json"
    path.write_text(text if text is not None else json.dumps(report))
    return run_vcopy("evidence", path, "--out", tmp_path / "pages", timeout=300)


def test_crafted_reports_are_refused_before_any_page(report: dict, tmp_path: Path) -> None:
    script = json.loads(json.dumps(report))
    script["library"]["videos"] = "<script>alert(1)</script>"
    _one_line_error(_evidence(script, tmp_path), 5, "library/videos")
    text = json.dumps(report)
    score = report["queries"][0]["matches"][0]["score"]
    for bad in ("NaN", "1e300", '"x"'):
        crafted = text.replace(f'"score": {json.dumps(score)}', f'"score": {bad}', 1)
        assert crafted != text
        _one_line_error(_evidence(report, tmp_path, crafted), 5, "crafted.json")
    segment = report["queries"][0]["matches"][0]["segments"][0]
    far = text.replace(json.dumps(segment["query_start"]), "1e300", 1)
    _one_line_error(_evidence(report, tmp_path, far), 5, "crafted.json")
    assert not (tmp_path / "pages" / "index.html").exists()


def test_evidence_never_writes_through_a_planted_link(report: dict, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("kept")
    (pages / "match-001.html").symlink_to(outside)
    _one_line_error(_evidence(report, tmp_path), 5, "match-001.html", "not a regular file")
    assert outside.read_text() == "kept" and (pages / "match-001.html").is_symlink()


def test_evidence_reads_only_regular_video_files_the_library_knows(report: dict, tmp_path: Path) -> None:
    fifo = tmp_path / "suspect.mp4"
    os.mkfifo(fifo)
    crafted = json.loads(json.dumps(report))
    crafted["queries"][0]["path"] = str(fifo)
    crafted["queries"][0]["matches"][0]["reference"]["path"] = "/dev/zero"
    crafted["queries"][0]["matches"].append(json.loads(json.dumps(report["queries"][0]["matches"][0])))
    crafted["queries"][0]["matches"][1]["reference"]["path"] = "/etc/passwd"
    started = time.monotonic()
    proc = _evidence(crafted, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 120
    for page in ("match-001.html", "match-002.html"):
        html = (tmp_path / "pages" / page).read_text()
        assert "not read: not a regular video file" in html  # the FIFO
        assert "not read: the library holds no video of this path and SHA-256" in html
        assert "data:image/jpeg" not in html  # no frame of a file that is not the report's


def test_hostile_strings_of_a_report_are_shown_as_text(report: dict, tmp_path: Path) -> None:
    """Strings the schema lets through (paths, model names, parameters) reach the pages escaped."""
    crafted = json.loads(json.dumps(report))
    query = crafted["queries"][0]
    query["path"] = "/no/such/<script>alert(1)</script>.mp4"
    query["matches"][0]["reference"]["path"] = "/no/<img src=x onerror=alert(2)>.mp4"
    crafted["models"][0]["name"] = "</code><script>alert(3)</script>"
    crafted["parameters"]["views"] = ["'><svg onload=alert(4)>"]
    proc = _evidence(crafted, tmp_path)
    assert proc.returncode == 0, proc.stderr
    for page in ("match-001.html", "index.html"):
        html = (tmp_path / "pages" / page).read_text()
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg" not in html, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, page
    assert "&lt;/code&gt;&lt;script&gt;alert(3)" in (tmp_path / "pages" / "match-001.html").read_text()


# -- model files ---------------------------------------------------------------------------------


def _peak_rss_mb(*args: str | Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run the CLI in a child of a fresh interpreter; its peak RSS (MB) alone."""
    code = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(p.returncode)"
    )
    command = [sys.executable, "-c", code, sys.executable, "-m", "vcopy", *map(str, args)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    *lines, rss_kb = proc.stderr.strip().splitlines()
    proc.stderr = "\n".join(lines)
    return proc, int(rss_kb) / 1024


def _zipped_with_zeros(source: Path, path: Path, key: str, megabytes: int) -> Path:
    """A torch file: ``source``'s weights plus ``key`` holding ``megabytes`` of zeros, deflated
    (the file stays small)."""
    weights = torch.load(source, weights_only=True)
    weights[key] = torch.zeros(megabytes << 18)
    raw = io.BytesIO()
    torch.save(weights, raw)
    with zipfile.ZipFile(raw) as plain, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as packed:
        for member in plain.infolist():
            packed.writestr(member.filename, plain.read(member))
    return path


def _bomb_graph(
    input_name: str, input_shape: list, output: str, output_shape: list, metadata: dict[str, str]
) -> bytes:
    """A few hundred bytes of ONNX that ask for 3.2 GB when run."""
    size = helper.make_tensor("n", TensorProto.INT64, [1], [800_000_000])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    nodes = [
        helper.make_node("Constant", [], ["size"], value=size),
        helper.make_node("ConstantOfShape", ["size"], ["big"], value=one),
        helper.make_node("ReduceSum", ["big"], ["sum"], keepdims=0),
        helper.make_node("Add", [input_name, "sum"], ["added"]),
    ]
    if len(output_shape) == len(input_shape):
        nodes.append(helper.make_node("Identity", ["added"], [output]))
    else:  # SKE's [batch, frames] from [batch, frames, dim]
        nodes.append(helper.make_node("ReduceMean", ["added"], [output], axes=[2], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "bomb",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, output_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def _metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.mark.slow
def test_crafted_spd_files_are_refused_before_they_cost_memory(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    shipped = shipped_weights_path()
    query = ("query", corpus.unrelated, "--library", library, "--spd-weights")
    proc, shipped_rss = _peak_rss_mb(*query, shipped)
    assert proc.returncode == 0, proc.stderr
    bomb = tmp_path / "bomb.onnx"
    bomb.write_bytes(
        _bomb_graph("maps", ["batch", 1, 64, "width"], "boxes", ["batch", 5, "anchors"], _metadata(shipped))
    )
    assert bomb.stat().st_size < 2000
    zeros = _zipped_with_zeros(shipped.with_suffix(".pt"), tmp_path / "zeros.pt", "extra", 300)
    assert zeros.stat().st_size < 3 << 20
    sparse = tmp_path / "sparse.onnx"
    with open(sparse, "wb") as file:
        file.truncate(3 << 30)
    for weights, words in ((bomb, "does not run"), (zeros, "unpacked"), (sparse, "at most")):
        proc, rss = _peak_rss_mb(*query, weights)
        _one_line_error(proc, 5, weights.name, *words.split("|"))
        assert rss <= shipped_rss + 200, (weights.name, rss, shipped_rss)
    small = torch.load(shipped.with_suffix(".pt"), weights_only=True)
    small["extra"] = torch.zeros(4)
    torch.save(small, tmp_path / "extra.pt")
    proc = run_vcopy("query", corpus.unrelated, "--library", library, "--spd-weights", tmp_path / "extra.pt")
    _one_line_error(proc, 5, "extra.pt", "unknown key 'extra'")


@pytest.mark.slow
def test_crafted_text_models_are_refused_before_they_are_loaded(library: Path, tmp_path: Path) -> None:
    model = tmp_path / "text-model.pt"
    raw = io.BytesIO()
    torch.save({"format": "vcopy.text-model/1", "zeros": torch.zeros(300 << 18)}, raw)
    with zipfile.ZipFile(raw) as plain, zipfile.ZipFile(model, "w", zipfile.ZIP_DEFLATED) as packed:
        for member in plain.infolist():
            packed.writestr(member.filename, plain.read(member))
    proc = run_vcopy("search-text", "a dog", "--library", library, "--model", model)
    _one_line_error(proc, 5, "text-model.pt", "unpacked")


def _ske_variant(tmp_path: Path, name: str, how: str) -> Path:
    from vcopy.keyframes.ske import SETTINGS_KEY
    from vcopy.keyframes.ske import shipped_weights_path as shipped_ske

    model = onnx.load(str(shipped_ske()))
    meta = {p.key: p.value for p in model.metadata_props}
    if how == "renamed input":
        graph = helper.make_graph(
            [helper.make_node("ReduceMean", ["x"], ["key"], axes=[2], keepdims=0)],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "frames", 512])],
            [helper.make_tensor_value_info("key", TensorProto.FLOAT, ["batch", "frames"])],
        )
        data = _with_metadata(graph, meta)
    elif how == "wrong length":
        nodes = [
            helper.make_node("ReduceMean", ["vectors"], ["mean"], axes=[2], keepdims=0),
            helper.make_node("Sigmoid", ["mean"], ["p"]),
            helper.make_node("Concat", ["p", "p"], ["key"], axis=1),
        ]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("vectors", TensorProto.FLOAT, ["batch", "frames", 512])],
            [helper.make_tensor_value_info("key", TensorProto.FLOAT, ["batch", "twice"])],
        )
        data = _with_metadata(graph, meta)
    elif how == "deep metadata":  # parses (500 levels), then must not be taken for a name
        record = json.loads(meta[SETTINGS_KEY])
        record["descriptor"] = json.loads("[" * 500 + "]" * 500)
        data = _with_metadata(model.graph, {SETTINGS_KEY: json.dumps(record)})
    elif how == "another descriptor":
        record = json.loads(meta[SETTINGS_KEY])
        record["descriptor"] = "efficientnet_lite0/224px"
        data = _with_metadata(model.graph, {SETTINGS_KEY: json.dumps(record)})
    else:
        data = _bomb_graph("vectors", ["batch", "frames", 512], "key", ["batch", "frames"], meta)
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _with_metadata(graph: onnx.GraphProto, metadata: dict[str, str]) -> bytes:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("renamed input", "its network's input"),
        ("wrong length", "one probability per frame"),
        ("deep metadata", "descriptor is not a name"),
        ("another descriptor", "learned on descriptor"),
        ("bomb", "does not run"),
    ],
)
def test_crafted_ske_weights_are_refused_before_a_library_records_them(
    corpus: Corpus, tmp_path: Path, how: str, words: str
) -> None:
    weights = _ske_variant(tmp_path, "ske.onnx", how)
    lib = tmp_path / "lib"
    proc = run_vcopy("index", corpus.unrelated, "--library", lib, "--keyframe-weights", weights)
    _one_line_error(proc, 5, "ske.onnx", words)
    assert not lib.exists()


# -- inputs and options --------------------------------------------------------------------------


def test_an_unreadable_input_is_left_to_the_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vcopy.cli import index_command, query_command

    video = tmp_path / "locked.mp4"
    video.write_bytes(b"")
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)  # unreadable, even by root
    for command in (index_command, query_command):
        [paths] = [p for p in command.params if p.name == "paths"]
        assert paths.type.convert(str(video), paths, None) == video  # named and skipped by the run


def test_library_rm_of_an_empty_path_removes_nothing(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    lib = _library_copy(library, tmp_path)
    for empty in ("", " "):
        proc = run_vcopy("library", "rm", lib, empty, cwd=corpus.refs)
        assert proc.returncode == 2 and "not a path" in proc.stderr, proc.stderr
    with Library.open(lib) as opened:
        assert len(opened) == 3


@pytest.mark.parametrize(
    "args",
    [
        ("query", "x.mp4", "--library", "lib", "--min-score", "-1"),
        ("query", "x.mp4", "--library", "lib", "--decode-timeout", "1e308"),
        ("index", "x.mp4", "--library", "lib", "--decode-timeout", "1e308"),
        ("library", "rebuild-index", "lib", "--spec", "IVF0,Flat"),
        ("library", "rebuild-index", "lib", "--spec", "IVF16,PQ100000"),
        ("index", "x.mp4", "--library", "lib", "--ray", "localhost:70000"),
    ],
)
def test_out_of_range_options_are_usage_errors(args: tuple[str, ...], tmp_path: Path) -> None:
    proc, rss = _peak_rss_mb(*args)
    assert proc.returncode == 2, proc.stderr
    assert "internal error" not in proc.stderr and rss < 600
    assert not (tmp_path / "lib").exists()


def _copy_with_setting(library: Path, tmp_path: Path, key: str, value: str) -> Path:
    """A copy of ``library`` whose recorded setting ``key`` is ``value``."""
    lib = _library_copy(library, tmp_path)
    with sqlite3.connect(lib / "library.sqlite") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    return lib


def test_a_recorded_index_spec_that_cannot_work_is_one_line(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    lib = _copy_with_setting(library, tmp_path, "ann_spec", "IVF0,Flat")
    _one_line_error(run_vcopy("query", corpus.copy, "--library", lib), 5, "library.sqlite", "IVF0")


def test_csv_on_a_terminal_escapes_names() -> None:
    from vcopy.cli import printable
    from vcopy.report import report_csv

    segment = {
        "query_start": 0.0,
        "query_end": 1.0,
        "reference_start": 0.0,
        "reference_end": 1.0,
        "score": 0.9,
    }
    segment.update({f"{k}_timecode": "00:00:00.000" for k in segment if k != "score"})
    match = {
        "reference": {"path": "/r/\x1b]0;owned\x07.mp4", "sha256": "0" * 64},
        "score": 0.9,
        "segments": [segment],
    }
    report = {"queries": [{"path": "/q/\x1b[2J.mp4", "sha256": "1" * 64, "matches": [match]}]}
    shown = report_csv(report, printable)
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b]0;owned" in shown
    assert "\x1b" in report_csv(report)  # piped: the names as they are


def test_a_query_whose_name_is_not_utf8_fails_alone(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    bad = os.fsencode(tmp_path) + b"/bad\xff.mp4"
    shutil.copy(corpus.unrelated, bad)
    proc = run_vcopy("query", os.fsdecode(bad), corpus.unrelated, "--library", library)
    assert proc.returncode == 1, proc.stderr
    assert "not valid UTF-8" in proc.stderr and "UnicodeEncodeError" not in proc.stderr


def test_a_second_writer_is_refused_before_it_loads_a_model(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    lib = _library_copy(library, tmp_path)
    with Library.open(lib, write=True):
        proc, rss = _peak_rss_mb("index", corpus.unrelated, "--library", lib)
    _one_line_error(proc, 5, "another process")
    assert rss < 400  # no model was loaded (the descriptor alone takes more)


def test_ray_addresses_are_checked_before_any_work(corpus: Corpus, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    lib = tmp_path / "lib"
    for address in ("localhost:1", "[::1]:1"):
        started = time.monotonic()
        proc = run_vcopy("index", corpus.unrelated, "--library", lib, "--ray", address, timeout=120)
        _one_line_error(proc, 5, f"--ray {address}", "cannot reach")
        assert time.monotonic() - started < 30 and not lib.exists()
    proc = run_vcopy("query", corpus.unrelated, "--library", lib, "--ray", "none")
    _one_line_error(proc, 5, "not a vcopy library")  # 'none' is taken, as --help says


# -- the commit path -----------------------------------------------------------------------------


def test_a_full_disk_is_one_error_naming_the_file_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lib"
    _library(root, 3)
    rng = np.random.default_rng(9)
    more = random_video(rng, 50, 60, DIM, text=False)

    def full(path: Path, data: bytes, durable: bool = False) -> None:
        raise OSError(28, "No space left on device", str(path))

    with Library.open(root, write=True) as library:
        monkeypatch.setattr("vcopy.library_db.write_atomically", full)  # the vector files
        with pytest.raises(LibraryError, match=r"vectors/.*No space left on device.*1 videos not stored"):
            library.commit([more], [60.0])
    monkeypatch.undo()
    with Library.open(root) as library:
        assert len(library) == 3 and library.verify() == []


def test_a_commit_that_rolls_back_leaves_the_index_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lib"
    made = _library(root, 3)
    again = SimpleNamespace(**{**vars(made[1]), "vectors": made[1].vectors[::-1].copy()})
    with Library.open(root, write=True) as library:
        before = library.video_by_path(str(made[1].path))
        assert before is not None and _owner(library, made[1].vectors[7]) == before.id

        def fail(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(Library, "_tighten", fail)
        with pytest.raises(LibraryError):
            library.commit([again], [60.0])  # type: ignore[list-item]
        assert library.video_by_path(str(made[1].path)) == before
        assert _owner(library, made[1].vectors[7]) == before.id  # still found by the live index


def test_a_reader_sees_one_state_while_a_writer_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lib"
    made = _library(root, 20)
    with Library.open(root, write=True) as writer:
        writer.rebuild_index(AnnSpec.parse("IVF8,Flat"))  # an index file (an exact one is not written)
    rng = np.random.default_rng(3)
    pending = [random_video(rng, 100 + i, 60, DIM, text=False) for i in range(2)]
    with Library.open(root, write=True) as writer:
        writer.commit(pending, [60.0, 60.0])  # committed, not yet in the index file
    read_file = library_module.read_index_file
    raced = []

    def racing(root_: Path, meta: dict[str, str], dim: int) -> object:
        ann = read_file(root_, meta, dim)
        if not raced:  # a writer snapshots between the reader's reads
            raced.append(True)
            with Library.open(root, write=True) as writer:
                writer.rebuild_index()
        return ann

    monkeypatch.setattr(library_module, "read_index_file", racing)
    with Library.open(root) as reader:
        assert reader.ann.ntotal == 22 * 60 and raced
        for video in (*made[:2], *pending):
            found = reader.video_by_path(str(video.path))
            assert found is not None and _owner(reader, video.vectors[3]) == found.id


def test_a_failed_commit_is_not_tried_again(
    corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vcopy.features import create_descriptor
    from vcopy.indexing import index_videos
    from vcopy.video import SamplingConfig

    descriptor = create_descriptor("sscd_distilled")
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    calls = []

    def failing(self: Library, batch: list, durations: list) -> None:
        calls.append(len(batch))
        raise LibraryError("vectors/x.npy: cannot be written (No space left on device)")

    with Library.open(tmp_path / "lib", write=True, spec=PipelineSpec.of(descriptor, sampling)) as library:
        monkeypatch.setattr(Library, "commit", failing)
        with pytest.raises(LibraryError):
            index_videos(library, [corpus.unrelated], descriptor, commit_every_s=0)
    assert [n for n in calls if n] == [1]  # (an empty batch stores nothing)


def test_a_baseline_localizer_needs_no_spd_of_custom_key_frames(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    lib = _copy_with_setting(library, tmp_path, "keyframes", "ske/deadbeef")
    proc = run_vcopy("query", corpus.copy, "--library", lib, "--localizer", "dp", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["queries"][0]["status"] == "ok"
