"""Long uploads: a 30-s copy (cropped, brightened, re-encoded) of a library video inside uploads of
several lengths. Prints, per upload, where the copy was found, how far each end is from the truth
(the bar: within 2 s), the query's wall time (decode to segments, on an otherwise idle machine: it
should grow linearly with the upload) and the localizer's share of it.

    python examples/long_upload_check.py WORK_DIR [--minutes 5,25,60]

Videos are rendered once (procedural scenes and photo pans, 160x120 at 2 frames/s) and reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vcopy import synth
from vcopy.features import create_descriptor
from vcopy.indexing import index_videos
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.query import CopyFinder, QueryConfig
from vcopy.synth import edits
from vcopy.synth.benchmark import Recipe, random_shots, render
from vcopy.video import SamplingConfig

FPS, SIZE, COPY_S = 2.0, (120, 160), 30.0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--minutes", default="5,25,60")
    args = parser.parse_args()
    work: Path = args.work_dir
    rng = np.random.default_rng(3)
    recipes = [
        Recipe(random_shots(rng, COPY_S if i == 0 else float(rng.uniform(20, 60))), FPS, SIZE)
        for i in range(6)
    ]
    refs = [work / "refs" / f"r{i}.mp4" for i in range(len(recipes))]
    for path, recipe in zip(refs, recipes, strict=True):
        if not path.is_file():
            synth.write_video(path, render(recipe), crf=20)
    copied = edits.brightness(synth.crop(render(recipes[0]), 0.8), 1, rng)
    uploads = {}
    for minutes in (float(m) for m in args.minutes.split(",")):
        before = Recipe(random_shots(rng, (minutes * 60 - COPY_S) / 2), FPS, SIZE)
        after = Recipe(random_shots(rng, (minutes * 60 - COPY_S) / 2), FPS, SIZE)
        path = work / f"upload-{minutes:g}min.mp4"
        if not path.is_file():
            synth.write_video(path, synth.concat([render(before), copied, render(after)]), crf=30)
        uploads[path] = before.duration_s
    descriptor = create_descriptor("sscd_distilled")
    library_root = work / "library"
    if not library_root.exists():
        sampling = SamplingConfig(frame_size=descriptor.frame_size)
        with Library.open(library_root, write=True, spec=PipelineSpec.of(descriptor, sampling)) as library:
            index_videos(library, refs, descriptor)
    print("| upload | found (query s) | found (reference s) | ends off (s) | score | query s | localize s |")
    print("|---|---|---|---|---|---|---|")
    with Library.open(library_root) as library:
        finder = CopyFinder(library, descriptor, QueryConfig())
        for path, start in uploads.items():
            started = time.perf_counter()
            video = next(
                iter(finder.pipeline.encode([path], 120.0, library=False, views=finder.config.views))
            )
            maps = finder.similarity_maps(video)  # type: ignore[arg-type]
            localized = time.perf_counter()
            result = finder.localize(video, maps)  # type: ignore[arg-type]
            localize_s = time.perf_counter() - localized
            query_s = time.perf_counter() - started
            found = [m for m in result.matches if Path(m.reference.path).name == "r0.mp4"]
            if not found:
                print(f"| {path.name} | not found | | | | {query_s:.1f} | {localize_s:.2f} |")
                continue
            s = found[0].segments[0]
            truth = (start, start + COPY_S, 0.0, COPY_S)
            ends = (s.query_start_s, s.query_end_s, s.reference_start_s, s.reference_end_s)
            off = max(abs(a - b) for a, b in zip(ends, truth, strict=True))
            where = f"{s.query_start_s:.1f}-{s.query_end_s:.1f} (truth {start:.1f}-{start + COPY_S:.1f})"
            print(
                f"| {path.name} | {where} | {s.reference_start_s:.1f}-{s.reference_end_s:.1f} | {off:.1f} | "
                f"{s.score:.3f} | {query_s:.1f} | {localize_s:.2f} |"
            )


if __name__ == "__main__":
    main()
