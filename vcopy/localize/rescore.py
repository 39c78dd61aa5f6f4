"""Pair re-scoring: one score per (query, candidate reference) from SPD's best box and statistics of
the candidate's map beside the query's other candidates (a logistic model fitted on train splits).

SPD scores a box by its shape on one map; a copy of a held shot is a block there, which SPD may
score weakly or not box at all although the reference stands out from every other candidate (the
query's frames match it far better than anything else in the library). The re-scorer weighs both:
its score is the probability that the pair is a copy; the pair's segments keep SPD's boxes (their
scores scaled so the best is the pair's score), and a map SPD draws no box on gets its best run of
frames along one diagonal (numpy only: a query imports no numba), so every candidate with such a
run is ranked. A pair is a match from the threshold fitted with the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vcopy.errors import VcopyError
from vcopy.files import write_atomically
from vcopy.localize.base import MapInput, Segment, box_segment
from vcopy.weights import shipped

FORMAT = "vcopy.rescorer/1"
SHIPPED_RESCORER = "rescorer.json"
MAX_RANK = 5  # candidates ranked lower than this count as ranked this
RUN_MIN_CONTRAST = 0.12  # a map without a box: cells above this extend its best diagonal run ...
RUN_MIN_FRAMES = 3  # ... which is a segment from this many frames
# what describes a pair, in the order of the model's weights; contrast statistics are per query frame
FEATURES = (
    "spd_score",  # SPD's best box on the map (0 without a box)
    "has_box",  # 1 where SPD drew a box on the map, 0 where the segment is its best diagonal run
    "margin",  # mean best contrast of the query's frames here, minus that of the best other candidate
    "rank",  # the candidate's place among the query's candidates (0: best), at most MAX_RANK
    "max_contrast",  # the map's largest contrast
    "median_row_max",  # median over query frames of their best contrast here
    "q90_row_max",  # 90th percentile of the same
    "mean_row_max",  # mean of the same, negative values counted as 0
)


def pair_features(contrasts: Sequence[np.ndarray], segments: Sequence[Sequence[Segment]]) -> np.ndarray:
    """``FEATURES`` [n, len(FEATURES)] of one query's candidates (best first): their contrast maps
    (query frames along rows) and SPD's segments on each."""
    rows = np.zeros((len(contrasts), len(FEATURES)))
    if not contrasts:
        return rows
    row_max = [c.max(axis=1) if c.size else np.zeros(1) for c in contrasts]
    mean_row_max = np.array([float(np.maximum(r, 0).mean()) for r in row_max])
    for k, (r, found) in enumerate(zip(row_max, segments, strict=True)):
        others = np.delete(mean_row_max, k)
        rows[k] = (
            max((s.score for s in found), default=0.0),
            float(bool(found)),
            mean_row_max[k] - (others.max() if len(others) else 0.0),
            min(k, MAX_RANK),
            float(r.max()),
            float(np.median(r)),
            float(np.quantile(r, 0.9)),
            mean_row_max[k],
        )
    return rows


@dataclass(frozen=True)
class PairRescorer:
    """A logistic model over standardised ``FEATURES``, fitted for one SPD weights file."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    match_threshold: float  # best video F1 on the train split's cross-validated scores
    spd_sha256: str  # the SPD weights whose scores it was fitted on
    fitted_on: str  # which data, in words

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean) / self.scale
        return _sigmoid(z @ self.weights + self.bias)

    def rescore(self, maps: Sequence[MapInput], segments: list[list[Segment]]) -> list[list[Segment]]:
        """One query's candidates' segments (``segments``: SPD's on each of ``maps``) with scores on
        the re-scorer's scale: each map's best segment scores the pair's probability, its others in
        proportion; a map without a box gets its best diagonal run, if any, scored the same way."""
        scores = self.probabilities(pair_features([m[0] for m in maps], segments))
        paths = best_paths(maps, segments)
        rescored = []
        for found, path, pair_score in zip(segments, paths, scores, strict=True):
            best = max((s.score for s in found), default=0.0)
            rescored.append(
                [replace(s, score=float(pair_score) * (s.score / best if best > 0 else 1.0)) for s in found]
                or [replace(p, score=float(pair_score)) for p in path]
            )
        return rescored

    def record(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "match_threshold": self.match_threshold,
            "spd_sha256": self.spd_sha256,
            "fitted_on": self.fitted_on,
        }

    def save(self, path: Path) -> None:
        write_atomically(Path(path), (json.dumps(self.record(), indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> PairRescorer:
        """A re-scorer from its file; a one-line VcopyError naming ``path`` when it is not one."""
        try:
            record = json.loads(Path(path).read_text())
            if not isinstance(record, dict) or record.get("format") != FORMAT:
                raise ValueError(f"not {FORMAT}")
            if record["features"] != list(FEATURES):
                raise ValueError("fitted on other features")
            mean, scale, weights = (
                np.asarray(record[k], dtype=np.float64) for k in ("mean", "scale", "weights")
            )
            if any(v.shape != (len(FEATURES),) or not np.isfinite(v).all() for v in (mean, scale, weights)):
                raise ValueError("its vectors are not one finite value per feature")
            if (scale <= 0).any():
                raise ValueError("a feature's scale is not positive")
            threshold = float(record["match_threshold"])
            if not 0 <= threshold <= 1:
                raise ValueError("match_threshold is not in [0, 1]")
            return cls(
                mean,
                scale,
                weights,
                bias=float(record["bias"]),
                match_threshold=threshold,
                spd_sha256=str(record["spd_sha256"]),
                fitted_on=str(record["fitted_on"]),
            )
        except OSError as exc:
            raise VcopyError(f"{path}: cannot read the re-scorer ({exc.strerror or exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise VcopyError(f"{path}: not a vcopy re-scorer ({exc})") from None


def best_paths(maps: Sequence[MapInput], segments: Sequence[Sequence[Segment]]) -> list[list[Segment]]:
    """The best diagonal run (``best_diagonal_run``) on each map without segments; [] elsewhere."""
    return [[] if found else best_diagonal_run(*m) for m, found in zip(maps, segments, strict=True)]


def best_diagonal_run(
    contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
) -> list[Segment]:
    """The run of consecutive cells along one diagonal (a copy at unchanged speed) whose contrast
    above ``RUN_MIN_CONTRAST`` sums highest, as a segment scored by its mean contrast; [] when no
    run of ``RUN_MIN_FRAMES`` cells gains anything. Each diagonal's best run is found at once for
    all diagonals (prefix sums along the diagonals of the sheared map)."""
    if contrast.shape[0] > contrast.shape[1]:  # shear along the shorter axis (a long upload's map)
        found = best_diagonal_run(contrast.T, reference_timestamps_s, query_timestamps_s)
        return [
            Segment(s.reference_start_s, s.reference_end_s, s.query_start_s, s.query_end_s, s.score)
            for s in found
        ]
    rows, cols = contrast.shape
    if rows < RUN_MIN_FRAMES or cols < RUN_MIN_FRAMES:
        return []
    offsets = np.arange(-(rows - 1), cols)  # column of row 0 on each diagonal
    col = np.arange(rows)[:, None] + offsets[None, :]
    inside = (col >= 0) & (col < cols)
    gain = np.where(inside, contrast[np.arange(rows)[:, None], np.clip(col, 0, cols - 1)], -1.0)
    prefix = np.vstack([np.zeros((1, len(offsets))), np.cumsum(gain - RUN_MIN_CONTRAST, axis=0)])
    lowest = np.minimum.accumulate(prefix, axis=0)[:-1]  # the lowest prefix before each end
    best = prefix[1:] - lowest
    end, diagonal = np.unravel_index(int(np.argmax(best)), best.shape)
    if best[end, diagonal] <= 0:
        return []
    start = int(np.argmin(prefix[: end + 1, diagonal]))  # the run is rows start..end
    if end - start + 1 < RUN_MIN_FRAMES:
        return []
    offset = int(offsets[diagonal])
    mean = float(gain[start : end + 1, diagonal].mean())
    return [
        box_segment(
            query_timestamps_s,
            reference_timestamps_s,
            (start, int(end)),
            (start + offset, int(end) + offset),
            mean,
        )
    ]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def shipped_rescorer(spd_sha256: str) -> PairRescorer | None:
    """The shipped re-scorer when it was fitted on the SPD weights with ``spd_sha256``, else None."""
    path = shipped(SHIPPED_RESCORER)
    if not path.is_file():
        return None
    rescorer = PairRescorer.load(path)
    return rescorer if rescorer.spd_sha256 == spd_sha256 else None


def fit_rescorer(
    features: np.ndarray, labels: np.ndarray, l2: float = 1e-2, steps: int = 50
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, scale, weights, bias) of an L2-regularised logistic regression on standardised
    features, by Newton's method."""
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    z = np.c_[(features - mean) / scale, np.ones(len(features))]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.eye(len(w))
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    for _ in range(steps):
        p = _sigmoid(z @ w)
        gradient = z.T @ (p - labels) + penalty @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty + 1e-9 * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return mean, scale, w[:-1], float(w[-1])
