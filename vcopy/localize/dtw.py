"""Subsequence dynamic time warping (the DTW baseline of the VCSL benchmark, re-implemented).

Local alignment: a cell above ``min_contrast`` gains ``S - min_contrast``, any other costs
``gap_cost``. A warping path may start and end anywhere, steps down, right or diagonally at equal
weight (free warping, so any speed), and is cut where its accumulated gain would turn negative
(Smith-Waterman style). The best path's bounding box is a
copied segment; its box is switched off and the search repeats. Compiled with numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from vcopy.localize.base import MapByMap, Segment, box_segment, suppress_overlaps


@numba.njit(cache=True)
def _best_warp(gain: np.ndarray, sim: np.ndarray) -> tuple[float, int, int, int, int, float, int]:
    """Best local warping path: (gain, first row, first col, last row, last col, summed contrast
    of its cells with non-negative gain, their number). Keeps two rows of state: memory O(columns)."""
    n, m = gain.shape
    acc = np.zeros((2, m))
    start_r = np.zeros((2, m), dtype=np.int64)
    start_c = np.zeros((2, m), dtype=np.int64)
    total = np.zeros((2, m))
    count = np.zeros((2, m), dtype=np.int64)
    best = (0.0, -1, -1, -1, -1, 0.0, 0)
    for i in range(n):
        cur, old = i % 2, (i + 1) % 2
        for j in range(m):
            prev, pr, pj = 0.0, -1, -1
            if i > 0 and j > 0 and acc[old, j - 1] > prev:
                prev, pr, pj = acc[old, j - 1], old, j - 1
            if i > 0 and acc[old, j] > prev:
                prev, pr, pj = acc[old, j], old, j
            if j > 0 and acc[cur, j - 1] > prev:
                prev, pr, pj = acc[cur, j - 1], cur, j - 1
            value = prev + gain[i, j]
            acc[cur, j] = max(value, 0.0)
            if value <= 0:
                continue
            on = gain[i, j] >= 0
            if pr >= 0:
                start_r[cur, j], start_c[cur, j] = start_r[pr, pj], start_c[pr, pj]
                total[cur, j] = total[pr, pj] + (sim[i, j] if on else 0.0)
                count[cur, j] = count[pr, pj] + (1 if on else 0)
            else:
                start_r[cur, j], start_c[cur, j] = i, j
                total[cur, j], count[cur, j] = sim[i, j], 1
            if value > best[0]:
                best = (value, start_r[cur, j], start_c[cur, j], i, j, total[cur, j], count[cur, j])
    return best


@dataclass(frozen=True)
class DynamicTimeWarping(MapByMap):
    """Thresholds are in contrast units (similarity minus the query frame's background)."""

    name: str = "dtw"
    min_contrast: float = 0.12
    gap_cost: float = 0.3
    min_frames: int = 3
    min_score: float = 0.3  # mean contrast along the warping path below which nothing is reported (the floor)
    match_threshold: float = 0.3  # from which a segment is a match (calibrated, train split)
    max_segments: int = 8

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        if contrast.size == 0:
            return []
        sim = np.ascontiguousarray(contrast, dtype=np.float64)
        gain = np.where(sim >= self.min_contrast, sim - self.min_contrast, -self.gap_cost)
        segments = []
        for _ in range(self.max_segments):
            _, r0, c0, r1, c1, total, count = _best_warp(gain, sim)
            if r0 < 0:
                break
            gain[r0 : r1 + 1, c0 : c1 + 1] = -1.0
            mean = total / max(count, 1)
            if count >= self.min_frames and mean >= self.min_score:
                segments.append(
                    box_segment(query_timestamps_s, reference_timestamps_s, (r0, r1), (c0, c1), mean)
                )
        return suppress_overlaps(segments)
