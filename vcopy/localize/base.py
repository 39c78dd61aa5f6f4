"""What every localizer takes and returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from vcopy.video import frame_span_s, sampling_step_s

MapInput = tuple[np.ndarray, np.ndarray, np.ndarray]  # contrast, query times (s), reference times (s)


@dataclass(frozen=True)
class Segment:
    """One copied segment: where it is in the query and in the reference (seconds), and how sure."""

    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float
    score: float


@dataclass(frozen=True)
class BoundaryRanges:
    """Where each end of a segment may lie, (earliest s, latest s): ``MARGIN_STEPS`` sampling steps
    either way of the reported end, widened wherever the map is flat across it (a pan or a zoom
    over one picture matches many frames equally well, so the map alone cannot place the end)."""

    query_start_s: tuple[float, float]
    query_end_s: tuple[float, float]
    reference_start_s: tuple[float, float]
    reference_end_s: tuple[float, float]


# Fitted on the benchmark's train split (examples/boundary_coverage.py, generator version 2, SSCD
# and its SPD) for ranges that hold the true end 9 times in 10 there: frames within TIE_CONTRAST
# of the best one at an end are as likely, and a reported end may be off by MARGIN_STEPS sampling
# steps. The test split holds 85.7% (docs/benchmarks.md, Boundary ranges)
TIE_CONTRAST = 0.3
MARGIN_STEPS = 1.0


def _tied_run(values: np.ndarray, centre: int, tie: float, search: int = 2) -> tuple[int, int]:
    """The contiguous run of indices around the best value near ``centre`` (within ``search``)
    whose values are within ``tie`` of it, ``centre`` included."""
    lo, hi = max(0, centre - search), min(len(values) - 1, centre + search)
    best = lo + int(np.argmax(values[lo : hi + 1]))
    floor = values[best] - tie
    first, last = best, best
    while first > 0 and values[first - 1] >= floor:
        first -= 1
    while last < len(values) - 1 and values[last + 1] >= floor:
        last += 1
    return min(first, centre), max(last, centre)


def boundary_ranges(
    contrast: np.ndarray,
    query_timestamps_s: np.ndarray,
    reference_timestamps_s: np.ndarray,
    segment: Segment,
    tie: float = TIE_CONTRAST,
    margin_steps: float = MARGIN_STEPS,
) -> BoundaryRanges:
    """The ranges of a segment's four ends on its map: an end on one axis is placed by the row
    (or column) at the other axis's end; frames tied with the best one there widen its range."""
    q_times, r_times = query_timestamps_s, reference_timestamps_s
    q_step, r_step = sampling_step_s(q_times), sampling_step_s(r_times)
    i0 = int(np.clip(np.searchsorted(q_times, segment.query_start_s), 0, len(q_times) - 1))
    i1 = int(np.clip(np.searchsorted(q_times, segment.query_end_s) - 1, i0, len(q_times) - 1))
    j0 = int(np.clip(np.searchsorted(r_times, segment.reference_start_s), 0, len(r_times) - 1))
    j1 = int(np.clip(np.searchsorted(r_times, segment.reference_end_s) - 1, j0, len(r_times) - 1))

    def span(times: np.ndarray, run: tuple[int, int], step: float, edge: float) -> tuple[float, float]:
        """From the first to the last tied frame's edge (``edge`` -1/2 for a start, +1/2 for an
        end), widened by the margin."""
        margin = margin_steps * step
        first, last = float(times[run[0]]) + edge * step, float(times[run[1]]) + edge * step
        return max(0.0, first - margin), last + margin

    return BoundaryRanges(
        query_start_s=span(q_times, _tied_run(contrast[:, j0], i0, tie), q_step, -0.5),
        query_end_s=span(q_times, _tied_run(contrast[:, j1], i1, tie), q_step, 0.5),
        reference_start_s=span(r_times, _tied_run(contrast[i0], j0, tie), r_step, -0.5),
        reference_end_s=span(r_times, _tied_run(contrast[i1], j1, tie), r_step, 0.5),
    )


class Localizer(Protocol):
    """Finds copied segments on a query x reference contrast map."""

    @property
    def name(self) -> str: ...

    @property
    def match_threshold(self) -> float:
        """The score from which a segment is a match (calibrated on the train split); the localizer
        also returns weaker segments above its own floor, so that pairs can be ranked."""
        ...

    def __call__(
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]: ...

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        """Segments of each map; a learned localizer runs them as one batch."""
        ...

    @property
    def models(self) -> list[dict[str, str]]:
        """The weights files it runs (name, SHA-256), for the report; none for the baselines."""
        ...

    @property
    def settings(self) -> dict[str, object]:
        """Every setting in effect, for the report."""
        ...

    @property
    def trained_on(self) -> str | None:
        """The descriptor whose maps it was trained on (None: it reads any map)."""
        ...


class MapByMap:
    """For the baselines, dataclasses that work on one map at a time: a batch is a loop; no
    weights, their settings are their fields."""

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        return [self(*m) for m in maps]  # type: ignore[operator]

    @property
    def models(self) -> list[dict[str, str]]:
        return []

    @property
    def settings(self) -> dict[str, object]:
        return asdict(self)  # type: ignore[call-overload]

    @property
    def trained_on(self) -> str | None:
        return None


def top_k_per_row(contrast: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar reference frames of each query frame: (columns, similarities), [n, k]."""
    k = min(k, contrast.shape[1])
    cols = np.argpartition(-contrast, k - 1, axis=1)[:, :k]
    return cols, np.take_along_axis(contrast, cols, axis=1)


def box_segment(
    query_timestamps_s: np.ndarray,
    reference_timestamps_s: np.ndarray,
    rows: tuple[int, int],
    cols: tuple[int, int],
    score: float,
) -> Segment:
    """The segment covering query frames ``rows[0]..rows[1]`` and reference frames ``cols[0]..cols[1]``."""
    q0, q1 = frame_span_s(query_timestamps_s, rows[0], rows[1], sampling_step_s(query_timestamps_s))
    r0, r1 = frame_span_s(reference_timestamps_s, cols[0], cols[1], sampling_step_s(reference_timestamps_s))
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
