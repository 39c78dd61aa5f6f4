"""Dynamic-programming longest path (the DP baseline of the VCSL benchmark, re-implemented).

Every map cell above ``min_contrast`` is "on". A path runs through the map moving down (next
query frame), right (next reference frame) or diagonally; it gains a cell's contrast on on-cells,
pays ``off_penalty`` for each off-cell it crosses (at most ``max_gap`` in a row, so a copy may fade
out for a moment) and ``turn_penalty`` for each non-diagonal step (a copy at another speed bends
the path). The best path's bounding box is a copied segment; its cells are switched off and the
search repeats. One pass over the map costs O(rows x columns), compiled with numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from vcopy.localize.base import MapByMap, Segment, box_segment, suppress_overlaps


@numba.njit(cache=True)
def _longest_path(
    sim: np.ndarray, on: np.ndarray, off_penalty: float, turn_penalty: float, max_gap: int
) -> tuple[float, int, int, int, int, float, int]:
    """Best path: (score, first row, first col, last row, last col, summed on-contrast, on-cells).
    Keeps two rows of state, so memory is O(columns)."""
    n, m = sim.shape
    # per cell of the previous (0) and current (1) row: score, path start, gap run, on-sum, on-count
    score = np.zeros((2, m))
    start_r = np.zeros((2, m), dtype=np.int64)
    start_c = np.zeros((2, m), dtype=np.int64)
    gaps = np.zeros((2, m), dtype=np.int64)
    total = np.zeros((2, m))
    count = np.zeros((2, m), dtype=np.int64)
    best = (0.0, -1, -1, -1, -1, 0.0, 0)
    for i in range(n):
        cur, old = i % 2, (i + 1) % 2
        for j in range(m):
            prev, pr, pj = 0.0, -1, -1
            if i > 0 and j > 0 and score[old, j - 1] > prev:
                prev, pr, pj = score[old, j - 1], old, j - 1
            if i > 0 and score[old, j] - turn_penalty > prev:
                prev, pr, pj = score[old, j] - turn_penalty, old, j
            if j > 0 and score[cur, j - 1] - turn_penalty > prev:
                prev, pr, pj = score[cur, j - 1] - turn_penalty, cur, j - 1
            score[cur, j], gaps[cur, j] = 0.0, 0
            if on[i, j]:
                score[cur, j] = prev + sim[i, j]
                if pr >= 0:
                    start_r[cur, j], start_c[cur, j] = start_r[pr, pj], start_c[pr, pj]
                    total[cur, j], count[cur, j] = total[pr, pj] + sim[i, j], count[pr, pj] + 1
                else:
                    start_r[cur, j], start_c[cur, j] = i, j
                    total[cur, j], count[cur, j] = sim[i, j], 1
                if score[cur, j] > best[0]:
                    best = (
                        score[cur, j],
                        start_r[cur, j],
                        start_c[cur, j],
                        i,
                        j,
                        total[cur, j],
                        count[cur, j],
                    )
            elif pr >= 0 and gaps[pr, pj] < max_gap and prev > off_penalty:
                score[cur, j] = prev - off_penalty
                gaps[cur, j] = gaps[pr, pj] + 1
                start_r[cur, j], start_c[cur, j] = start_r[pr, pj], start_c[pr, pj]
                total[cur, j], count[cur, j] = total[pr, pj], count[pr, pj]
    return best


@dataclass(frozen=True)
class DynamicProgramming(MapByMap):
    """Thresholds are in contrast units (similarity minus the query frame's background)."""

    name: str = "dp"
    min_contrast: float = 0.12
    off_penalty: float = 0.1
    turn_penalty: float = 0.05
    max_gap: int = 4
    min_frames: int = 3
    min_score: float = 0.3  # mean contrast over on-cells below which nothing is reported (the floor)
    match_threshold: float = 0.3  # from which a segment is a match (calibrated, train split)
    max_segments: int = 8

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        if contrast.size == 0:
            return []
        sim = np.ascontiguousarray(contrast, dtype=np.float64)
        on = sim >= self.min_contrast
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
