"""SPD's accuracy/speed trade-off on the benchmark's long split, against DP timed alongside.

    python examples/spd_tradeoff.py WORK_DIR

WORK_DIR is a finished `python examples/benchmark.py WORK_DIR` run (its dataset and library are
reused). The long-split queries are encoded once; for each SPD setting (``max_aspect`` 2 or 1,
second look on or off) every query is localized and scored with `vcopy eval`, and the long-form
maps (both axes >= 60 frames) are timed in one batch, alternating with DP one map at a time, in
5 rounds on an otherwise idle machine (medians).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from benchmark import LONG_FORM_FRAMES

from vcopy.evaluate import evaluate
from vcopy.features import EncodedVideo, FrameDescriptor, encode_videos
from vcopy.library import Library
from vcopy.localize import create_localizer
from vcopy.localize.base import MapInput
from vcopy.localize.spd import SimilarityPatternDetector
from vcopy.query import CopyFinder, QueryConfig
from vcopy.report import build_report, write_report
from vcopy.synth.benchmark import split_paths

SETTINGS = ((2, True), (2, False), (1, True), (1, False))  # (max_aspect, second look)
ROUNDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    args = parser.parse_args()
    gt = args.work_dir / "bench" / "groundtruth.json"
    descriptor = FrameDescriptor()
    dp = create_localizer("dp")
    rows = []
    with Library.open(args.work_dir / "library") as library:
        finder = CopyFinder(library, descriptor, QueryConfig(localizer="spd"))
        encoded = [
            (item, finder.similarity_maps(item))
            for item in encode_videos(split_paths(gt, "long", "queries"), descriptor, finder.sampling)
            if isinstance(item, EncodedVideo)
        ]
        long_form: list[MapInput] = [
            (m.contrast, video.timestamps_s, m.reference_timestamps_s)
            for video, maps in encoded
            for m in maps
            if min(m.contrast.shape) >= LONG_FORM_FRAMES
        ]
        for max_aspect, second_look in SETTINGS:
            spd = SimilarityPatternDetector(
                max_aspect=max_aspect, second_look_score=0.15 if second_look else 1.0
            )
            finder.localizer = spd
            report = args.work_dir / "reports" / f"long-spd-aspect{max_aspect}-look{int(second_look)}.json"
            write_report(build_report(finder, [finder.localize(v, maps) for v, maps in encoded]), str(report))
            scores = evaluate(gt, report, "long").overall
            spd.localize_batch(long_form)  # warm-up
            spd_ms, dp_ms = [], []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                spd.localize_batch(long_form)
                spd_ms.append((time.perf_counter() - started) / len(long_form) * 1000)
                one = []
                for m in long_form:
                    started = time.perf_counter()
                    dp(*m)
                    one.append((time.perf_counter() - started) * 1000)
                dp_ms.append(float(np.median(one)))
            s, d = float(np.median(spd_ms)), float(np.median(dp_ms))
            rows.append(
                f"| {max_aspect} | {'on' if second_look else 'off'} | {scores.segment_precision:.3f} | "
                f"{scores.segment_recall:.3f} | {scores.segment_f1:.3f} | {scores.video_micro_ap:.3f} | "
                f"{s:.2f} | {d:.2f} | {d / s:.1f}x |"
            )
    print(f"{len(long_form)} long-form maps, median {np.median([m[0].size for m in long_form]):.0f} cells\n")
    print(
        "| `max_aspect` | second look | long seg P | long seg R | long seg F1 | long video µAP "
        "| SPD ms/map | DP ms/map | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
