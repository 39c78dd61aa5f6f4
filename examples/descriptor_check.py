"""Frame-level check of the descriptors and of score normalisation, on one split of the benchmark.

    python examples/descriptor_check.py BENCH_DIR WORK_DIR [--split train] [--descriptors A,B] [--views V,W]

For every copied query frame (half a second inside a ground-truth copy) its score against the
reference it copies (best of the reference frames within one frame of the true moment) is compared
with the scores of unrelated query frames (negative queries, and the filler around copies) against
every reference of the split (their best). Printed per descriptor and normalisation: the share of
copied frames kept at the threshold that lets 1% of unrelated frames through, and the ROC AUC.

Normalisations: ``none`` (raw cosine), ``shipped`` (minus the similarity to the ``--rank``-th
nearest frame of the descriptor's shipped background set), ``library`` (minus the ``--rank``-th
nearest frame of the split's other references: the library itself as the background) and ``both``
(minus the larger of the two). With ``--views``, query frames are also described in those views
(vcopy.features.views) and a frame scores its best view. Vectors are cached in WORK_DIR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vcopy.features import DESCRIPTORS, EncodedVideo, create_descriptor, encode_videos
from vcopy.groundtruth import GROUND_TRUTH, vcopy_record
from vcopy.synth.benchmark import copied_frame_pairs
from vcopy.video import SamplingConfig

NORMALISATIONS = ("none", "shipped", "library", "both")


def encoded(
    bench: Path, work: Path, name: str, videos: list[dict], views: tuple[str, ...]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(vectors [1 + V, N, dim], timestamps) per dataset path, cached in WORK_DIR."""
    cache = work / ("-".join([name, *views]) + ".npz")
    if cache.is_file():
        with np.load(cache) as data:
            return {v["path"]: (data[f"v{i}"], data[f"t{i}"]) for i, v in enumerate(videos)}
    descriptor = create_descriptor(name)
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    out = {}
    for item in encode_videos([bench / v["path"] for v in videos], descriptor, sampling, views=views):
        if isinstance(item, EncodedVideo):
            out[str(item.path.relative_to(bench))] = (item.all_views, item.timestamps_s)
    work.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, v in enumerate(videos):
        arrays[f"v{i}"], arrays[f"t{i}"] = out[v["path"]]
    np.savez(cache, **arrays)
    return out


def kth(sims: np.ndarray, rank: int) -> np.ndarray:
    rank = min(rank, sims.shape[1] - 1)
    return -np.partition(-sims, rank, axis=1)[:, rank]


def scores(
    vectors: dict[str, tuple[np.ndarray, np.ndarray]],
    truth: dict,
    split: str,
    background: np.ndarray,
    rank: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per normalisation: (copied-frame scores, unrelated-frame scores)."""
    refs = [r["path"] for r in truth["references"] if r["split"] == split]
    ref_vectors = np.concatenate([vectors[r][0][0] for r in refs])  # the library keeps frames, not views
    owner = np.concatenate([np.full(len(vectors[r][1]), k) for k, r in enumerate(refs)])
    positives: dict[str, list[float]] = {n: [] for n in NORMALISATIONS}
    negatives: dict[str, list[float]] = {n: [] for n in NORMALISATIONS}
    for q in (q for q in truth["queries"] if q["split"] == split):
        all_views, qt = vectors[q["path"]]
        per_view = []
        for qv in all_views:
            sims = qv @ ref_vectors.T  # [frames, library frames]
            shipped = kth(qv @ background.T, rank)
            best = np.stack([sims[:, owner == k].max(axis=1) for k in range(len(refs))], axis=1)
            # library background of frame i for video k: rank-th nearest frame of the other videos
            library_bg = np.stack([kth(sims[:, owner != k], rank) for k in range(len(refs))], axis=1)
            bg = {
                "none": np.zeros_like(best),
                "shipped": np.broadcast_to(shipped[:, None], best.shape),
                "library": library_bg,
                "both": np.maximum(library_bg, shipped[:, None]),
            }
            per_view.append((sims, bg))
        normalised = {
            n: np.max(
                [
                    np.stack([s[:, owner == k].max(axis=1) for k in range(len(refs))], 1) - b[n]
                    for s, b in per_view
                ],
                axis=0,
            )
            for n in NORMALISATIONS
        }
        copied = np.zeros(len(qt), dtype=bool)
        for c in q["copies"]:
            copied |= (qt >= c["query_start"] - 1.0) & (qt <= c["query_end"] + 1.0)
            k = refs.index(c["reference"])
            rt = vectors[c["reference"]][1]
            rows = owner == k
            for i, j in copied_frame_pairs(c, qt, rt):
                cols = np.flatnonzero(rows)[max(0, j - 1) : j + 2]
                for n in NORMALISATIONS:
                    positives[n].append(max(float(s[i, cols].max() - b[n][i, k]) for s, b in per_view))
        for n in NORMALISATIONS:
            negatives[n] += normalised[n][~copied].max(axis=1).tolist()
    return {n: (np.array(positives[n]), np.array(negatives[n])) for n in NORMALISATIONS}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--descriptors", default=",".join(DESCRIPTORS))
    parser.add_argument("--rank", type=int, default=30)
    parser.add_argument("--views", default="", help="comma-separated query views (vcopy.features.views)")
    args = parser.parse_args()
    views = tuple(v for v in args.views.split(",") if v)
    truth = vcopy_record(args.bench_dir / GROUND_TRUTH)
    videos = [v for v in truth["references"] + truth["queries"] if v["split"] == args.split]
    print(
        f"split {args.split}: copied frames kept at 1% unrelated frames (ROC AUC), rank {args.rank}, "
        f"views: {', '.join(views) or 'none'}\n"
    )
    print("| descriptor | " + " | ".join(NORMALISATIONS) + " |")
    print("|---|" + "---|" * len(NORMALISATIONS))
    for name in args.descriptors.split(","):
        vectors = encoded(args.bench_dir, args.work_dir / args.split, name, videos, views)
        background = create_descriptor(name).background
        cells = []
        for pos, neg in scores(vectors, truth, args.split, background, args.rank).values():
            threshold = np.quantile(neg, 0.99)
            cells.append(f"{np.mean(pos > threshold):.3f} ({auc(pos, neg):.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
