"""Fit the pair re-scorer (``vcopy.localize.rescore``) on the train splits of benchmarks, for the
shipped SPD weights, and write it where vcopy finds it.

    python examples/fit_rescorer.py WORK_DIR [WORK_DIR ...] [--out weights/rescorer.json]

Each WORK_DIR holds a benchmark in WORK_DIR/bench (examples/make_benchmark.py; the shipped one was
fitted on one of generator version 2 and one made with --catalogue); a library of its train
split's references is built in WORK_DIR/library-train (or reused). Only train splits are read.
The match threshold is the one with the best video F1 on five-fold cross-validated scores (folds
by query); the table compares SPD's own scores with the cross-validated re-scored ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcopy.evaluate import micro_average_precision, recall_at_precision
from vcopy.features import EncodedVideo, create_descriptor, encode_videos
from vcopy.groundtruth import GROUND_TRUTH, load_ground_truth, split_paths
from vcopy.library import Library
from vcopy.localize.rescore import FEATURES, PairRescorer, best_paths, fit_rescorer, pair_features
from vcopy.localize.spd import SimilarityPatternDetector
from vcopy.query import CopyFinder, QueryConfig

FOLDS = 5


@dataclass
class Pairs:
    """Every candidate pair the re-scorer scores on one benchmark's train split: those SPD boxes,
    and those DP finds a path on."""

    features: np.ndarray
    labels: np.ndarray
    queries: list[str]
    true_pairs: int  # copied pairs in the ground truth, shortlisted or not
    spd_sha256: str


def train_pairs(work: Path) -> Pairs:
    gt = work / "bench" / GROUND_TRUTH
    descriptor = create_descriptor("sscd_distilled")
    sys.path.insert(0, str(Path(__file__).parent))
    from benchmark import train_library

    library_root = train_library(work, descriptor)
    truth = load_ground_truth(gt, "train")
    features, labels, queries = [], [], []
    with Library.open(library_root) as library:
        finder = CopyFinder(library, descriptor, QueryConfig(rescore=False))
        assert isinstance(finder.localizer, SimilarityPatternDetector)
        for video in encode_videos(split_paths(gt, "train", "queries"), descriptor, finder.sampling):
            if not isinstance(video, EncodedVideo):
                continue
            maps = finder.similarity_maps(video)
            inputs = [(m.contrast, m.query_timestamps_s, m.reference_timestamps_s) for m in maps]
            found = finder.localizer.localize_batch(inputs)
            copied = truth[video.stamp.sha256].boxes
            rows = pair_features([m.contrast for m in maps], found)
            for m, boxes, path, row in zip(maps, found, best_paths(inputs, found), rows, strict=True):
                if boxes or path:  # a pair with neither is not reported, so it is not scored
                    features.append(row)
                    labels.append(library.video(m.reference_id).sha256 in copied)
                    queries.append(video.stamp.sha256)
        sha = finder.localizer.sha256
    return Pairs(
        np.array(features),
        np.array(labels, dtype=float),
        queries,
        sum(len(q.boxes) for q in truth.values()),
        sha,
    )


def cross_validated(features: np.ndarray, labels: np.ndarray, queries: list[str]) -> np.ndarray:
    """Each pair's score from a model fitted on the other folds (folds by query)."""
    names = sorted(set(queries))
    np.random.default_rng(0).shuffle(names)
    fold_of = {q: i % FOLDS for i, q in enumerate(names)}
    folds = np.array([fold_of[q] for q in queries])
    scores = np.zeros(len(labels))
    for k in range(FOLDS):
        fold = PairRescorer(*fit_rescorer(features[folds != k], labels[folds != k]), 0.5, "", f"fold {k}")
        scores[folds == k] = fold.probabilities(features[folds == k])
    return scores


def ranking(scores: np.ndarray, labels: np.ndarray, true_pairs: int) -> tuple[float, float]:
    """(µAP, recall at precision 0.95) of the pairs ranked by ``scores``."""
    correct = [bool(c) for c in labels[np.argsort(-scores, kind="stable")]]
    return micro_average_precision(correct, true_pairs), recall_at_precision(correct, true_pairs, 0.95)


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray, true_pairs: int) -> float:
    best = (-1.0, 0.0)
    for t in np.unique(scores):
        predicted = scores >= t
        tp = float(labels[predicted].sum())
        f1 = 2 * tp / (predicted.sum() + true_pairs) if tp else 0.0
        best = max(best, (f1, -float(t)))
    return -best[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dirs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "weights" / "rescorer.json")
    args = parser.parse_args()
    runs = [train_pairs(w) for w in args.work_dirs]
    if len({r.spd_sha256 for r in runs}) != 1:
        raise SystemExit("the benchmarks were scored with different SPD weights")
    features = np.concatenate([r.features for r in runs])
    labels = np.concatenate([r.labels for r in runs])
    queries = [f"{k}:{q}" for k, r in enumerate(runs) for q in r.queries]
    cv = cross_validated(features, labels, queries)
    threshold = best_f1_threshold(cv, labels, sum(r.true_pairs for r in runs))
    print("| train split | pairs scored (copies) | SPD µAP, R@P95 | re-scored (5-fold) µAP, R@P95 |")
    print("|---|---|---|---|")
    start = 0
    for work, r in zip(args.work_dirs, runs, strict=True):
        part = slice(start, start + len(r.labels))
        start += len(r.labels)
        boxed = r.features[:, FEATURES.index("has_box")] == 1  # SPD alone reports only these
        spd = ranking(r.features[boxed, 0], r.labels[boxed], r.true_pairs)
        rescored = ranking(cv[part], r.labels, r.true_pairs)
        print(
            f"| {work} | {len(r.labels)} ({int(r.labels.sum())} of {r.true_pairs}) | "
            f"{spd[0]:.3f}, {spd[1]:.3f} | {rescored[0]:.3f}, {rescored[1]:.3f} |"
        )
    mean, scale, weights, bias = fit_rescorer(features, labels)
    rescorer = PairRescorer(
        mean,
        scale,
        weights,
        bias,
        match_threshold=round(threshold, 4),
        spd_sha256=runs[0].spd_sha256,
        fitted_on="train splits of " + ", ".join(w.name for w in args.work_dirs),
    )
    rescorer.save(args.out)
    print(f"match threshold {rescorer.match_threshold}; written to {args.out}")


if __name__ == "__main__":
    main()
