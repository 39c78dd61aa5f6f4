"""Indexing on Ray against indexing locally, on this machine: `vcopy index` as a user runs it,
locally and with `--ray` (a local cluster started for the run) with 1 and 2 workers, into fresh
libraries; prints each run's throughput as `vcopy index` reports it (video seconds per wall
second of indexing), the command's whole wall time (Python start, models and, with --ray, the
cluster), and whether the library equals the local one (same videos and frame times, vectors
within 1e-5).

    python examples/ray_throughput.py WORK_DIR [--videos 4] [--copies 4] [--seconds 60] [--repeats 2]

The videos are examples/index_throughput.py's (854 x 480, 25 frames/s; made once in WORK_DIR/made),
each indexed ``--copies`` times under other names (WORK_DIR/videos): making them is slower than
indexing them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from index_throughput import make_videos

from vcopy.library import Library

RUNS = {"local": [], "--ray, 1 worker": ["--ray", "local", "--ray-workers", "1"]}
RUNS["--ray, 2 workers"] = ["--ray", "local", "--ray-workers", "2"]


def index(videos: Path, library: Path, extra: list[str]) -> tuple[float, float]:
    """(throughput in video s per wall s as `vcopy index` prints it, the command's wall seconds)."""
    shutil.rmtree(library, ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vcopy", "-q", "index", str(videos), "--library", str(library), *extra],
        capture_output=True,
        text=True,
    )
    wall_s = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"vcopy index {' '.join(extra)} failed: {proc.stderr}")
    match = re.search(r"\(([\d.]+) video s per wall s\)", proc.stdout)
    assert match is not None, proc.stdout
    return float(match[1]), wall_s


def same_library(a: Path, b: Path) -> bool:
    with Library.open(a) as one, Library.open(b) as other:
        mine = {v.path: one.frames_of(v.id) for v in one.videos()}
        theirs = {v.path: other.frames_of(v.id) for v in other.videos()}
    return mine.keys() == theirs.keys() and all(
        np.array_equal(mine[p][1], theirs[p][1]) and np.allclose(mine[p][0], theirs[p][0], atol=1e-5)
        for p in mine
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    made, videos = args.work_dir / "made", args.work_dir / "videos"
    made.mkdir(parents=True, exist_ok=True)
    videos.mkdir(exist_ok=True)
    for path in make_videos(made, args.videos, args.seconds):
        for copy in range(args.copies):
            if not (videos / f"{copy}-{path.name}").is_file():
                shutil.copyfile(path, videos / f"{copy}-{path.name}")
    count = args.videos * args.copies
    print(f"{count} videos of {args.seconds:g} s, 854x480; best of {args.repeats} runs each\n")
    print(
        "| run | video s per wall s (indexing) | vs local | command wall s | library equals the local one |"
    )
    print("|---|---|---|---|---|")
    local_rate = 0.0
    for name, extra in RUNS.items():
        library = args.work_dir / f"lib-{len(extra)}-{extra[-1] if extra else 'local'}"
        runs = [index(videos, library, extra) for _ in range(args.repeats)]
        rate, wall_s = max(r[0] for r in runs), min(r[1] for r in runs)
        local_rate = local_rate or rate
        same = "—" if not extra else ("yes" if same_library(library, args.work_dir / "lib-0-local") else "NO")
        print(f"| {name} | {rate:.1f} | {rate / local_rate:.2f}x | {wall_s:.1f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
