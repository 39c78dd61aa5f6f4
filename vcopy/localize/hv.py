"""Temporal Hough voting (Douze et al., 2010, as the VCSL benchmark uses it), vectorised in numpy.

Each query frame's ``top_k`` reference frames above ``min_contrast`` vote, weighted by
contrast, for the time offset (reference frame minus query frame) they imply. Each strong offset
peak is a candidate copy at unchanged speed: the query frames that match within ``tolerance``
frames of that offset, split where ``max_gap`` frames in a row are missing, are its segments.
Speed changes spread the votes, which is this method's known weakness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcopy.localize.base import MapByMap, Segment, box_segment, suppress_overlaps, top_k_per_row


@dataclass(frozen=True)
class HoughVoting(MapByMap):
    """Thresholds are in contrast units (similarity minus the query frame's background)."""

    name: str = "hv"
    top_k: int = 5
    min_contrast: float = 0.12
    tolerance: int = 1  # frames either side of a peak's offset
    max_gap: int = 4
    min_frames: int = 3
    min_score: float = 0.3  # mean contrast of a segment below which nothing is reported (the floor)
    match_threshold: float = 0.3  # from which a segment is a match (calibrated, train split)
    max_peaks: int = 8

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        n_query, n_ref = contrast.shape
        if n_query == 0 or n_ref == 0:
            return []
        cols, sims = top_k_per_row(contrast, self.top_k)
        rows = np.broadcast_to(np.arange(n_query)[:, None], cols.shape)
        keep = sims >= self.min_contrast
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        offsets = cols - rows + n_query  # >= 1
        votes = np.bincount(offsets, weights=sims, minlength=n_query + n_ref + 1)
        window = np.convolve(votes, np.ones(2 * self.tolerance + 1), mode="same")
        segments: list[Segment] = []
        for peak in np.argsort(-window)[: self.max_peaks]:
            if window[peak] <= 0:
                break
            near = np.abs(offsets - peak) <= self.tolerance
            if not near.any():
                continue
            # one match per query frame: the most similar near the peak
            order = np.lexsort((-sims[near], rows[near]))
            r, c, s = rows[near][order], cols[near][order], sims[near][order]
            first = np.r_[True, r[1:] != r[:-1]]
            r, c, s = r[first], c[first], s[first]
            breaks = np.flatnonzero(np.diff(r) > self.max_gap + 1) + 1
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(r)], strict=True):
                if hi - lo >= self.min_frames and s[lo:hi].mean() >= self.min_score:
                    segments.append(
                        box_segment(
                            query_timestamps_s,
                            reference_timestamps_s,
                            (int(r[lo]), int(r[hi - 1])),
                            (int(c[lo:hi].min()), int(c[lo:hi].max())),
                            float(s[lo:hi].mean()),
                        )
                    )
        return suppress_overlaps(segments)
