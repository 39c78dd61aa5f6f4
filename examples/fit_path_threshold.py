"""Calibrate SPD's second opinion on the train split and write it into SPD weights.

    python examples/fit_path_threshold.py WORK_DIR [WORK_DIR ...] [--weights weights/spd.pt] [--out weights]

On a map where SPD finds no match, the best paths of dynamic programming are scored on SPD's
scale (``SimilarityPatternDetector.path_segments``): a path whose mean contrast is the
``path_threshold`` scores SPD's match threshold. This script picks the threshold with the best
video F1 (then segment F1, each averaged over the WORK_DIRs; ties to the higher threshold) on the
train splits of benchmarks (WORK_DIR/bench, made by examples/make_benchmark.py, e.g. one of
generator version 2 and one of version 3; a library of each train split's references is built in
WORK_DIR/library-train, or reused), prints the table of every threshold tried, and writes
``spd.pt`` and ``spd.onnx`` with it to ``--out``. The test and long splits are not read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from vcopy.evaluate import Scores, load_ground_truth, load_predictions, score
from vcopy.features import EncodedVideo, create_descriptor, encode_videos
from vcopy.files import write_atomically
from vcopy.library import Library
from vcopy.localize.spd import SimilarityPatternDetector
from vcopy.localize.spd_model import export_onnx, load_weights
from vcopy.query import CopyFinder, QueryConfig, SimilarityMap
from vcopy.report import build_report, write_report
from vcopy.synth.benchmark import GROUND_TRUTH, split_paths

THRESHOLDS = np.round(np.arange(0.25, 0.701, 0.025), 3)


def train_maps(work: Path, finder: CopyFinder) -> list[tuple[EncodedVideo, list[SimilarityMap]]]:
    queries = split_paths(work / "bench" / GROUND_TRUTH, "train", "queries")
    return [
        (v, finder.similarity_maps(v))
        for v in encode_videos(queries, finder.descriptor, finder.sampling)
        if isinstance(v, EncodedVideo)
    ]


def train_scores(work: Path, weights: Path, thresholds: list[float | None]) -> list[Scores]:
    """Scores on the train split of the benchmark in ``work`` with each ``path_threshold`` (None:
    no second opinion); its maps are computed once."""
    gt = work / "bench" / GROUND_TRUTH
    descriptor = create_descriptor(load_weights(weights)["descriptor"].split("/", 1)[0])
    library_root = work / "library-train"
    if not library_root.exists():
        sys.path.insert(0, str(Path(__file__).parent))
        from benchmark import build_library

        build_library(library_root, split_paths(gt, "train", "references"), descriptor)
    truth = load_ground_truth(gt, "train")
    found = []
    with Library.open(library_root) as library:
        finder = CopyFinder(library, descriptor, QueryConfig(spd_weights=weights))
        maps = train_maps(work, finder)
        for threshold in thresholds:
            spd = SimilarityPatternDetector(weights, path_threshold=threshold)
            spd.path_threshold = threshold  # None: not the weights' own either
            finder.localizer = spd
            report = work / "reports" / "fit-path-threshold.json"
            report.parent.mkdir(parents=True, exist_ok=True)
            write_report(build_report(finder, [finder.localize(v, m) for v, m in maps]), str(report))
            found.append(score(truth, load_predictions(report)[0]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dirs", type=Path, nargs="+")
    parser.add_argument("--weights", type=Path, default=Path("weights/spd.pt"))
    parser.add_argument("--out", type=Path, default=Path("weights"))
    args = parser.parse_args()
    thresholds: list[float | None] = [None, *(float(t) for t in THRESHOLDS)]
    per_work = [train_scores(work, args.weights, thresholds) for work in args.work_dirs]
    print("| path_threshold | " + " | ".join(f"{w} video F1, µAP, segment F1" for w in args.work_dirs) + " |")
    print("|---|" + "---|" * len(args.work_dirs))
    for k, threshold in enumerate(thresholds):
        cells = [f"{s[k].video_f1:.3f}, {s[k].video_micro_ap:.3f}, {s[k].segment_f1:.3f}" for s in per_work]
        print(f"| {'none' if threshold is None else threshold} | " + " | ".join(cells) + " |")

    def mean(k: int, field: str) -> float:
        return float(np.mean([getattr(s[k], field) for s in per_work]))

    best = max(range(1, len(thresholds)), key=lambda k: (mean(k, "video_f1"), mean(k, "segment_f1"), k))
    print(f"path_threshold {thresholds[best]} (train splits, best mean video F1)")
    weights = load_weights(args.weights)
    calibrated = {**weights, "path_threshold": thresholds[best]}
    calibrated.pop("widths", None)  # derived when loaded
    out = args.out / args.weights.name
    buffer = out.with_suffix(".tmp.pt")
    torch.save(calibrated, buffer)
    buffer.replace(out)
    write_atomically(out.with_suffix(".onnx"), export_onnx(out))
    print(f"wrote {out} and {out.with_suffix('.onnx')}")


if __name__ == "__main__":
    main()
