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

from vcopy.features import create_descriptor
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.synth.vectors import random_video
from vcopy.text.search import TextSearcher

QUERIES = ["a dog running on a beach", "a cup of coffee", "a red car on a road", "people in a kitchen"]


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
    with Library.open(root, write=True, spec=PipelineSpec.of(descriptor)) as library:
        for lo in range(0, args.videos, 500):
            numbers = range(lo, min(lo + 500, args.videos))
            batch = [random_video(rng, i, args.frames, descriptor.dim) for i in numbers]
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
