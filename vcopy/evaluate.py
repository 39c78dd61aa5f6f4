"""Scoring a ``vcopy query`` report against ground truth.

Video level (VSC22 matching track): precision, recall and F1 over the matched (query, reference)
pairs, and micro average precision (every scored pair, matches and those below the threshold,
ranked by score across queries, AP normalised by the number of true pairs), so that ranking is not
capped by the operating threshold.

Segment level (VCSL protocol): a copied segment is a box in the query-time x reference-time plane.
For one (query, reference) pair, precision on an axis is the length of the predicted boxes'
intersections with overlapping true boxes (union per predicted box) over the total predicted
length; recall likewise from the true boxes' side; a pair's precision and recall are the products
over both axes. Pairs with predictions but no truth have precision 0 (and no recall); pairs with
truth but no prediction have recall 0 (and no precision). Both are averaged over pairs.

Files are matched by SHA-256 (both reports and vcopy's ground truth record it), so paths may
differ; against VSC22's or VCSL's ground truth (``vcopy.groundtruth``) by file stem, and every
query of the report that such a file does not name counts as a query without copies.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from vcopy.errors import VcopyError
from vcopy.groundtruth import Box, Key, TrueQuery, read_ground_truth

Pair = tuple[str, str]  # (query key, reference key): SHA-256s, or file stems (VSC22, VCSL)


@dataclass(frozen=True)
class Prediction:
    score: float
    boxes: list[Box]
    match: bool = True  # False: scored, but below the report's threshold (ranks pairs only)


@dataclass(frozen=True)
class Scores:
    """Every number of one evaluation (or one breakdown group)."""

    queries: int
    true_pairs: int
    predicted_pairs: int
    video_precision: float
    video_recall: float
    video_f1: float
    video_micro_ap: float
    video_recall_at_p95: float  # threshold-free: the most recall any score cut-off gives at precision >= 0.95
    segment_precision: float
    segment_recall: float
    segment_f1: float


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by the intervals, overlaps counted once."""
    total, end = 0.0, -np.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _axis_hits(boxes: list[Box], others: list[Box]) -> tuple[float, float, float, float]:
    """For each box, the union of its intersections with overlapping ``others`` (on both axes),
    summed: (query-axis hit, reference-axis hit, query-axis length, reference-axis length)."""
    hit_q = hit_r = len_q = len_r = 0.0
    for q0, q1, r0, r1 in boxes:
        len_q += q1 - q0
        len_r += r1 - r0
        inter = [
            (max(q0, o[0]), min(q1, o[1]), max(r0, o[2]), min(r1, o[3]))
            for o in others
            if min(q1, o[1]) > max(q0, o[0]) and min(r1, o[3]) > max(r0, o[2])
        ]
        hit_q += union_length((a, b) for a, b, _, _ in inter)
        hit_r += union_length((c, d) for _, _, c, d in inter)
    return hit_q, hit_r, len_q, len_r


def pair_precision_recall(predicted: list[Box], true: list[Box]) -> tuple[float | None, float | None]:
    """Segment precision and recall of one (query, reference) pair; None where undefined."""
    if not predicted:
        return None, (0.0 if true else None)
    if not true:
        return 0.0, None
    hq, hr, lq, lr = _axis_hits(predicted, true)
    precision = (hq / lq if lq > 0 else 0.0) * (hr / lr if lr > 0 else 0.0)
    hq, hr, lq, lr = _axis_hits(true, predicted)
    recall = (hq / lq if lq > 0 else 0.0) * (hr / lr if lr > 0 else 0.0)
    return precision, recall


def recall_at_precision(ranked_correct: list[bool], n_true: int, min_precision: float) -> float:
    """The largest recall of any cut-off of the ranked list whose precision is at least
    ``min_precision``."""
    if n_true == 0 or not ranked_correct:
        return 0.0
    hits = np.cumsum(ranked_correct)
    precision_at = hits / np.arange(1, len(ranked_correct) + 1)
    ok = precision_at >= min_precision
    return float(hits[ok].max() / n_true) if ok.any() else 0.0


def micro_average_precision(ranked_correct: list[bool], n_true: int) -> float:
    """AP of a ranked list of predictions (True where correct), normalised by ``n_true``."""
    if n_true == 0:
        return 0.0
    hits = np.cumsum(ranked_correct)
    precision_at = hits / np.arange(1, len(ranked_correct) + 1)
    return float(np.sum(precision_at[np.asarray(ranked_correct, dtype=bool)]) / n_true)


def score(truth: dict[str, TrueQuery], predictions: dict[Pair, Prediction]) -> Scores:
    """All metrics for the queries in ``truth`` (keyed by sha256); predictions for other queries
    are ignored."""
    scored = {pair: p for pair, p in predictions.items() if pair[0] in truth}
    predictions = {pair: p for pair, p in scored.items() if p.match}
    true_pairs = {(q, r) for q, t in truth.items() for r in t.boxes}
    correct = [pair in true_pairs for pair in predictions]
    tp = sum(correct)
    precision = tp / len(predictions) if predictions else 0.0
    recall = tp / len(true_pairs) if true_pairs else 0.0
    ranked = sorted(scored, key=lambda pair: -scored[pair].score)
    ranked_correct = [pair in true_pairs for pair in ranked]
    micro_ap = micro_average_precision(ranked_correct, len(true_pairs))
    precisions, recalls = [], []
    for pair in set(predictions) | true_pairs:
        p, r = pair_precision_recall(
            predictions[pair].boxes if pair in predictions else [], truth[pair[0]].boxes.get(pair[1], [])
        )
        if p is not None:
            precisions.append(p)
        if r is not None:
            recalls.append(r)
    seg_p = float(np.mean(precisions)) if precisions else 0.0
    seg_r = float(np.mean(recalls)) if recalls else 0.0
    return Scores(
        queries=len(truth),
        true_pairs=len(true_pairs),
        predicted_pairs=len(predictions),
        video_precision=precision,
        video_recall=recall,
        video_f1=_f1(precision, recall),
        video_micro_ap=micro_ap,
        video_recall_at_p95=recall_at_precision(ranked_correct, len(true_pairs), 0.95),
        segment_precision=seg_p,
        segment_recall=seg_r,
        segment_f1=_f1(seg_p, seg_r),
    )


def load_predictions(path: Path, key: Key = "sha256") -> tuple[dict[Pair, Prediction], set[str]]:
    """From a ``vcopy.report/1`` file: (query, reference) -> score and boxes, and every query the
    report covers; videos named by SHA-256 or by file stem (``key``)."""

    def name(video: dict[str, Any]) -> str:
        return str(video["sha256"]) if key == "sha256" else PurePath(str(video["path"])).stem

    try:
        data = json.loads(Path(path).read_text())
        if not str(data.get("schema", "")).startswith("vcopy.report/"):
            raise ValueError(f"schema is {data.get('schema')!r}, not vcopy.report/*")
        predictions: dict[Pair, Prediction] = {}
        for q in data["queries"]:
            for match, entries in ((True, q.get("matches", [])), (False, q.get("below_threshold", []))):
                for m in entries:
                    boxes = [
                        (s["query_start"], s["query_end"], s["reference_start"], s["reference_end"])
                        for s in m["segments"]
                    ]
                    predictions[(name(q), name(m["reference"]))] = Prediction(float(m["score"]), boxes, match)
        covered = {name(q) for q in data["queries"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VcopyError(f"{path}: not a readable vcopy report ({exc.__class__.__name__}: {exc})") from exc
    return predictions, covered


@dataclass(frozen=True)
class Evaluation:
    overall: Scores
    by_transform: dict[str, Scores]
    by_speed: dict[str, Scores]
    by_shot: dict[str, Scores]  # by the kind of shot copied (generator version 3 records it)
    missing_queries: list[str]  # ground-truth queries absent from the report (scored as misses)


def evaluate(gt_path: Path, report_path: Path, split: str | None = None) -> Evaluation:
    """Scores of a report against ground truth in any format ``vcopy.groundtruth`` reads."""
    ground_truth = read_ground_truth(gt_path, split)
    truth = dict(ground_truth.queries)
    predictions, reported = load_predictions(report_path, ground_truth.key)
    if not ground_truth.lists_every_query:  # a reported query the file does not name has no copies
        no_copy = {"transform": {"not recorded"}, "speed": {"no copy"}, "shot": {"no copy"}}
        truth.update({q: TrueQuery(q, tags=no_copy) for q in sorted(reported - truth.keys())})
    groups: dict[str, dict[str, dict[str, TrueQuery]]] = {
        "transform": defaultdict(dict),
        "speed": defaultdict(dict),
        "shot": defaultdict(dict),
    }
    for key, tq in truth.items():
        for kind, values in tq.tags.items():
            for value in values:
                groups[kind][value][key] = tq
    return Evaluation(
        overall=score(truth, predictions),
        by_transform={k: score(v, predictions) for k, v in sorted(groups["transform"].items())},
        by_speed={k: score(v, predictions) for k, v in sorted(groups["speed"].items())},
        by_shot={k: score(v, predictions) for k, v in sorted(groups["shot"].items())},
        missing_queries=sorted(tq.path for key, tq in truth.items() if key not in reported),
    )
