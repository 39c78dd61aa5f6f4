"""What every localizer takes and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

MapInput = tuple[np.ndarray, np.ndarray, np.ndarray]  # similarity, query times (s), reference times (s)


@dataclass(frozen=True)
class Segment:
    """One copied segment: where it is in the query and in the reference (seconds), and how sure."""

    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    score: float


class Localizer(Protocol):
    """Finds copied segments on a query x reference similarity map."""

    @property
    def name(self) -> str: ...

    def __call__(
        self, similarity: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]: ...

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        """Segments of each map; a learned localizer runs them as one batch."""
        ...


class MapByMap:
    """For localizers that work on one map at a time: a batch is a loop."""

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        return [self(*m) for m in maps]  # type: ignore[operator]


def frame_span_s(timestamps_s: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """Seconds covered by sampled frames ``first..last``: each frame stands for the half sampling
    step on either side of its timestamp."""
    step = float(np.median(np.diff(timestamps_s))) if len(timestamps_s) > 1 else 1.0
    return max(0.0, float(timestamps_s[first]) - step / 2), float(timestamps_s[last]) + step / 2


def top_k_per_row(similarity: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar reference frames of each query frame: (columns, similarities), [n, k]."""
    k = min(k, similarity.shape[1])
    cols = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    return cols, np.take_along_axis(similarity, cols, axis=1)


def box_segment(
    query_timestamps_s: np.ndarray,
    reference_timestamps_s: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
    score: float,
) -> Segment:
    """The segment covering query frames ``rows[0]..rows[1]`` and reference frames ``cols[0]..cols[1]``."""
    q0, q1 = frame_span_s(query_timestamps_s, rows[0], rows[1])
    r0, r1 = frame_span_s(reference_timestamps_s, cols[0], cols[1])
    return Segment(q0, q1, r0, r1, score)


def _overlap_fraction(a0: float, a1: float, b0: float, b1: float) -> float:
    """Overlap of two intervals as a fraction of the shorter one."""
    shorter = min(a1 - a0, b1 - b0)
    return max(0.0, min(a1, b1) - max(a0, b0)) / shorter if shorter > 0 else 0.0


def suppress_overlaps(segments: list[Segment], max_overlap: float = 0.5) -> list[Segment]:
    """Keep segments best first, dropping any that repeats a kept one: more than ``max_overlap`` of
    the shorter interval shared on both the query and the reference axis."""
    kept: list[Segment] = []
    for seg in sorted(segments, key=lambda s: -s.score):
        if not any(
            _overlap_fraction(seg.query_start_s, seg.query_end_s, k.query_start_s, k.query_end_s)
            > max_overlap
            and _overlap_fraction(
                seg.reference_start_s, seg.reference_end_s, k.reference_start_s, k.reference_end_s
            )
            > max_overlap
            for k in kept
        ):
            kept.append(seg)
    return kept
