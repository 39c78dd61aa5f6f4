"""Long-video check: a 20-minute query that copies 2 minutes from the middle of a 30-minute reference.

    python examples/long_video_check.py WORK_DIR [--localizer spd] [--spd-weights FILE]

Renders both videos (procedural scenes and photo pans, 160x120 at 4 frames/s, H.264), with the
copy cropped by 10%, brightened and re-encoded (videos already in WORK_DIR are reused: they are
deterministic); indexes the reference; queries; prints the found segment and how far each of its
ends is from the truth (the bar: within 2 s at both ends).
"""

from __future__ import annotations

import argparse
import shutil
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

FPS, SIZE = 4.0, (120, 160)
REFERENCE_S, QUERY_S = 1800.0, 1200.0
COPY_REFERENCE_START_S, COPY_S = 840.0, 120.0


def make_videos(work: Path, seed: int = 7) -> tuple[Path, Path, float]:
    """(reference path, query path, query second where the copy starts)."""
    rng = np.random.default_rng(seed)
    reference = Recipe(random_shots(rng, REFERENCE_S), FPS, SIZE)
    before = Recipe(random_shots(rng, (QUERY_S - COPY_S) / 2), FPS, SIZE)
    after = Recipe(random_shots(rng, (QUERY_S - COPY_S) / 2), FPS, SIZE)
    ref_path, query_path = work / "reference.mp4", work / "query.mp4"
    if ref_path.is_file() and query_path.is_file():
        return ref_path, query_path, before.duration_s
    synth.write_video(ref_path, render(reference), crf=20)
    copy = render(reference, COPY_REFERENCE_START_S, COPY_REFERENCE_START_S + COPY_S)
    copy = edits.brightness(synth.crop(copy, 0.9), 1, rng)
    query = synth.concat([render(before), copy, render(after)])
    synth.write_video(query_path, query, crf=30)
    return ref_path, query_path, before.duration_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--localizer", default="spd")
    parser.add_argument("--spd-weights", type=Path, help="SPD weights (default: the shipped ones)")
    args = parser.parse_args()
    work: Path = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ref_path, query_path, copy_query_start_s = make_videos(work)
    print(f"rendered in {time.perf_counter() - started:.0f} s")
    descriptor = create_descriptor()
    shutil.rmtree(work / "library", ignore_errors=True)
    with Library.open(
        work / "library",
        write=True,
        spec=PipelineSpec.of(descriptor),
    ) as library:
        index_videos(library, [ref_path], descriptor)
    with Library.open(work / "library") as library:
        finder = CopyFinder(
            library, descriptor, QueryConfig(localizer=args.localizer, spd_weights=args.spd_weights)
        )
        started = time.perf_counter()
        result = finder.query(query_path)
        print(f"query ({args.localizer}) took {time.perf_counter() - started:.1f} s")
    truth = (
        copy_query_start_s,
        copy_query_start_s + COPY_S,
        COPY_REFERENCE_START_S,
        COPY_REFERENCE_START_S + COPY_S,
    )
    print(f"truth: query {truth[0]:.1f}-{truth[1]:.1f} s, reference {truth[2]:.1f}-{truth[3]:.1f} s")
    segments = [s for m in result.matches for s in m.segments]
    if not segments:
        print("FAIL: no copy found")
        raise SystemExit(1)
    best = max(segments, key=lambda s: s.score)
    found = (best.query_start_s, best.query_end_s, best.reference_start_s, best.reference_end_s)
    errors = [abs(a - b) for a, b in zip(found, truth, strict=True)]
    print(
        f"found: query {found[0]:.1f}-{found[1]:.1f} s, reference {found[2]:.1f}-{found[3]:.1f} s "
        f"(score {best.score:.3f}; {len(segments)} segments in all)"
    )
    print("end errors (s): " + ", ".join(f"{e:.1f}" for e in errors))
    ok = max(errors) <= 2.0
    print("PASS: both ends within 2 s" if ok else "FAIL: an end is more than 2 s off")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
