"""How the library scales: libraries of 10 h, 100 h and 1,000 h at 1 frame/s, filled through the
real commit path with 10-minute videos of random 512-d vectors (nothing is decoded), then per size:

- fill time per video-hour, and the commit time of one more 10-minute video (median and mean of
  ``--commits`` commits, the mean with the index file written when enough has changed);
- bytes on disk; open time and RSS after open, with its peak while opening (a fresh process that
  opens the library and loads its index, as `vcopy query` does; VmRSS and VmHWM);
- retrieval + similarity maps for a 60-s and a 10-minute query (the query path of `vcopy query`
  after decoding: index search with the default views, exact re-ranking of the shortlist on the
  stored vectors, the maps of the candidates), median of 5.

    python examples/library_scale.py WORK_DIR [--hours 10,100,1000] [--commits 100] [--index-spec SPEC]

Each library is WORK_DIR/lib-<hours>h (kept; filled again only when missing), with another
``--index-spec`` than ``auto`` WORK_DIR/lib-<hours>h-<spec> (``"auto;ondisk"``: on-disk inverted
lists from the size where ``auto`` moves to IVF-PQ). The 100,000 h row of
docs/benchmarks.md is projected from these per-vector costs (see there).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vcopy.ann import AnnSpec
from vcopy.features.sscd import background_path, load_background
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.query import QueryConfig
from vcopy.similarity import background_similarity, exact_score, retrieve, similarity_map
from vcopy.synth.vectors import random_video

DIM = 512
LIBRARY_SPEC = PipelineSpec(descriptor="synthetic/512d", dim=DIM, sample_fps=1.0, frame_size=224)
VIDEO_FRAMES = 600  # 10 minutes at 1 frame/s
BATCH = 10  # videos per commit while filling

_OPEN = """
import sys, time
started = time.perf_counter()
from vcopy.library import Library
library = Library.open(sys.argv[1])
library.load_index()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
megabytes = [int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")]
print(time.perf_counter() - started, *megabytes)
"""


def fill(root: Path, hours: int, spec: AnnSpec) -> float:
    """Fill a library of ``hours`` video-hours with index ``spec``; returns wall seconds (0 when it
    was already full)."""
    videos = hours * 6
    rng = np.random.default_rng(hours)
    started = time.perf_counter()
    with Library.open(root, write=True, spec=LIBRARY_SPEC) as library:
        have = len(library)
        for lo in range(have, videos, BATCH):
            batch = [
                random_video(rng, i, VIDEO_FRAMES, DIM, text=False)
                for i in range(lo, min(lo + BATCH, videos))
            ]
            library.commit(batch, [float(VIDEO_FRAMES)] * len(batch))
        if library.meta["ann_spec"] != str(spec):  # filled with `auto`, then built as asked (timed)
            library.rebuild_index(spec)
    return time.perf_counter() - started if have < videos else 0.0


def commit_seconds(root: Path, commits: int) -> tuple[float, float]:
    """Median and mean time to commit one more 10-minute video (the mean includes the index file
    written when enough has changed), over ``commits`` commits; the videos are then removed again,
    unmeasured."""
    rng = np.random.default_rng(999)
    times = []
    with Library.open(root, write=True) as library:
        library.load_index()  # opening is not part of a commit
        for i in range(commits):
            video = random_video(rng, 10_000_000 + i, VIDEO_FRAMES, DIM, text=False)
            started = time.perf_counter()
            library.commit([video], [float(VIDEO_FRAMES)])
            times.append(time.perf_counter() - started)
        added = [library.video_by_path(f"/videos/v{10_000_000 + i:07d}.mp4") for i in range(commits)]
        library.remove([v.id for v in added if v is not None])
    return float(np.median(times)), float(np.mean(times))


def query_seconds(library: Library, seconds: int, background_set: np.ndarray) -> float:
    """Median wall time of retrieval + exact re-ranking + maps for a query of ``seconds`` frames
    (three views, as the default views make) copied from a library video, with noise."""
    config = QueryConfig()
    rng = np.random.default_rng(seconds)
    source, _ = library.frames_of(library.videos()[len(library) // 2].id)
    frames = np.resize(source, (seconds, DIM)) + rng.normal(0, 0.02, (seconds, DIM)).astype(np.float32)
    views = np.stack([frames, np.roll(frames, 1, axis=1), frames[:, ::-1]])
    views /= np.linalg.norm(views, axis=2, keepdims=True)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        background = background_similarity(views, background_set, config.background_rank)
        shortlist = retrieve(library, views, background, config.knn, config.shortlist)
        scores = []
        for candidate in shortlist:
            vectors, _ = library.frames_of(candidate.video_id)
            scores.append(exact_score(similarity_map(views, vectors, background)))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--hours", default="10,100,1000")
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--index-spec", type=AnnSpec.parse, default=AnnSpec())
    args = parser.parse_args()
    background_set = load_background(background_path("sscd_distilled"))
    print(
        "| library | vectors | index | fill s per video-hour | commit s, median / mean (one 10-min video) "
        "| bytes on disk "
        "| open s | RSS after open MB (peak while opening) | 60-s query s | 10-min query s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for hours in (int(h) for h in args.hours.split(",")):
        tag = "" if str(args.index_spec) == "auto" else "-" + re.sub(r"\W+", "-", str(args.index_spec))
        root = args.work_dir / f"lib-{hours}h{tag}"
        filled_s = fill(root, hours, args.index_spec)
        commit_median_s, commit_mean_s = commit_seconds(root, args.commits)
        opened = subprocess.run(
            [sys.executable, "-c", _OPEN, str(root)], capture_output=True, text=True, check=True
        )
        open_s, rss_mb, peak_mb = (float(v) for v in opened.stdout.split())
        with Library.open(root) as library:
            info = library.info()
            q60 = query_seconds(library, 60, background_set)
            q600 = query_seconds(library, 600, background_set)
        fill_text = f"{filled_s / hours:.2f}" if filled_s else "(kept)"
        print(
            f"| {hours} h | {info.vectors:,} | {info.index_built} | {fill_text} "
            f"| {commit_median_s:.3f} / {commit_mean_s:.3f} | {info.bytes_on_disk / 1e9:.2f} GB "
            f"| {open_s:.2f} | {rss_mb:.0f} ({peak_mb:.0f}) | {q60:.3f} | {q600:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
