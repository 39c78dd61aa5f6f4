"""Calibrate SPD's second opinion on the train split and write it into SPD weights.

    python examples/fit_path_threshold.py WORK_DIR [--weights weights/spd.pt] [--out weights]

On a map where SPD finds no match, the best paths of dynamic programming are scored on SPD's
scale (``SimilarityPatternDetector.path_segments``): a path whose mean contrast is the
``path_threshold`` scores SPD's match threshold. This script picks the threshold with the best
video F1 (then segment F1; ties to the higher threshold) on the benchmark's train split (WORK_DIR/bench,
made by examples/make_benchmark.py; a library of its references is built in WORK_DIR/library-train,
or reused), prints the table of every threshold tried, and writes ``spd.pt`` and ``spd.onnx`` with
it to ``--out``. The test and long splits are not read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from vcopy.evaluate import load_ground_truth, load_predictions, score
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--weights", type=Path, default=Path("weights/spd.pt"))
    parser.add_argument("--out", type=Path, default=Path("weights"))
    args = parser.parse_args()
    work: Path = args.work_dir
    gt = work / "bench" / GROUND_TRUTH
    weights = load_weights(args.weights)
    descriptor = create_descriptor(weights["descriptor"].split("/", 1)[0])
    library_root = work / "library-train"
    if not library_root.exists():
        import sys

        sys.path.insert(0, str(Path(__file__).parent))
        from benchmark import build_library

        build_library(library_root, split_paths(gt, "train", "references"), descriptor)
    truth = load_ground_truth(gt, "train")
    rows = []
    with Library.open(library_root) as library:
        finder = CopyFinder(library, descriptor, QueryConfig(spd_weights=args.weights))
        maps = train_maps(work, finder)
        for threshold in [None, *THRESHOLDS]:
            finder.localizer = SimilarityPatternDetector(args.weights, path_threshold=threshold)
            if threshold is None:
                finder.localizer.path_threshold = None  # the weights' own, if any, is not used either
            report = work / "reports" / "fit-path-threshold.json"
            report.parent.mkdir(parents=True, exist_ok=True)
            write_report(build_report(finder, [finder.localize(v, m) for v, m in maps]), str(report))
            predictions, _ = load_predictions(report)
            s = score(truth, predictions)
            rows.append((threshold, s))
            shown = "none" if threshold is None else f"{threshold:.3f}"
            print(
                f"| {shown} | {s.video_precision:.3f} | {s.video_recall:.3f} | {s.video_f1:.3f} | "
                f"{s.video_micro_ap:.3f} | {s.segment_f1:.3f} |",
                flush=True,
            )
    best = max((r for r in rows if r[0] is not None), key=lambda r: (r[1].video_f1, r[1].segment_f1, r[0]))[0]
    print(f"path_threshold {best} (train split, best video F1)")
    calibrated = {**weights, "path_threshold": float(best)}
    calibrated.pop("widths", None)  # derived when loaded
    out = args.out / args.weights.name
    buffer = out.with_suffix(".tmp.pt")
    torch.save(calibrated, buffer)
    buffer.replace(out)
    write_atomically(out.with_suffix(".onnx"), export_onnx(out))
    print(f"wrote {out} and {out.with_suffix('.onnx')}")


if __name__ == "__main__":
    main()
