"""Processes that must not outlive vcopy: decoders die with their parent (``die_with_parent``),
and a local Ray cluster that vcopy started is reaped by a small watchdog (``Reaper``) when vcopy
dies, however it dies (Ray's own agents otherwise linger for about 90 s after a ``kill -9``: they
report the raylet's death to a GCS that is gone and wait out a 60-s timeout)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # prctl(2)
REAP_POLL_S = 0.1  # how often the watchdog notes the processes below vcopy (a /proc scan: ~3 ms)
_DONE = b"done\n"  # vcopy ended normally: nothing to reap


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies, however it dies (``kill -9`` of
    ``vcopy index`` by a cron job's timeout included), so that no decoder is left holding a video
    open (Linux ``PR_SET_PDEATHSIG``; elsewhere the parent's kill on exit is all there is)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def descendants(pid: int) -> dict[int, int]:
    """The processes below ``pid`` (children, their children, ...) and their start times (clock
    ticks since boot, from /proc: a pid reused later has another)."""
    parents: dict[int, tuple[int, int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat_file.parent.name)] = (int(fields[1]), int(fields[19]))
    found: dict[int, int] = {}
    frontier = {pid}
    while frontier:
        below = {child for child, (parent, _) in parents.items() if parent in frontier} - found.keys()
        found.update({child: parents[child][1] for child in below})
        frontier = below
    return found


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class Reaper:
    """A watchdog for the processes that will appear below this one (a local Ray cluster): it
    notes them every ``REAP_POLL_S`` and, if this process dies without ``close``, kills every one
    it noted that is still the same process, and what those started since. ``close`` (normal
    exit) leaves them to their owner."""

    def __init__(self) -> None:
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "vcopy.processes", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a signal to vcopy's process group does not reach it
        )

    def close(self) -> None:
        """vcopy ends normally: the watchdog leaves without killing anything."""
        assert self._watchdog.stdin is not None
        with contextlib.suppress(OSError):
            self._watchdog.stdin.write(_DONE)
            self._watchdog.stdin.close()
        try:
            self._watchdog.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._watchdog.kill()
            self._watchdog.wait()


def _watch(parent_pid: int) -> None:
    """The watchdog: note what is below ``parent_pid`` until its pipe closes; reap unless told
    ``done``."""
    noted: dict[int, int] = {}
    own = os.getpid()
    received = b""
    while True:
        ready, _, _ = select.select([sys.stdin.buffer], [], [], REAP_POLL_S)
        if ready:
            chunk = os.read(sys.stdin.fileno(), 64)
            if not chunk:
                break
            received += chunk
            continue
        noted.update({pid: start for pid, start in descendants(parent_pid).items() if pid != own})
    if received == _DONE:
        return
    alive = {pid: start for pid, start in noted.items() if _start_time(pid) == start}
    for pid in list(alive):  # and what they started since the last look (a Ray worker just spawned)
        alive.update(descendants(pid))
    for pid, start in alive.items():
        if _start_time(pid) == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    _watch(int(sys.argv[1]))
