"""Zero-shot text search on real photographs: does a caption find its video with no training?

    python examples/zero_shot_check.py WORK_DIR [--distractors N]

Makes one short video per real photo that ships in installed packages (a cat, a cup of coffee, a
space shuttle, a bus, ...: an object gliding over a textured background; see
``vcopy.synth.captioned``), plus N procedural videos with no object as distractors, indexes them
with `vcopy index`'s code path, searches every caption and prints R@1/5/10, median and mean rank,
and each caption's rank.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from vcopy import synth
from vcopy.features import create_descriptor
from vcopy.indexing import index_videos
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.synth.captioned import make_real_photo_set
from vcopy.text.metrics import ranks, retrieval_metrics
from vcopy.text.search import TextSearcher


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--distractors", type=int, default=10)
    args = parser.parse_args()
    videos = args.work_dir / "videos"
    captions_file = make_real_photo_set(videos)
    for i in range(args.distractors):
        path = videos / f"distractor{i:02d}.mp4"
        if not path.is_file():
            synth.write_video(path, synth.procedural_video(1000 + i, 6.0, fps=8))
    entries = [json.loads(line) for line in captions_file.read_text().splitlines()]
    descriptor = create_descriptor()
    shutil.rmtree(args.work_dir / "library", ignore_errors=True)
    with Library.open(
        args.work_dir / "library",
        write=True,
        spec=PipelineSpec.of(descriptor),
    ) as library:
        index_videos(library, [videos], descriptor)
    with Library.open(args.work_dir / "library") as library:
        searcher = TextSearcher(library)
        started = time.perf_counter()
        results = searcher.search([e["caption"] for e in entries], top=len(library))
        seconds = time.perf_counter() - started
        paths = sorted(v.path for v in library.videos())
    column = {p: i for i, p in enumerate(paths)}
    scores = np.full((len(entries), len(paths)), -np.inf)
    for row, result in enumerate(results):
        for hit in result.hits:
            scores[row, column[hit.path]] = hit.score
    positive = np.array([column[str((videos / e["video"]).resolve())] for e in entries])
    metrics = retrieval_metrics(scores, positive)
    print(f"{len(entries)} captions, {len(paths)} videos ({args.distractors} distractors), zero-shot")
    print(f"{seconds / len(entries) * 1000:.1f} ms per query\n")
    print("| caption | rank | top video |")
    print("|---|---|---|")
    for e, r, result in zip(entries, ranks(scores, positive), results, strict=True):
        print(f"| {e['caption']} | {r} | {Path(result.hits[0].path).name} |")
    print(
        f"\nR@1 {metrics.r1:.1f}  R@5 {metrics.r5:.1f}  R@10 {metrics.r10:.1f}  R@sum {metrics.rsum:.1f}  "
        f"median rank {metrics.median_rank:g}  mean rank {metrics.mean_rank:.2f}"
    )


if __name__ == "__main__":
    main()
