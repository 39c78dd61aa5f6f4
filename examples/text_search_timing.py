"""Text-search latency on a large library: N videos of M frames each, without decoding any.

    python examples/text_search_timing.py WORK_DIR [--videos 10000] [--frames 60] [--queries 50]

The library is filled through its normal commit path with videos whose frame vectors and ImageNet
classes and layouts are drawn at random (the search does not look at pixels, only at what the library stores),
so that a 10,000-video library is built in a minute. Prints the time to open the searcher (loading
MiniLM, building the text index on first use, loading it after), and the time per query (encode,
FAISS search, best moments of the top 10), median and worst over the queries.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from vcopy.features import (
    LAYOUT_DIMS,
    LAYOUT_GRID,
    EncodedVideo,
    FrameClasses,
    TextFeatures,
    create_descriptor,
)
from vcopy.library import Library
from vcopy.text.search import TextSearcher
from vcopy.video import FileStamp, SamplingConfig, VideoInfo

QUERIES = ["a dog running on a beach", "a cup of coffee", "a red car on a road", "people in a kitchen"]


def fake_video(rng: np.random.Generator, i: int, n_frames: int, dim: int) -> EncodedVideo:
    vectors = rng.normal(size=(n_frames, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    probabilities = rng.dirichlet(np.full(1000, 0.02), n_frames).astype(np.float32)
    return EncodedVideo(
        path=Path(f"/videos/v{i:06d}.mp4"),
        info=VideoInfo(float(n_frames), 25.0, 320, 240, 0, n_frames * 25),
        stamp=FileStamp(1, i, f"{i:064x}"),
        decoder="synthetic",
        vectors=vectors,
        timestamps_s=np.arange(n_frames, dtype=np.float64),
        text=TextFeatures(
            FrameClasses.top(probabilities),
            rng.normal(size=(n_frames, LAYOUT_GRID**2 * LAYOUT_DIMS)).astype(np.float32),
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    root = args.work_dir / "library"
    shutil.rmtree(root, ignore_errors=True)
    descriptor = create_descriptor()
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    with Library.open(
        root, write=True, descriptor=descriptor, sampling=SamplingConfig(frame_size=descriptor.frame_size)
    ) as library:
        for lo in range(0, args.videos, 500):
            batch = [
                fake_video(rng, i, args.frames, descriptor.dim) for i in range(lo, min(lo + 500, args.videos))
            ]
            library.commit(batch, [float(len(v.timestamps_s)) for v in batch])
    print(
        f"library: {args.videos} videos x {args.frames} frames, "
        f"built in {time.perf_counter() - started:.0f} s"
    )
    with Library.open(root) as library:
        for label in ("first use (builds the text index)", "later use (loads it)"):
            started = time.perf_counter()
            searcher = TextSearcher(library)
            print(f"open searcher, {label}: {time.perf_counter() - started:.1f} s")
        texts = [QUERIES[i % len(QUERIES)] + f" {i}" for i in range(args.queries)]
        seconds = []
        for text in texts:
            started = time.perf_counter()
            searcher.search([text], top=10)
            seconds.append(time.perf_counter() - started)
    print(
        f"per query (top 10 with moments): median {np.median(seconds) * 1000:.1f} ms, "
        f"worst {max(seconds) * 1000:.1f} ms over {len(texts)} queries"
    )


if __name__ == "__main__":
    main()
