"""Temporal network localizer (Tan et al., 2009, as the VCSL benchmark uses it).

Each query frame keeps its ``top_k`` most similar reference frames above ``min_contrast`` as
nodes. A node links to nodes of the next ``max_step`` query frames whose reference frame moves
forward at a rate between ``1 / max_speed`` and ``max_speed`` frames per query frame (a copy may be
slowed down, sped up or drop frames). The path of largest summed contrast is a copied segment;
its nodes are removed and the search repeats. The path search is compiled with numba.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from vcopy.localize.base import MapByMap, Segment, box_segment, suppress_overlaps, top_k_per_row


@numba.njit(cache=True)
def _best_path(
    cols: np.ndarray, sims: np.ndarray, alive: np.ndarray, max_step: int, max_speed: float
) -> tuple[np.ndarray, np.ndarray]:
    """Longest (summed-contrast) path through alive nodes: (query rows, top-k slots); empty if none."""
    n_query, k = cols.shape
    best = np.full((n_query, k), -np.inf)
    parent_row = np.full((n_query, k), -1, dtype=np.int64)
    parent_slot = np.full((n_query, k), -1, dtype=np.int64)
    top, top_i, top_s = -np.inf, -1, -1
    for i in range(n_query):
        for s in range(k):
            if not alive[i, s]:
                continue
            via, via_row, via_slot = 0.0, -1, -1
            for p in range(max(0, i - max_step), i):
                gap = i - p
                for t in range(k):
                    jump = cols[i, s] - cols[p, t]
                    if (
                        alive[p, t]
                        and jump >= 1
                        and jump * max_speed >= gap
                        and jump <= gap * max_speed
                        and best[p, t] > via
                    ):
                        via, via_row, via_slot = best[p, t], p, t
            best[i, s] = sims[i, s] + via
            parent_row[i, s], parent_slot[i, s] = via_row, via_slot
            if best[i, s] > top:
                top, top_i, top_s = best[i, s], i, s
    rows, slots = [], []
    i, s = top_i, top_s
    while i >= 0:
        rows.append(i)
        slots.append(s)
        i, s = parent_row[i, s], parent_slot[i, s]
    return np.array(rows[::-1], dtype=np.int64), np.array(slots[::-1], dtype=np.int64)


@dataclass(frozen=True)
class _Piece:
    rows: np.ndarray  # query frame indices along the path
    ref_cols: np.ndarray  # reference frame indices along the path
    sims: np.ndarray


@dataclass(frozen=True)
class TemporalNetwork(MapByMap):
    """Thresholds are in contrast units (similarity minus the query frame's background)."""

    name: str = "tn"
    top_k: int = 5
    min_contrast: float = 0.12
    max_step: int = 3
    max_speed: float = 2.0
    merge_gap: int = 6  # pieces this many frames apart on one diagonal band are one segment
    trim_ratio: float = 0.4  # path ends weaker than this fraction of the path's median are cut
    min_frames: int = 3
    min_score: float = 0.3  # mean contrast along a segment below which nothing is reported (the floor)
    match_threshold: float = 0.3  # from which a segment is a match (calibrated, train split)
    max_paths: int = 16

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        n_query, n_ref = contrast.shape
        if n_query == 0 or n_ref == 0:
            return []
        cols, sims = top_k_per_row(contrast, self.top_k)
        sims = sims.astype(np.float64)
        alive = sims >= self.min_contrast
        pieces = []
        for _ in range(self.max_paths):
            rows, picks = _best_path(cols, sims, alive, self.max_step, self.max_speed)
            if len(rows) == 0:
                break
            alive[rows, picks] = False
            pieces.append(_Piece(rows, cols[rows, picks], sims[rows, picks]))
        segments = [
            box_segment(
                query_timestamps_s,
                reference_timestamps_s,
                (int(piece.rows.min()), int(piece.rows.max())),
                (int(piece.ref_cols.min()), int(piece.ref_cols.max())),
                float(piece.sims.mean()),
            )
            for piece in map(self._trim, self._merge(pieces))
            if len(piece.rows) >= self.min_frames and piece.sims.mean() >= self.min_score
        ]
        return suppress_overlaps(segments)

    def _trim(self, piece: _Piece) -> _Piece:
        """Cut weak nodes off both ends: a path picks up faint neighbours before and after a copy."""
        strong = np.flatnonzero(piece.sims >= self.trim_ratio * np.median(piece.sims))
        keep = slice(int(strong[0]), int(strong[-1]) + 1)
        return _Piece(piece.rows[keep], piece.ref_cols[keep], piece.sims[keep])

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
