"""Temporal network localizer (Tan et al., 2009, as the VCSL benchmark uses it).

Each query frame keeps its ``top_k`` most similar reference frames above ``min_similarity`` as
nodes. A node links to nodes of the next ``max_step`` query frames whose reference frame moves
forward at a rate between ``1 / max_speed`` and ``max_speed`` frames per query frame (a copy may be
slowed down, sped up or drop frames). The path
of largest summed similarity is a copied segment; its nodes are removed and the search repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcopy.localize.base import Segment, frame_span_s, suppress_overlaps


@dataclass(frozen=True)
class _Piece:
    rows: np.ndarray  # query frame indices along the path
    ref_cols: np.ndarray  # reference frame indices along the path
    sims: np.ndarray


@dataclass(frozen=True)
class TemporalNetwork:
    """Thresholds are in contrast units (similarity minus the query frame's background)."""

    name: str = "tn"
    top_k: int = 5
    min_similarity: float = 0.12
    max_step: int = 3
    max_speed: float = 2.0
    merge_gap: int = 6  # pieces this many frames apart on one diagonal band are one segment
    min_frames: int = 3
    min_score: float = 0.4  # mean contrast along a segment that makes it a copy
    max_paths: int = 16

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
        pieces = []
        for _ in range(self.max_paths):
            path = self._best_path(cols, sims, alive)
            if path is None:
                break
            rows, picks = path
            alive[rows, picks] = False
            pieces.append(_Piece(rows, cols[rows, picks], sims[rows, picks]))
        segments = []
        for piece in self._merge(pieces):
            score = float(piece.sims.mean())
            if len(piece.rows) < self.min_frames or score < self.min_score:
                continue
            q0, q1 = frame_span_s(query_timestamps_s, int(piece.rows.min()), int(piece.rows.max()))
            r0, r1 = frame_span_s(
                reference_timestamps_s, int(piece.ref_cols.min()), int(piece.ref_cols.max())
            )
            segments.append(Segment(q0, q1, r0, r1, score))
        return suppress_overlaps(sorted(segments, key=lambda s: -s.score))

    def _merge(self, pieces: list[_Piece]) -> list[_Piece]:
        """Join pieces that continue one another: next in both query and reference time, within
        ``merge_gap`` frames, at a speed the network allows."""
        merged: list[_Piece] = []
        for piece in sorted(pieces, key=lambda p: int(p.rows[0])):
            for i, kept in enumerate(merged):
                dq = int(piece.rows[0]) - int(kept.rows[-1])
                dr = int(piece.ref_cols[0]) - int(kept.ref_cols[-1])
                if (
                    1 <= dq <= self.merge_gap
                    and 1 <= dr <= self.merge_gap
                    and dr * self.max_speed >= dq
                    and dr <= dq * self.max_speed
                ):
                    merged[i] = _Piece(
                        np.concatenate([kept.rows, piece.rows]),
                        np.concatenate([kept.ref_cols, piece.ref_cols]),
                        np.concatenate([kept.sims, piece.sims]),
                    )
                    break
            else:
                merged.append(piece)
        return merged

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
            prev_rows = np.repeat(np.arange(lo, i), k)
            jump = cols[i][:, None] - prev_cols[None, :]  # [k, P] reference frames advanced
            gap = (i - prev_rows)[None, :]  # query frames advanced
            ok = (jump >= 1) & (jump * self.max_speed >= gap) & (jump <= gap * self.max_speed)
            ok &= np.isfinite(prev_best)[None, :]
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
