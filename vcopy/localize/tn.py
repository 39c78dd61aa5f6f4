"""Temporal network localizer (Tan et al., 2009, as the VCSL benchmark uses it).

Each query frame keeps its ``top_k`` most similar reference frames above ``min_similarity`` as
nodes. A node links to nodes of the next ``max_step`` query frames whose reference time moves
forward by at most ``max_step`` frames (a copy may be slowed down, sped up or drop frames). The path
of largest summed similarity is a copied segment; its nodes are removed and the search repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcopy.localize.base import Segment, frame_span_s


@dataclass(frozen=True)
class TemporalNetwork:
    name: str = "tn"
    top_k: int = 5
    min_similarity: float = 0.5
    max_step: int = 3
    min_frames: int = 3
    min_score: float = 0.65  # mean similarity along a path that makes it a copy
    max_segments: int = 8

    def __call__(
        self, similarity: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        n_query, n_ref = similarity.shape
        if n_query == 0 or n_ref == 0:
            return []
        k = min(self.top_k, n_ref)
        cols = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        sims = np.take_along_axis(similarity, cols, axis=1)
        alive = sims >= self.min_similarity
        segments = []
        for _ in range(self.max_segments):
            path = self._best_path(cols, sims, alive)
            if path is None:
                break
            rows, picks = path
            alive[rows, picks] = False
            path_sims = sims[rows, picks]
            if path_sims.sum() < self.min_frames * self.min_score:
                break  # paths come best first: no later one can be a copy
            score = float(path_sims.mean())
            if len(rows) < self.min_frames or score < self.min_score:
                continue
            ref_cols = cols[rows, picks]
            q0, q1 = frame_span_s(query_timestamps_s, int(rows[0]), int(rows[-1]))
            r0, r1 = frame_span_s(reference_timestamps_s, int(ref_cols.min()), int(ref_cols.max()))
            segments.append(Segment(q0, q1, r0, r1, score))
        return sorted(segments, key=lambda s: -s.score)

    def _best_path(
        self, cols: np.ndarray, sims: np.ndarray, alive: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Longest (summed-similarity) path through the alive nodes, as (query rows, top-k slots)."""
        n_query, k = cols.shape
        best = np.where(alive, sims, -np.inf)
        parent = np.full((n_query, k, 2), -1, dtype=np.int64)
        for i in range(1, n_query):
            lo = max(0, i - self.max_step)
            prev_best = best[lo:i].ravel()  # predecessors: rows lo..i-1, every slot
            prev_cols = cols[lo:i].ravel()
            jump = cols[i][:, None] - prev_cols[None, :]  # [k, P] reference frames advanced
            ok = (jump >= 0) & (jump <= self.max_step) & np.isfinite(prev_best)[None, :]
            gain = np.where(ok, prev_best[None, :], -np.inf)
            arg = gain.argmax(axis=1)
            via = gain[np.arange(k), arg]
            extend = alive[i] & (via > 0)
            best[i] = np.where(extend, best[i] + via, best[i])
            parent[i, extend, 0] = lo + arg[extend] // k
            parent[i, extend, 1] = arg[extend] % k
        if not np.isfinite(best).any():
            return None
        i, slot = np.unravel_index(int(np.argmax(best)), best.shape)
        rows, picks = [int(i)], [int(slot)]
        while parent[rows[-1], picks[-1], 0] >= 0:
            i, slot = parent[rows[-1], picks[-1]]
            rows.append(int(i))
            picks.append(int(slot))
        return np.array(rows[::-1]), np.array(picks[::-1])
