"""Dynamic-programming longest path (the DP baseline of the VCSL benchmark, re-implemented).

Every map cell above ``min_similarity`` is "on". A path runs through the map moving down (next
query frame), right (next reference frame) or diagonally; it gains a cell's similarity on on-cells,
pays ``off_penalty`` for each off-cell it crosses (at most ``max_gap`` in a row, so a copy may fade
out for a moment) and ``turn_penalty`` for each non-diagonal step (a copy at another speed bends
the path). The best path's bounding box is a copied segment; its cells are switched off and the
search repeats. One pass over the map costs O(rows x columns), an anti-diagonal at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vcopy.localize.base import MapInput, Segment, box_segment, suppress_overlaps

_INTEGER_FIELDS = ("start_row", "start_col", "gaps", "count")
_FIELDS = ("score", "total", *_INTEGER_FIELDS)
Path = tuple[float, int, int, int, int, float, int]  # score, first row, col, last row, col, on-sum, on-cells
NO_PATH: Path = (0.0, -1, -1, -1, -1, 0.0, 0)


def longest_paths(
    sims: np.ndarray, on: np.ndarray, off_penalty: float, turn_penalty: float, max_gap: int
) -> list[Path]:
    """The best path of each map of a batch ``sims`` [B, rows, columns] (maps padded with off
    cells to one shape): (score, first row, first col, last row, last col, summed on-similarity,
    on-cells), or ``NO_PATH``. A cell depends on its upper, left and upper-left neighbours, so the
    cells of one anti-diagonal of every map are computed together from the two before it (numpy,
    no compiler; memory O(B x rows)). Ties go to the first cell in row-major order."""
    b, n, m = sims.shape
    state = [
        {f: np.zeros((b, n), dtype=np.int64 if f in _INTEGER_FIELDS else np.float64) for f in _FIELDS}
        for _ in range(3)
    ]
    best = [NO_PATH] * b
    best_index = [-1] * b
    for k in range(n + m - 1):
        cur, one, two = state[k % 3], state[(k - 1) % 3], state[(k - 2) % 3]
        lo, hi = max(0, k - m + 1), min(n - 1, k)
        i = np.arange(lo, hi + 1)
        j = k - i
        above = np.maximum(i - 1, 0)
        prev = np.zeros((b, len(i)))
        source = np.full((b, len(i)), -1)  # 0 upper-left (two diagonals back), 1 upper, 2 left
        for code, value in enumerate(
            (
                np.where((i >= 1) & (i <= k - 1), two["score"][:, above], 0.0),
                np.where(i >= 1, one["score"][:, above] - turn_penalty, -np.inf),
                np.where(i <= k - 1, one["score"][:, np.minimum(i, n - 1)] - turn_penalty, -np.inf),
            )
        ):
            take = value > prev
            prev[take], source[take] = value[take], code
        row = np.where(source == 2, i, above)
        came = {
            f: np.where(source == 0, np.take_along_axis(two[f], row, 1), np.take_along_axis(one[f], row, 1))
            for f in _FIELDS
        }
        has = source >= 0
        cells_on, s = on[:, i, j], sims[:, i, j]
        gap = ~cells_on & has & (came["gaps"] < max_gap) & (prev > off_penalty)
        score = np.where(cells_on, prev + s, np.where(gap, prev - off_penalty, 0.0))
        cur["score"][:, lo : hi + 1] = score
        cur["gaps"][:, lo : hi + 1] = np.where(gap, came["gaps"] + 1, 0)
        cur["start_row"][:, lo : hi + 1] = np.where(has, came["start_row"], i)
        cur["start_col"][:, lo : hi + 1] = np.where(has, came["start_col"], j)
        cur["total"][:, lo : hi + 1] = np.where(has, came["total"], 0.0) + np.where(cells_on, s, 0.0)
        cur["count"][:, lo : hi + 1] = np.where(has, came["count"], 0) + cells_on
        candidates = np.where(cells_on, score, -np.inf)
        top = np.argmax(candidates, axis=1)
        for x in np.flatnonzero(cells_on.any(axis=1)):
            t = int(top[x])
            top_score, index = float(candidates[x, t]), int(i[t]) * m + int(j[t])
            if top_score > best[x][0] or (
                top_score == best[x][0] and best_index[x] >= 0 and index < best_index[x]
            ):
                best_index[x] = index
                r0, c0 = int(cur["start_row"][x, lo + t]), int(cur["start_col"][x, lo + t])
                best[x] = (
                    top_score,
                    r0,
                    c0,
                    int(i[t]),
                    int(j[t]),
                    float(cur["total"][x, lo + t]),
                    int(cur["count"][x, lo + t]),
                )
    return best


@dataclass(frozen=True)
class DynamicProgramming:
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
        return self.localize_batch([(similarity, query_timestamps_s, reference_timestamps_s)])[0]

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        """Segments of each map. All maps are searched in one sweep (padded to the largest); each
        map's best path becomes a segment, its box is switched off, and the search repeats on the
        maps that still had a path, ``max_segments`` times at most."""
        found: list[list[Segment]] = [[] for _ in maps]
        live = [k for k, m in enumerate(maps) if m[0].size]
        if not live:
            return found
        shape = (len(maps), max(maps[k][0].shape[0] for k in live), max(maps[k][0].shape[1] for k in live))
        sims = np.full(shape, -1.0)
        for k in live:
            rows, cols = maps[k][0].shape
            sims[k, :rows, :cols] = maps[k][0]
        on = sims >= self.min_similarity
        for _ in range(self.max_segments):
            paths = longest_paths(sims[live], on[live], self.off_penalty, self.turn_penalty, self.max_gap)
            still = []
            for k, (_score, r0, c0, r1, c1, total, count) in zip(live, paths, strict=True):
                if r0 < 0:
                    continue
                still.append(k)
                on[k, r0 : r1 + 1, c0 : c1 + 1] = False
                mean = total / count
                if count >= self.min_frames and mean >= self.min_score:
                    _, q_times, r_times = maps[k]
                    found[k].append(box_segment(q_times, r_times, (r0, r1), (c0, c1), mean))
            live = still
            if not live:
                break
        return [suppress_overlaps(f) for f in found]
