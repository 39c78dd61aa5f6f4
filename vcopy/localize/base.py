"""What every localizer takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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

    name: str

    def __call__(
        self, similarity: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]: ...


def frame_span_s(timestamps_s: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """Seconds covered by sampled frames ``first..last``: each frame stands for the half sampling
    step on either side of its timestamp."""
    step = float(np.median(np.diff(timestamps_s))) if len(timestamps_s) > 1 else 1.0
    return max(0.0, float(timestamps_s[first]) - step / 2), float(timestamps_s[last]) + step / 2
