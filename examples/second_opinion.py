"""Measure a second opinion for SPD: dynamic programming's best paths on the maps where SPD finds
no match, scored on SPD's scale (a path whose mean contrast is T scores SPD's match threshold).

    python examples/second_opinion.py WORK_DIR [WORK_DIR ...]

Each WORK_DIR holds a benchmark in WORK_DIR/bench (examples/make_benchmark.py, e.g. one of
generator version 2 and one with --catalogue); a library of its train split's references is built
in WORK_DIR/library-train (or reused) and its train queries are scored without the second opinion
and with it at each T. Only train splits are read. The measured result (docs/benchmarks.md): the
second opinion lowered precision and µAP on every train split at every T, so vcopy does not use it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vcopy.evaluate import Scores, load_predictions, score
from vcopy.features import EncodedVideo, create_descriptor, encode_videos
from vcopy.groundtruth import GROUND_TRUTH, load_ground_truth, split_paths
from vcopy.library import Library
from vcopy.localize import Localizer, Segment, create_localizer
from vcopy.localize.base import MapInput, suppress_overlaps
from vcopy.localize.dp import DynamicProgramming
from vcopy.localize.spd import SimilarityPatternDetector
from vcopy.query import CopyFinder, QueryConfig
from vcopy.report import build_report, write_report

PATH_THRESHOLDS = (0.35, 0.45, 0.55, 0.65)


@dataclass
class SecondOpinion:
    """SPD, and DP's two best paths on each map where SPD finds no match, scaled onto SPD's scale."""

    spd: SimilarityPatternDetector
    path_threshold: float
    name: str = "spd+dp"

    @property
    def match_threshold(self) -> float:
        return self.spd.match_threshold

    @property
    def settings(self) -> dict[str, object]:
        return {**self.spd.settings, "path_threshold": self.path_threshold}

    @property
    def models(self) -> list[dict[str, str]]:
        return self.spd.models

    @property
    def trained_on(self) -> str | None:
        return self.spd.trained_on

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        return self.localize_batch([(contrast, query_timestamps_s, reference_timestamps_s)])[0]

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        found = self.spd.localize_batch(maps)
        paths = DynamicProgramming(min_score=0.0, max_segments=2)
        scale = self.match_threshold / self.path_threshold
        for segments, m in zip(found, maps, strict=True):
            if not any(s.score >= self.match_threshold for s in segments):
                segments += [replace(p, score=min(1.0, p.score * scale)) for p in paths(*m)]
        return [suppress_overlaps(s) for s in found]


def train_scores(work: Path) -> list[Scores]:
    """Scores on the train split of the benchmark in ``work``: SPD alone, then with the second
    opinion at each of ``PATH_THRESHOLDS`` (the maps are computed once)."""
    gt = work / "bench" / GROUND_TRUTH
    descriptor = create_descriptor("sscd_distilled")
    sys.path.insert(0, str(Path(__file__).parent))
    from benchmark import train_library

    library_root = train_library(work, descriptor)
    truth = load_ground_truth(gt, "train")
    found = []
    with Library.open(library_root) as library:
        finder = CopyFinder(library, descriptor, QueryConfig(rescore=False))
        queries = split_paths(gt, "train", "queries")
        encoded = [
            v for v in encode_videos(queries, descriptor, finder.sampling) if isinstance(v, EncodedVideo)
        ]
        maps = [(v, finder.similarity_maps(v)) for v in encoded]
        spd = create_localizer("spd", None, descriptor.name)
        assert isinstance(spd, SimilarityPatternDetector)
        localizers: list[Localizer] = [spd, *[SecondOpinion(spd, t) for t in PATH_THRESHOLDS]]
        for localizer in localizers:
            finder.localizer = localizer
            report = work / "reports" / "second-opinion.json"
            report.parent.mkdir(parents=True, exist_ok=True)
            write_report(build_report(finder, [finder.localize(v, m) for v, m in maps]), str(report))
            found.append(score(truth, load_predictions(report)[0]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dirs", type=Path, nargs="+")
    args = parser.parse_args()
    per_work = [train_scores(work) for work in args.work_dirs]
    print(
        "| second opinion | " + " | ".join(f"{w}: video P, R, µAP, segment F1" for w in args.work_dirs) + " |"
    )
    print("|---|" + "---|" * len(args.work_dirs))
    for k, label in enumerate(["none", *(f"T = {t}" for t in PATH_THRESHOLDS)]):
        cells = [
            ", ".join(f"{v:.3f}" for v in (s.video_precision, s.video_recall, s.video_micro_ap, s.segment_f1))
            for s in (w[k] for w in per_work)
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
