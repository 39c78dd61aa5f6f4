"""Key frames compared on the benchmark: the same descriptor, the same queries, references thinned
by each selector, and each selector's maps localized by SPD.

    python examples/keyframe_comparison.py DATASET WORK [--joint RUN] [--alone RUN] [--splits test,long]
        [--query-fps 2] [--product N]

DATASET is a folder made by examples/make_benchmark.py; RUN folders are made by `vcopy train copy`
(``--alone``: with ``--frozen-spd``). Every test/long reference is encoded once at 1 frame/s and
every query at ``--query-fps`` (default 2, the product's; rows pooled back to the library's step as
`vcopy query` does), cached in WORK/features. Selectors of the references:

- uniform 1 frame/s (today's library), shipped SPD;
- coverage key frames (``--keyframes coverage``, threshold 0.8), shipped SPD;
- at the rate the learned key frames keep on the split's references (without ``--joint``: the
  coverage key frames'; no labels are read for it): coverage at the threshold that keeps that
  rate, uniform one frame in k, and local maxima of frame-to-frame change (1 - cosine of
  neighbours, as arXiv 2501.11171 picks frames), shipped SPD;
- learned key frames trained alone against the fixed shipped SPD (``--alone``);
- learned key frames trained jointly with SPD (``--joint``), with the SPD trained beside them (and,
  for key frames trained with hold, coverage at their rate read by that SPD, trained on held maps).

Each key frame stands for its span as the product records it: the non-learned ones and learned
ones trained with hold for the time to the next key frame (the last to the end of the video),
learned ones trained before hold for their own sampling step (cells outside any span are drawn as
the background). Candidates: each query's 10 best references by exact score on its thinned maps
(the product's shortlist re-ranking). Matches at each SPD's calibrated threshold; µAP and recall at
precision 0.95 and 0.90 are threshold-free. With ``--product N`` the test references are also
indexed the way `vcopy index` does it (text features included) into a uniform and a key-frame
library, and the first N test queries are timed against each.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcopy.evaluate import Prediction, Scores, recall_at_precision, score
from vcopy.features import create_descriptor
from vcopy.features.views import DEFAULT_VIEWS
from vcopy.groundtruth import GROUND_TRUTH, TrueQuery, load_ground_truth
from vcopy.keyframes import Coverage, grid_map, span_ends, with_first
from vcopy.keyframes.ske import LearnedKeyFrames
from vcopy.localize.spd import SimilarityPatternDetector, shipped_weights_path
from vcopy.query import QueryConfig, pooled_rows, pooled_times, row_groups
from vcopy.similarity import background_similarity, exact_score, similarity_map
from vcopy.train.data import encode_dataset, read_dataset

Selector = Callable[[np.ndarray], np.ndarray]
FPS = 1.0
CANDIDATES = QueryConfig.candidates


@dataclass(frozen=True)
class Variant:
    name: str
    select: Selector
    holds: bool  # a key frame stands for the span to the next one (else its own step)
    spd: Path


def coverage_at(rate: float, references: list[np.ndarray]) -> Coverage:
    """The coverage selector whose threshold keeps ``rate`` of ``references``' frames (bisection:
    the kept share grows with the threshold)."""
    total = sum(len(v) for v in references)
    lo, hi = -1.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        kept = sum(len(Coverage(mid).select(v)) for v in references) / total
        lo, hi = (mid, hi) if kept < rate else (lo, mid)
    return Coverage(round(hi, 4))


def every(k: int) -> Selector:
    return lambda v: with_first(np.arange(0, len(v), k), len(v))


def change_peaks(rate: float) -> Selector:
    """Local maxima of frame-to-frame change, the strongest first, ``rate`` of the frames."""

    def select(v: np.ndarray) -> np.ndarray:
        change = np.concatenate([[0.0], 1.0 - np.sum(v[1:] * v[:-1], axis=1)])
        left = np.concatenate([[-1.0], change[:-1]])
        right = np.concatenate([change[1:], [-1.0]])
        peaks = np.flatnonzero((change >= left) & (change > right))
        n = max(0, round(rate * len(v)) - 1)  # the first frame is kept anyway
        return with_first(peaks[np.argsort(-change[peaks], kind="stable")[:n]], len(v))

    return select


def run_variant(
    variant: Variant,
    refs: dict[str, tuple[np.ndarray, np.ndarray]],
    queries: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    sha: dict[str, str],
    rows_per_frame: int,
) -> tuple[dict[tuple[str, str], Prediction], int, int, float]:
    """(predictions, kept vectors, all vectors, ms per map) of one selector on one split."""
    detector = SimilarityPatternDetector(weights_path=variant.spd)
    kept = {k: variant.select(v) for k, (v, _) in refs.items()}
    n_kept = sum(len(r) for r in kept.values())
    n_all = sum(len(v) for v, _ in refs.values())
    predictions: dict[tuple[str, str], Prediction] = {}
    seconds, n_maps = 0.0, 0
    for q, (views, q_times, background) in queries.items():
        maps = []
        groups = row_groups(len(q_times), rows_per_frame)
        for r, (vectors, r_times) in refs.items():
            rows = kept[r]
            contrast = pooled_rows(similarity_map(views, vectors[rows], background), groups)
            ends = span_ends(r_times, rows, FPS, variant.holds)
            maps.append((r, contrast, r_times[rows], ends))
        maps.sort(key=lambda m: -exact_score(m[1]))
        pooled = pooled_times(q_times, groups)
        drawn = [
            grid_map(contrast, pooled, r_times, FPS, ends) for _, contrast, r_times, ends in maps[:CANDIDATES]
        ]
        started = time.perf_counter()
        found = detector.localize_batch(drawn)  # type: ignore[arg-type]
        seconds += time.perf_counter() - started
        n_maps += len(drawn)
        for (r, _, _, _), segments in zip(maps[:CANDIDATES], found, strict=True):
            if not segments:
                continue
            strong = [s for s in segments if s.score >= detector.match_threshold]
            shown = strong or segments
            boxes = [(s.query_start_s, s.query_end_s, s.reference_start_s, s.reference_end_s) for s in shown]
            predictions[(sha[q], sha[r])] = Prediction(max(s.score for s in shown), boxes, bool(strong))
    return predictions, n_kept, n_all, seconds / max(1, n_maps) * 1000


def recall_at_p90(truth: dict[str, TrueQuery], predictions: dict[tuple[str, str], Prediction]) -> float:
    """Recall at precision 0.90 over every scored pair, ranked by score."""
    scored = sorted((p.score, pair) for pair, p in predictions.items() if pair[0] in truth)
    true_pairs = {(q, r) for q, t in truth.items() for r in t.boxes}
    ranked = [pair in true_pairs for _, pair in reversed(scored)]
    return recall_at_precision(ranked, len(true_pairs), 0.90)


def product_run(gt: Path, work: Path, joint: Path, n_queries: int) -> None:
    """Index the test references with `vcopy index`'s code path into a uniform and a key-frame
    library (text features included) and time queries against each: throughput, storage, latency."""
    from vcopy.groundtruth import split_paths
    from vcopy.indexing import index_videos
    from vcopy.library import Library
    from vcopy.pipeline import PipelineSpec
    from vcopy.query import CopyFinder
    from vcopy.video import SamplingConfig

    references = split_paths(gt, "test", "references")
    queries = split_paths(gt, "test", "queries")[:n_queries]
    descriptor = create_descriptor()
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    print(
        "\n| library | video s per wall s (index) | vectors per video-hour | MB per video-hour | "
        "median query s (decode to segments) |"
    )
    print("|---|---|---|---|---|")
    for name, keyframer, spd in [
        ("uniform 1 frame/s", None, None),
        ("SKE + SPD trained jointly", LearnedKeyFrames(joint / "ske.onnx"), joint / "spd.onnx"),
    ]:
        root = work / f"library-{'uniform' if keyframer is None else 'ske'}"
        shutil.rmtree(root, ignore_errors=True)
        with Library.open(root, write=True, spec=PipelineSpec.of(descriptor, sampling, keyframer)) as lib:
            summary = index_videos(lib, references, descriptor, keyframer=keyframer)
            hours = summary.video_seconds / 3600
            info = lib.info()
        with Library.open(root) as lib:
            finder = CopyFinder(lib, descriptor, QueryConfig(spd_weights=spd))
            latencies = []
            for path in queries:
                started = time.perf_counter()
                finder.query(path)
                latencies.append(time.perf_counter() - started)
        print(
            f"| {name} | {summary.throughput:.1f} | {info.vectors / hours:.0f} | "
            f"{info.bytes_on_disk / hours / 1e6:.2f} | {np.median(latencies):.3f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--joint", type=Path, help="a `vcopy train copy` run folder")
    parser.add_argument("--alone", type=Path, help="a `vcopy train copy --frozen-spd` run folder")
    parser.add_argument("--splits", default="test,long")
    parser.add_argument("--query-fps", type=int, default=2, help="suspects' frames/s (a whole multiple of 1)")
    parser.add_argument(
        "--product", type=int, metavar="N", help="also index and query N test queries the product's way"
    )
    args = parser.parse_args()
    gt = args.dataset / GROUND_TRUTH
    truth = read_dataset(gt)
    descriptor = create_descriptor()
    shipped = shipped_weights_path(descriptor.name)
    sha = {v["path"]: v["sha256"] for kind in ("references", "queries") for v in truth[kind]}
    rank = QueryConfig.background_rank
    joint = LearnedKeyFrames(args.joint / "ske.onnx") if args.joint is not None else None
    coverage = Coverage()
    rated = joint or coverage  # the same-rate baselines take its rate
    results: dict[tuple[str, str], tuple[Scores, float, float, float]] = {}
    names: list[str] = []
    for split in args.splits.split(","):
        cache = args.work / "features"
        encoded = encode_dataset(gt, truth, cache, descriptor, (), split=split, kinds=("references",))
        refs = {k: (v[0], t) for k, (v, t) in encoded.items()}
        encoded = encode_dataset(
            gt,
            truth,
            cache,
            descriptor,
            DEFAULT_VIEWS,
            split=split,
            kinds=("queries",),
            sample_fps=args.query_fps,
        )
        queries = {
            k: (v, t, background_similarity(v, descriptor.background, rank)) for k, (v, t) in encoded.items()
        }
        rate = sum(len(rated.select(v)) for v, _ in refs.values()) / sum(len(v) for v, _ in refs.values())
        k = max(1, round(1 / rate))
        print(f"{split}: {rated.name} keeps {rate:.3f} of the references' frames; uniform: 1 in {k}")
        same_rate = coverage_at(rate, [v for v, _ in refs.values()])
        variants = [
            Variant("uniform 1 frame/s", lambda v: np.arange(len(v)), False, shipped),
            Variant(f"{coverage.name}", coverage.select, True, shipped),
            Variant(f"{same_rate.name}, same rate", same_rate.select, True, shipped),
            Variant(f"uniform 1 in {k}, same rate", every(k), True, shipped),
            Variant("change peaks, same rate", change_peaks(rate), True, shipped),
        ]
        if args.alone is not None:
            alone = LearnedKeyFrames(args.alone / "ske.onnx")
            variants.append(Variant("SKE trained alone (fixed SPD)", alone.select, alone.holds, shipped))
        if joint is not None:
            variants.append(
                Variant("SKE + SPD trained jointly", joint.select, joint.holds, joint.spd_weights)
            )
            if joint.holds:  # the SPD fine-tuned on held maps, read on coverage's held maps
                name = f"{same_rate.name}, same rate, the joint run's SPD"
                variants.append(Variant(name, same_rate.select, True, joint.spd_weights))
        split_truth = load_ground_truth(gt, split)
        hours = sum(float(t[-1] - t[0] + 1.0 / FPS) for _, t in refs.values()) / 3600
        for variant in variants:
            predictions, n_kept, _, ms = run_variant(variant, refs, queries, sha, args.query_fps)
            r90 = recall_at_p90(split_truth, predictions)
            results[(split, variant.name)] = (score(split_truth, predictions), n_kept / hours, ms, r90)
            scores = results[(split, variant.name)][0]
            print(
                f"{split}: {variant.name}: {n_kept / hours:.0f} vectors per video-hour, seg F1 "
                f"{scores.segment_f1:.3f}, µAP {scores.video_micro_ap:.3f}, "
                f"R@P95 {scores.video_recall_at_p95:.3f}, R@P90 {r90:.3f}",
                flush=True,
            )
            if variant.name not in names:
                names.append(variant.name)
    splits = args.splits.split(",")
    print(
        "\n| references keep | vectors per video-hour | "
        + " | ".join(f"{s} seg F1 | {s} µAP | {s} R@P95 | {s} R@P90" for s in splits)
        + " | ms/map |"
    )
    print("|---|---|" + "---|---|---|---|" * len(splits) + "---|")
    for name in names:
        row = [name, f"{results[(splits[0], name)][1]:.0f}"]
        for s in splits:
            scores = results[(s, name)][0]
            row += [
                f"{scores.segment_f1:.3f}",
                f"{scores.video_micro_ap:.3f}",
                f"{scores.video_recall_at_p95:.3f}",
                f"{results[(s, name)][3]:.3f}",
            ]
        row.append(f"{results[(splits[0], name)][2]:.2f}")
        print("| " + " | ".join(row) + " |")
    if args.product and args.joint is not None:
        product_run(gt, args.work, args.joint, args.product)


if __name__ == "__main__":
    main()
