"""Dynamic-programming longest path (the DP baseline of the VCSL benchmark, re-implemented).

Every map cell above ``min_similarity`` is "on". A path runs through the map moving down (next
query frame), right (next reference frame) or diagonally; it gains a cell's similarity on on-cells,
pays ``off_penalty`` for each off-cell it crosses (at most ``max_gap`` in a row, so a copy may fade
out for a moment) and ``turn_penalty`` for each non-diagonal step (a copy at another speed bends
the path). The best path's bounding box is a copied segment; its cells are switched off and the
search repeats. One pass over the map costs O(rows x columns), an anti-diagonal at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcopy.localize.base import MapByMap, Segment, box_segment, suppress_overlaps

_INTEGER_FIELDS = ("start_row", "start_col", "gaps", "count")
_FIELDS = ("score", "total", *_INTEGER_FIELDS)


def _longest_path(
    sim: np.ndarray, on: np.ndarray, off_penalty: float, turn_penalty: float, max_gap: int
) -> tuple[float, int, int, int, int, float, int]:
    """Best path: (score, first row, first col, last row, last col, summed on-similarity, on-cells).
    A cell depends on its upper, left and upper-left neighbours, so the cells of one anti-diagonal
    are computed together from the two before it (numpy, no compiler); memory is O(rows). Ties
    go to the first cell in row-major order."""
    n, m = sim.shape
    state = [
        {f: np.zeros(n, dtype=np.int64 if f in _INTEGER_FIELDS else np.float64) for f in _FIELDS}
        for _ in range(3)
    ]
    best, best_index = (0.0, -1, -1, -1, -1, 0.0, 0), -1
    for k in range(n + m - 1):
        cur, one, two = state[k % 3], state[(k - 1) % 3], state[(k - 2) % 3]
        lo, hi = max(0, k - m + 1), min(n - 1, k)
        i = np.arange(lo, hi + 1)
        j = k - i
        above = np.maximum(i - 1, 0)
        prev = np.zeros(len(i))
        source = np.full(len(i), -1)  # 0 upper-left (two diagonals back), 1 upper, 2 left
        for code, value in enumerate(
            (
                np.where((i >= 1) & (i <= k - 1), two["score"][above], 0.0),
                np.where(i >= 1, one["score"][above] - turn_penalty, -np.inf),
                np.where(i <= k - 1, one["score"][np.minimum(i, n - 1)] - turn_penalty, -np.inf),
            )
        ):
            take = value > prev
            prev[take], source[take] = value[take], code
        row = np.where(source == 2, i, above)
        came = {f: np.where(source == 0, two[f][row], one[f][row]) for f in _FIELDS}
        has = source >= 0
        cells_on, s = on[i, j], sim[i, j]
        gap = ~cells_on & has & (came["gaps"] < max_gap) & (prev > off_penalty)
        score = np.where(cells_on, prev + s, np.where(gap, prev - off_penalty, 0.0))
        cur["score"][lo : hi + 1] = score
        cur["gaps"][lo : hi + 1] = np.where(gap, came["gaps"] + 1, 0)
        cur["start_row"][lo : hi + 1] = np.where(has, came["start_row"], i)
        cur["start_col"][lo : hi + 1] = np.where(has, came["start_col"], j)
        cur["total"][lo : hi + 1] = np.where(has, came["total"], 0.0) + np.where(cells_on, s, 0.0)
        cur["count"][lo : hi + 1] = np.where(has, came["count"], 0) + cells_on
        if cells_on.any():
            candidates = np.where(cells_on, score, -np.inf)
            t = int(np.argmax(candidates))
            index = int(i[t]) * m + int(j[t])
            if candidates[t] > best[0] or (
                candidates[t] == best[0] and best_index >= 0 and index < best_index
            ):
                best_index = index
                r0, c0 = int(cur["start_row"][lo + t]), int(cur["start_col"][lo + t])
                total, count = float(cur["total"][lo + t]), int(cur["count"][lo + t])
                best = (float(candidates[t]), r0, c0, int(i[t]), int(j[t]), total, count)
    return best


@dataclass(frozen=True)
class DynamicProgramming(MapByMap):
    """Thresholds are in contrast units (similarity minus the query frame's background)."""

    name: str = "dp"
    min_similarity: float = 0.12
    off_penalty: float = 0.1
    turn_penalty: float = 0.05
    max_gap: int = 4
    min_frames: int = 3
    min_score: float = 0.3  # mean contrast over on-cells below which nothing is reported (the floor)
    match_threshold: float = 0.3  # from which a segment is a match (calibrated, train split)
    max_segments: int = 8

    def __call__(
        self, similarity: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        if similarity.size == 0:
            return []
        sim = np.ascontiguousarray(similarity, dtype=np.float64)
        on = sim >= self.min_similarity
        segments = []
        for _ in range(self.max_segments):
            _score, r0, c0, r1, c1, total, count = _longest_path(
                sim, on, self.off_penalty, self.turn_penalty, self.max_gap
            )
            if r0 < 0:
                break
            on[r0 : r1 + 1, c0 : c1 + 1] = False
            mean = total / count
            if count >= self.min_frames and mean >= self.min_score:
                segments.append(
                    box_segment(query_timestamps_s, reference_timestamps_s, (r0, r1), (c0, c1), mean)
                )
        return suppress_overlaps(segments)
