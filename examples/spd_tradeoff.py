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
from benchmark import long_form_maps

from vcopy.errors import VcopyError
from vcopy.evaluate import evaluate
from vcopy.features import EncodedVideo, create_descriptor, encode_videos
from vcopy.groundtruth import split_paths
from vcopy.library import Library
from vcopy.localize import create_localizer
from vcopy.localize.base import MapInput
from vcopy.localize.spd import SimilarityPatternDetector
from vcopy.query import CopyFinder, QueryConfig
from vcopy.report import build_report, write_report

SETTINGS = ((2, True), (2, False), (1, True), (1, False))  # (max_aspect, second look)
ROUNDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    args = parser.parse_args()
    gt = args.work_dir / "bench" / "groundtruth.json"
    if not gt.is_file():
        parser.error(f"{gt}: no benchmark dataset; run `python examples/benchmark.py {args.work_dir}` first")
    try:
        print(tradeoff_table(args.work_dir, gt))
    except VcopyError as exc:
        parser.exit(1, f"error: {exc}\n")


def tradeoff_table(work_dir: Path, gt: Path) -> str:
    """The markdown table of every setting in ``SETTINGS`` (reports go to WORK_DIR/reports)."""
    descriptor = create_descriptor()
    dp = create_localizer("dp")
    rows = []
    with Library.open(work_dir / "library") as library:
        finder = CopyFinder(library, descriptor, QueryConfig(localizer="spd"))
        encoded = [
            (item, finder.similarity_maps(item))
            for item in encode_videos(split_paths(gt, "long", "queries"), descriptor, finder.sampling)
            if isinstance(item, EncodedVideo)
        ]
        long_form: list[MapInput] = [m for video, maps in encoded for m in long_form_maps(video, maps)]
        if not long_form:
            raise VcopyError(f"{gt}: its long split gives no long-form maps (the --small dataset has none)")
        for max_aspect, second_look in SETTINGS:
            spd = SimilarityPatternDetector(max_aspect=max_aspect)
            if not second_look:
                spd.second_look_score = 1.0  # no box scores above 1
            finder.localizer = spd
            report = work_dir / "reports" / f"long-spd-aspect{max_aspect}-look{int(second_look)}.json"
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
    cells = np.median([m[0].size for m in long_form])
    header = (
        "| `max_aspect` | second look | long seg P | long seg R | long seg F1 | long video µAP "
        "| SPD ms/map | DP ms/map | speed-up |"
    )
    return "\n".join(
        [f"{len(long_form)} long-form maps, median {cells:.0f} cells\n", header, "|---" * 9 + "|", *rows]
    )


if __name__ == "__main__":
    main()
