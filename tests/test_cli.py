"""End to end through the real CLI: index, query, report, exit codes, bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from conftest import COPY_QUERY_S, COPY_REFERENCE_S, Corpus, alive, descendants, one_frame_clip, run_vcopy

from vcopy import synth
from vcopy.features import EncodedVideo, create_descriptor, encode_videos
from vcopy.library import Library
from vcopy.localize.rescore import shipped_rescorer
from vcopy.localize.spd import shipped_weights_path
from vcopy.report import VSC_SUBMISSION_COLUMNS, load_schema
from vcopy.text.store import LAYOUT_STEPS, frame_layouts
from vcopy.video import sha256_file


def _query_json(
    library: Path, *paths: Path, extra: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_vcopy("query", *paths, "--library", library, "--json", "-", *extra)
    report = json.loads(proc.stdout)
    jsonschema.validate(report, load_schema())
    return proc, report


@pytest.mark.slow
def test_finds_the_copy_and_its_boundaries(corpus: Corpus, library: Path) -> None:
    proc, report = _query_json(library, corpus.copy, corpus.unrelated)
    assert proc.returncode == 0, proc.stderr
    by_name = {Path(q["path"]).name: q for q in report["queries"]}
    copy = by_name["copy.mp4"]
    assert copy["status"] == "ok" and copy["matches"], copy
    best = copy["matches"][0]
    assert Path(best["reference"]["path"]) == corpus.copied_reference
    segment = best["segments"][0]
    assert abs(segment["query_start"] - COPY_QUERY_S[0]) <= 1.5
    assert abs(segment["query_end"] - COPY_QUERY_S[1]) <= 1.5
    assert abs(segment["reference_start"] - COPY_REFERENCE_S[0]) <= 1.5
    assert abs(segment["reference_end"] - COPY_REFERENCE_S[1]) <= 1.5
    for end, true_s in zip(("query_start", "query_end"), COPY_QUERY_S, strict=True):
        lo, hi = segment[f"{end}_range"]
        assert lo <= segment[end] <= hi and lo <= true_s <= hi, (end, segment)
    assert by_name["unrelated.mp4"]["status"] == "ok"
    assert by_name["unrelated.mp4"]["matches"] == []
    assert report["library"]["videos"] == 3
    assert len(report["models"][0]["sha256"]) == 64


def test_library_keeps_each_frames_layout_to_within_its_int8_step(library: Path) -> None:
    lib = Library.open(library)
    video = next(v for v in lib.videos() if Path(v.path).name == "r0.mp4")
    stored = frame_layouts(lib, video.id)
    [encoded] = encode_videos(
        [Path(video.path)], create_descriptor(lib.meta["descriptor"]), lib.sampling, text=True
    )
    lib.close()
    assert isinstance(encoded, EncodedVideo) and encoded.text is not None and stored is not None
    assert stored.shape == encoded.text.layouts.shape and stored.dtype == np.float32
    np.testing.assert_allclose(stored, encoded.text.layouts, rtol=0, atol=0.5 / LAYOUT_STEPS + 1e-4)
    assert np.abs(stored - encoded.text.layouts).max() > 1e-4  # it is stored quantised, not as is


@pytest.mark.slow
def test_table_and_exit_codes(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = run_vcopy("query", corpus.copy, "--library", library, "--json", report_path, "--fail-on-match")
    assert proc.returncode == 3
    assert "r1.mp4" in proc.stdout and "copies found" in proc.stdout
    jsonschema.validate(json.loads(report_path.read_text()), load_schema())
    clean = run_vcopy("query", corpus.unrelated, "--library", library, "--fail-on-match")
    assert (
        clean.returncode == 0
        and "no copies found" in clean.stdout
        and "copies found" not in clean.stdout.replace("no copies found", "")
    )
    assert "1 query: 0 with copies, 1 without, 0 failed" in clean.stdout
    missing = tmp_path / "missing.mp4"
    assert run_vcopy("query", corpus.copy, missing, "--library", library, "--fail-on-match").returncode == 4
    assert run_vcopy("query", corpus.unrelated, missing, "--library", library).returncode == 1
    assert run_vcopy("query", corpus.copy).returncode == 2  # no --library: usage error
    bad_localizer = run_vcopy("query", corpus.copy, "--library", library, "--localizer", "nope")
    assert bad_localizer.returncode == 2 and "--localizer" in bad_localizer.stderr
    proc = run_vcopy("query", corpus.copy, "--library", tmp_path / "nolib")
    assert proc.returncode == 5 and "not a vcopy library" in proc.stderr


@pytest.mark.slow
def test_output_formats_and_verbosity(corpus: Corpus, library: Path) -> None:
    import csv
    import io

    as_csv = run_vcopy("-q", "query", corpus.copy, corpus.unrelated, "--library", library, "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert Path(row["query"]) == corpus.copy.absolute() and Path(row["reference"]) == corpus.copied_reference
    assert abs(float(row["query_start"]) - COPY_QUERY_S[0]) <= 1.5
    assert row["query_start_timecode"].startswith("00:00:0") and len(row["query_start_timecode"]) == 12
    assert as_csv.stderr == ""  # -q: no progress, no notes

    as_vsc = run_vcopy("-q", "query", corpus.copy, "--library", library, "--format", "vsc")
    assert as_vsc.returncode == 0, as_vsc.stderr
    submission = list(csv.DictReader(io.StringIO(as_vsc.stdout)))
    assert tuple(submission[0]) == VSC_SUBMISSION_COLUMNS  # VSC22's matching-track submission
    best = max(submission, key=lambda row: float(row["score"]))
    assert (best["query_id"], best["ref_id"]) == (corpus.copy.stem, corpus.copied_reference.stem)
    assert abs(float(best["query_start"]) - COPY_QUERY_S[0]) <= 1.5

    as_json = run_vcopy(  # -v after the subcommand works as before it
        "query", corpus.copy, corpus.unrelated, "--library", library, "--format", "json", "-v"
    )
    report = json.loads(as_json.stdout)
    jsonschema.validate(report, load_schema())
    [segment] = report["queries"][0]["matches"][0]["segments"][:1]
    assert segment["reference_end_timecode"] == _timecode(segment["reference_end"])
    assert report["queries"][0]["decoder"] == "decord"  # an mp4
    assert report["queries"][0]["matches"][0]["reference"]["decoder"] == "decord"
    assert "copy.mp4: 1 library video copied" in as_json.stderr  # -v: every file's outcome
    assert "unrelated.mp4: 0 library videos copied" in as_json.stderr
    clash = run_vcopy("query", corpus.copy, "--library", library, "--format", "csv", "--json", "-")
    assert clash.returncode == 2 and "stdout" in clash.stderr


def _timecode(seconds: float) -> str:
    minutes, secs = divmod(round(seconds * 1000), 60_000)
    return f"{minutes // 60:02d}:{minutes % 60:02d}:{secs / 1000:06.3f}"


def _bad_inputs(folder: Path) -> dict[str, str]:
    """name -> words the error must contain."""
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is not a video\n")
    whole = synth.write_video(folder / "whole.mp4", synth.procedural_video(5, 6))
    data = whole.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    whole.unlink()
    _write_audio_only(folder / "audio.mp4")
    synth.write_video(folder / "oneframe.mp4", one_frame_clip())
    return {
        "empty.mp4": "empty",
        "text.mp4": "not a readable video",
        "truncated.mp4": "",
        "audio.mp4": "no video stream",
        "oneframe.mp4": "too short",
    }


def _write_audio_only(path: Path) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for i in range(20):
            samples = (np.sin(np.arange(1024) / 10 + i) * 0.2).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_bad_inputs_are_reported_one_line_each(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    expected = _bad_inputs(tmp_path / "bad")
    missing = tmp_path / "does-not-exist.mp4"
    proc, report = _query_json(library, tmp_path / "bad", missing, corpus.unrelated)
    assert proc.returncode == 1
    statuses = {Path(q["path"]).name: q for q in report["queries"]}
    assert statuses["unrelated.mp4"]["status"] == "ok"
    assert statuses["does-not-exist.mp4"]["error"] == "file does not exist"
    for name, words in expected.items():
        entry = statuses[name]
        assert entry["status"] == "error" and words in entry["error"], entry
        lines = [line for line in proc.stderr.splitlines() if name in line]
        assert len(lines) == 1 and entry["error"] in lines[0], proc.stderr


@pytest.mark.slow
def test_bad_inputs_never_damage_the_library(corpus: Corpus, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    shutil.copytree(corpus.refs, tmp_path / "videos")
    _bad_inputs(tmp_path / "videos" / "bad")
    proc = run_vcopy("index", tmp_path / "videos", "--library", lib)
    assert proc.returncode == 1
    assert "indexed 3, skipped 0, failed 5" in proc.stdout
    with Library.open(lib) as library:
        assert len(library) == 3
        assert (
            library.ann.ntotal
            == library.vector_count
            == sum(len(library.frames_of(v.id)[1]) for v in library.videos())
        )


def test_unreadable_files(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)  # unreadable for every user, root included
    expected = {"loop.mp4": "cannot read file (Too many levels of symbolic links)"}
    if os.geteuid() != 0:  # root reads files whatever their mode
        secret = tmp_path / "secret.mp4"
        shutil.copy(corpus.unrelated, secret)
        secret.chmod(0)
        expected["secret.mp4"] = "permission denied"
    proc, report = _query_json(library, *(tmp_path / name for name in expected))
    assert proc.returncode == 1
    assert {Path(q["path"]).name: q["error"] for q in report["queries"]} == expected


@pytest.mark.slow
def test_incremental_index_and_prune(corpus: Corpus, tmp_path: Path) -> None:
    videos, lib = tmp_path / "videos", tmp_path / "lib"
    shutil.copytree(corpus.refs, videos)
    assert run_vcopy("index", videos, "--library", lib).returncode == 0
    proc = run_vcopy("index", videos, "--library", lib)
    assert "indexed 0, skipped 3" in proc.stdout
    os.utime(videos / "r0.mp4")  # new mtime, same bytes: the sha256 says unchanged
    synth.write_video(videos / "r2.mp4", synth.procedural_video(77, 8))  # changed content
    proc = run_vcopy("index", videos, "--library", lib)
    assert "indexed 1, skipped 2" in proc.stdout
    (videos / "r1.mp4").unlink()
    proc = run_vcopy("index", videos, "--library", lib, "--prune")
    assert "pruned 1" in proc.stdout
    with Library.open(lib) as library:
        assert sorted(Path(v.path).name for v in library.videos()) == ["r0.mp4", "r2.mp4"]
        r2 = next(v for v in library.videos() if v.path.endswith("r2.mp4"))
        assert abs(r2.duration_s - 8.0) < 0.5


@pytest.mark.slow
def test_sigkill_mid_index_leaves_a_library_that_opens(corpus: Corpus, tmp_path: Path) -> None:
    videos, lib = tmp_path / "videos", tmp_path / "lib"
    videos.mkdir()
    for i in range(8):
        synth.write_video(videos / f"v{i}.mp4", synth.procedural_video(200 + i, 5))
    cmd = [sys.executable, "-m", "vcopy", "index", str(videos), "--library", str(lib), "--commit-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list((lib / "vectors").glob("*.npy")) and time.monotonic() < deadline:  # a first commit
        time.sleep(0.05)
    time.sleep(0.3)
    children = descendants(proc.pid)
    assert children, "the decoder child should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if alive(pid)], "the decoder (or its resource tracker) outlived vcopy"
    with Library.open(lib) as library:  # opens, and every listed video has all its vectors
        done = len(library)
        for video in library.videos():
            assert len(library.frames_of(video.id)[1]) >= 5
    assert done < 8, "the kill came too late to test anything"
    finish = run_vcopy("index", videos, "--library", lib)
    assert finish.returncode == 0, finish.stderr
    with Library.open(lib) as library:
        assert len(library) == 8
        assert (
            library.ann.ntotal
            == library.vector_count
            == sum(len(library.frames_of(v.id)[1]) for v in library.videos())
        )


_NO_HEAVY_IMPORT = """
import sys
from vcopy.cli import main
sys.argv = ["vcopy", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted({"torch", "ultralytics", "numba"} & set(sys.modules))
assert not heavy, f"imported {heavy} before answering"
sys.exit(code)
"""


def test_usage_errors_and_a_missing_library_are_answered_before_any_heavy_import(tmp_path: Path) -> None:
    """What makes them take well under a second (torch alone takes 1.6 s to import here; faiss 0.1 s)."""
    nolib = tmp_path / "nolib"
    cases = [
        (("query", "x.mp4", "--library", nolib), 5),
        (("query", "x.mp4", "--library", nolib, "--localizer", "foo"), 2),
        (("query", tmp_path, "--library", nolib), 2),
        (("query", "x.mp4", "--library", nolib, "--json", tmp_path / "no" / "r.json"), 2),
        (("search-text", "a dog", "--library", nolib), 5),
        (("index", tmp_path, "--library", nolib), 2),
        (("-q", "query", "x.mp4", "--library", nolib, "-v"), 2),  # contradictory verbosity
        (("index", tmp_path, "--library", nolib, "--device", "cuda"), 2),  # no CUDA in this ONNX Runtime
    ]
    for args, code in cases:
        proc = subprocess.run(
            [sys.executable, "-c", _NO_HEAVY_IMPORT, *map(str, args)], capture_output=True, text=True
        )
        assert proc.returncode == code, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr


_RUNTIME_ONLY = """
import json, sys
from vcopy.cli import main
for argv in json.loads(sys.argv[1]):
    sys.argv = ["vcopy", *argv]
    try:
        main()
    except SystemExit as exit:
        assert not exit.code, (argv, exit.code)
training = {"torch", "torchvision", "ultralytics", "transformers", "sentence_transformers", "timm", "onnx"}
print(json.dumps(sorted(training & {name.split(".")[0] for name in sys.modules})))
"""


_WITHOUT_TORCH = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, NoTorch())
from vcopy.cli import main
sys.argv = ["vcopy", *sys.argv[1:]]
main()
"""


def test_train_without_the_training_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    args = ["train", "spd", str(tmp_path), "--out", str(tmp_path / "run")]
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        'vcopy: error: vcopy train needs the training extra (torch not installed): pip install "vcopy[train]"'
    ]


@pytest.mark.slow
def test_index_query_search_and_evidence_run_without_the_training_stack(
    corpus: Corpus, tmp_path: Path
) -> None:
    """Every network they run is an ONNX file (SSCD, EfficientNet-Lite0, MiniLM, SPD): none of
    them imports torch, ultralytics, transformers or sentence-transformers."""
    lib, report = tmp_path / "library", tmp_path / "r.json"
    commands = [
        ["index", corpus.refs, "--library", lib],
        ["query", corpus.copy, "--library", lib, "--json", report],
        ["search-text", "a flower", "--library", lib, "--json", tmp_path / "s.json"],
        ["evidence", report, "--out", tmp_path / "evidence"],
    ]
    argvs = json.dumps([[str(a) for a in argv] for argv in commands])
    proc = subprocess.run([sys.executable, "-c", _RUNTIME_ONLY, argvs], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    assert json.loads(report.read_text())["queries"][0]["matches"], "the copy was not found"
    assert json.loads((tmp_path / "s.json").read_text())["queries"][0]["results"]
    assert (tmp_path / "evidence" / "index.html").is_file()


def test_pairs_below_min_score_are_reported_but_are_not_matches(corpus: Corpus, library: Path) -> None:
    proc, report = _query_json(library, corpus.copy, extra=("--min-score", "1.5", "--fail-on-match"))
    assert proc.returncode == 0, proc.stderr  # nothing reaches 1.5: no match, no exit 3
    [query] = report["queries"]
    assert query["matches"] == [] and report["parameters"]["min_score"] == 1.5
    best = query["below_threshold"][0]  # the copy is still ranked first, with its segments
    assert Path(best["reference"]["path"]) == corpus.copied_reference and best["segments"]
    assert [m["score"] for m in query["below_threshold"]] == sorted(
        (m["score"] for m in query["below_threshold"]), reverse=True
    )
    _, default = _query_json(library, corpus.copy)
    rescorer = shipped_rescorer(sha256_file(shipped_weights_path()))
    assert rescorer is not None and default["parameters"]["rescorer"] == rescorer.fitted_on
    assert default["parameters"]["min_score"] == rescorer.match_threshold  # the re-scorer's, not SPD's
    assert Path(default["queries"][0]["matches"][0]["reference"]["path"]) == corpus.copied_reference


@pytest.mark.slow
def test_a_library_keeps_the_descriptor_it_was_built_with(corpus: Corpus, tmp_path: Path) -> None:
    lib = tmp_path / "old"
    proc = run_vcopy("index", corpus.refs, "--library", lib, "--descriptor", "efficientnet_lite0")
    assert proc.returncode == 0, proc.stderr
    assert Library.open(lib).meta["descriptor"].startswith("efficientnet_lite0/")
    refused = run_vcopy("index", corpus.refs, "--library", lib, "--descriptor", "sscd")
    assert refused.returncode == 2 and "built with descriptor efficientnet_lite0" in refused.stderr
    assert run_vcopy("index", corpus.refs, "--library", lib).returncode == 0  # no option: the library's own
    proc, report = _query_json(lib, corpus.copy)  # queried with that descriptor and its own SPD weights
    assert proc.returncode == 0, proc.stderr
    [match] = report["queries"][0]["matches"]
    assert Path(match["reference"]["path"]) == corpus.copied_reference
    assert report["library"]["descriptor"] == report["parameters"]["descriptor"]
    assert any(m["name"] == "spd:spd-efficientnet_lite0.onnx" for m in report["models"])
    bad_views = run_vcopy("query", corpus.copy, "--library", lib, "--views", "flip,zoom")
    assert bad_views.returncode == 2 and "'zoom'" in bad_views.stderr


def test_a_folder_with_no_video_is_a_usage_error(corpus: Corpus, library: Path, tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no videos here")
    proc = run_vcopy("-v", "query", tmp_path, "--library", library)
    assert proc.returncode == 2 and "no video files in" in proc.stderr  # never "0 queries", exit 0
    assert "readme.txt: skipped (not a video file name)" in proc.stderr  # -v names what a scan skips
    proc = run_vcopy("index", tmp_path, "--library", tmp_path / "lib")
    assert proc.returncode == 2 and "nothing to index" in proc.stderr
    assert not (tmp_path / "lib").exists()


def test_second_writer_is_refused(corpus: Corpus, library: Path) -> None:
    with Library.open(library, write=True):
        proc = run_vcopy("index", corpus.refs, "--library", library)
    assert proc.returncode == 5
    assert "another process" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_library_without_text_features_finds_copies_and_refuses_text_search(
    corpus: Corpus, library: Path, tmp_path: Path
) -> None:
    lib = tmp_path / "no-text"
    proc = run_vcopy("index", corpus.refs, "--library", lib, "--no-text")
    assert proc.returncode == 0, proc.stderr
    with Library.open(lib) as opened:
        assert not opened.pipeline_spec.text_features
    assert not (lib / "text").exists()  # no text index was built
    proc, report = _query_json(lib, corpus.copy)
    assert proc.returncode == 0, proc.stderr
    [match] = report["queries"][0]["matches"]
    assert Path(match["reference"]["path"]) == corpus.copied_reference
    refused = run_vcopy("search-text", "a flower", "--library", lib)
    assert refused.returncode == 5 and "--no-text" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    existing = run_vcopy("index", corpus.refs, "--library", library, "--no-text")
    assert existing.returncode == 2 and "--no-text applies to a new library" in existing.stderr
