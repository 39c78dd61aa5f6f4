"""`--ray` on a real local Ray cluster that the tests start (`ray start --head`, two CPUs): the
library and the report equal a local run's; a worker killed mid-run costs no video and no
duplicate; a bad file fails alone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import Corpus, alive, descendants, run_vcopy

from vcopy.library import Library
from vcopy.processes import REAP_POLL_S

pytest.importorskip("ray")
RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a two-CPU Ray cluster on 127.0.0.1, stopped (every process) afterwards."""
    port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    start = [*RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2"]
    start += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # a loopback-only cluster of this test: without Ray's token authentication, which would
        # otherwise have clients read a token left in ~/.ray by an earlier cluster
        env.setenv("RAY_AUTH_MODE", "disabled")
        subprocess.run(start, check=True, capture_output=True, timeout=120)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            subprocess.run([*RAY, "stop", "--force"], capture_output=True, timeout=120)


def _stored(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with Library.open(root) as library:
        return {Path(v.path).name: library.frames_of(v.id) for v in library.videos()}


def _assert_same_library(ray_built: Path, local: Path) -> None:
    got, want = _stored(ray_built), _stored(local)
    assert sorted(got) == sorted(want)
    for name, (vectors, times) in want.items():
        np.testing.assert_array_equal(got[name][1], times)
        np.testing.assert_allclose(got[name][0], vectors, atol=1e-5)


def _findings(report: dict) -> list:
    return [
        (Path(q["path"]).name, [(Path(m["reference"]["path"]).name, m["segments"]) for m in q["matches"]])
        for q in report["queries"]
    ]


def _encoders() -> list[int]:
    """Pids of the Ray actors that encode videos."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"_Encoder" in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_library_and_a_report_made_on_ray_equal_local_ones(
    corpus: Corpus, library: Path, ray_head: str, tmp_path: Path
) -> None:
    lib = tmp_path / "lib"
    proc = run_vcopy("index", corpus.refs, "--library", lib, "--ray", ray_head, "--ray-workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "indexed 3" in proc.stdout
    _assert_same_library(lib, library)
    again = run_vcopy("index", corpus.refs, "--library", lib, "--ray", ray_head)
    assert again.returncode == 0 and "indexed 0, skipped 3" in again.stdout  # incremental, as locally

    suspects = [corpus.copy, corpus.unrelated]
    local = run_vcopy("query", *suspects, "--library", library, "--json", tmp_path / "local.json")
    on_ray = run_vcopy(
        "query", *suspects, "--library", lib, "--json", tmp_path / "ray.json", "--ray", ray_head
    )
    assert local.returncode == on_ray.returncode == 0, on_ray.stderr
    reports = [json.loads((tmp_path / name).read_text()) for name in ("local.json", "ray.json")]
    assert _findings(reports[0]) == _findings(reports[1])
    assert any(matches for _, matches in _findings(reports[1]))  # the copy is found


@pytest.mark.slow
def test_a_killed_worker_costs_no_video_and_a_bad_file_fails_alone(
    corpus: Corpus, library: Path, ray_head: str, tmp_path: Path
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for copy in range(10):  # enough work (~8 s on 2 idle cores) for a worker to be killed in the middle
        for ref in sorted(corpus.refs.glob("*.mp4")):
            shutil.copyfile(ref, videos / f"{copy}-{ref.name}")
    (videos / "bad.mp4").write_bytes(b"not a video at all" * 100)
    lib = tmp_path / "lib"
    earlier = set(_encoders())  # actors of an earlier test may still be ending
    proc = subprocess.Popen(
        [sys.executable, "-m", "vcopy", "index", videos, "--library", lib, "--ray", ray_head],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed: list[int] = []

    def kill_one_worker_at_work() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = [pid for pid in _encoders() if pid not in earlier and alive(pid)]
            if workers:
                time.sleep(3)  # its model loaded, a video in hand
                if proc.poll() is None:
                    os.kill(workers[0], signal.SIGKILL)
                    killed.append(workers[0])
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker_at_work)
    killer.start()
    stdout, stderr = proc.communicate(timeout=600)
    killer.join()
    assert killed, f"the run ended before a worker could be killed: {stdout} {stderr}"
    assert proc.returncode == 1, stdout + stderr  # the bad file failed ...
    assert "bad.mp4" in stderr and "Traceback" not in stderr
    # ... alone, and the killed worker's videos were redone
    assert "indexed 30, skipped 0, failed 1" in stdout, stderr
    with Library.open(lib) as built:
        paths = [Path(v.path).name for v in built.videos()]
        assert sorted(paths) == sorted(p.name for p in videos.glob("?-*.mp4"))  # each once
        assert built.ann.ntotal == built.vector_count
    want = _stored(library)
    for name, (vectors, times) in _stored(lib).items():
        np.testing.assert_allclose(vectors, want[name.split("-", 1)[1]][0], atol=1e-5)
        np.testing.assert_array_equal(times, want[name.split("-", 1)[1]][1])


def test_ray_options_are_checked_before_any_work(corpus: Corpus, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    proc = run_vcopy("index", corpus.copy, "--ray", corpus.refs, "--library", lib)  # a path as address
    assert proc.returncode == 2 and "not a cluster address" in proc.stderr
    proc = run_vcopy("index", corpus.refs, "--library", lib, "--ray-workers", "2")
    assert proc.returncode == 2 and "--ray-workers goes with --ray" in proc.stderr
    assert not lib.exists()


@pytest.mark.slow
def test_a_local_cluster_goes_with_a_killed_vcopy(corpus: Corpus, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vcopy", "index", corpus.refs, "--library", tmp_path / "lib", "--ray"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    deadline = time.monotonic() + 120
    below: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        below = descendants(proc.pid)
        if any(_command(pid).startswith("ray::DashboardAgent") for pid in below):
            time.sleep(3 * REAP_POLL_S)  # the whole local cluster is up and the reaper has noted it
            break
        time.sleep(0.2)
    assert proc.poll() is None, "vcopy ended before its cluster was up"
    below = descendants(proc.pid)
    proc.kill()  # SIGKILL: vcopy runs no code after it
    proc.wait()
    deadline = time.monotonic() + 20  # Ray's agents alone linger about 90 s
    while time.monotonic() < deadline and any(alive(pid) for pid in below):
        time.sleep(0.5)
    assert not [(pid, _command(pid)) for pid in below if alive(pid)]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
