"""Key frames: which of a video's sampled frames are kept, chosen by name from ``KEYFRAMERS``.

A key-framer reads a library video's frame vectors at the sampling rate (``vcopy.pipeline``) and
returns the rows it keeps, always the first; only those are stored (vector,
timestamp, what text search reads). A library records its key-framer's full name (with its
weights' checksum). Suspects keep every sampled frame (their frames are not stored, and a copy's
band then shows in every kept reference column whatever frames the suspect's own thinning would
have picked).

- ``uniform`` (the default): every sampled frame;
- ``coverage``: a new key frame whenever a frame no longer looks like the current key frame
  (cosine below ``COVERAGE_THRESHOLD``: a cut, or a pan or zoom that has moved far enough); no
  model, the baseline a learned selector must beat;
- ``ske``: learned key frames (``vcopy.keyframes.ske``), a temporal network trained jointly with
  SPD (``vcopy.train.copy``), run with ONNX Runtime.

Maps against thinned references are drawn back on the full sampling grid (``on_grid``), so that
localizers see the axes they know and return seconds as before. A coverage key frame stands for the
span until the next one ("hold": its column fills the grid columns of that span); for learned key
frames the grid cells of frames not kept hold the background contrast ("gap"), as the masked maps
SKE and SPD were trained on do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vcopy.registry import build, kind_of

# name -> "module:factory"; imported only when one is built
KEYFRAMERS: dict[str, str] = {
    "uniform": "vcopy.keyframes:uniform",
    "coverage": "vcopy.keyframes:coverage",
    "ske": "vcopy.keyframes.ske:LearnedKeyFrames",
}
DEFAULT_KEYFRAMES = "uniform"
GAP_CONTRAST = -0.1  # what a grid cell of a frame not kept holds: SPD's background level
HOLDING = frozenset({"coverage"})  # key-framers whose key frames stand for the span to the next one
COVERAGE_THRESHOLD = 0.8  # a frame less similar than this to the current key frame starts a new one


class KeyFramer(Protocol):
    """What the pipeline needs of a key-frame selector."""

    name: str  # recorded in the library: registry name, and its weights' checksum if it has any

    @property
    def models(self) -> list[dict[str, str]]: ...

    def select(self, vectors: np.ndarray) -> np.ndarray:
        """The rows kept of a video's frame vectors [N, dim]: sorted, the first included."""
        ...


@dataclass(frozen=True)
class Uniform:
    """Every sampled frame is a key frame."""

    name: str = "uniform"

    @property
    def models(self) -> list[dict[str, str]]:
        return []

    def select(self, vectors: np.ndarray) -> np.ndarray:
        return np.arange(len(vectors))


def uniform(device: str = "cpu") -> Uniform:
    """The ``uniform`` key-framer (it runs no model, so ``device`` does not matter)."""
    return Uniform()


@dataclass(frozen=True)
class Coverage:
    """A frame is a key frame when its cosine similarity to the current key frame is below
    ``threshold`` (the first frame always is): each key frame covers the frames after it that
    still look like it."""

    threshold: float = COVERAGE_THRESHOLD

    @property
    def name(self) -> str:
        return f"coverage/{self.threshold:g}"

    @property
    def models(self) -> list[dict[str, str]]:
        return []

    def select(self, vectors: np.ndarray) -> np.ndarray:
        kept: list[int] = []
        key: np.ndarray | None = None
        for i, vector in enumerate(np.asarray(vectors, dtype=np.float32)):
            if key is None or float(vector @ key) < self.threshold:
                kept.append(i)
                key = vector
        return np.array(kept, dtype=np.int64)


def coverage(device: str = "cpu") -> Coverage:
    """The ``coverage`` key-framer at the shipped threshold (no model: ``device`` does not matter)."""
    return Coverage()


def holds_span(keyframes: str) -> bool:
    """Whether the key frames of this (full) name stand for the span to the next one."""
    return keyframer_kind(keyframes) in HOLDING


def keyframer_kind(name: str) -> str:
    """The registry name of a key-framer's full name (``ske/1a2b3c4d`` -> ``ske``)."""
    return kind_of(name)


def create_keyframer(name: str = DEFAULT_KEYFRAMES, device: str = "cpu") -> KeyFramer:
    """Build a key-framer by its registry name (or by the full name a library records)."""
    keyframer: KeyFramer = build(KEYFRAMERS, name, "key frames", device)
    return keyframer


def with_first(rows: np.ndarray, n_frames: int) -> np.ndarray:
    """``rows`` with the first frame added (the grid starts there), sorted and unique."""
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate([np.asarray(rows, dtype=np.int64), [0]]))


def grid_rows(timestamps_s: np.ndarray, sample_fps: float) -> np.ndarray:
    """The sampling-grid row of each kept frame (its whole sampling steps after the first)."""
    times = np.asarray(timestamps_s, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.round((times - times[0]) * sample_fps).astype(np.int64)


def grid_times(timestamps_s: np.ndarray, sample_fps: float) -> np.ndarray:
    """The time of every grid row from the first kept frame to the last: kept frames at their own
    time, the rows between them at whole sampling steps."""
    times = np.asarray(timestamps_s, dtype=np.float64)
    rows = grid_rows(times, sample_fps)
    n = int(rows[-1]) + 1 if len(rows) else 0
    full = times[0] + np.arange(n) / sample_fps if n else np.zeros(0)
    full[rows] = times
    return full


def on_grid(
    contrast: np.ndarray, query_rows: np.ndarray, reference_rows: np.ndarray, hold: bool = False
) -> np.ndarray:
    """A map between kept frames [q, r] drawn on the full grid: kept frames at their grid rows and
    columns; every other cell ``GAP_CONTRAST``, or with ``hold`` its row's and column's last kept
    frame's contrast (a key frame fills the span it stands for)."""
    n_q = int(query_rows[-1]) + 1 if len(query_rows) else 0
    n_r = int(reference_rows[-1]) + 1 if len(reference_rows) else 0
    if n_q == len(query_rows) and n_r == len(reference_rows):
        return contrast  # nothing was left out
    if hold:
        rows = np.searchsorted(query_rows, np.arange(n_q), side="right") - 1
        columns = np.searchsorted(reference_rows, np.arange(n_r), side="right") - 1
        return np.ascontiguousarray(contrast[np.ix_(rows, columns)], dtype=np.float32)
    full = np.full((n_q, n_r), GAP_CONTRAST, dtype=np.float32)
    full[np.ix_(query_rows, reference_rows)] = contrast
    return full


def grid_map(
    contrast: np.ndarray,
    query_times_s: np.ndarray,
    reference_times_s: np.ndarray,
    sample_fps: float,
    hold: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map, query times, reference times) of a map between kept frames, on the full grid (see
    ``on_grid`` for ``hold``)."""
    rows, columns = grid_rows(query_times_s, sample_fps), grid_rows(reference_times_s, sample_fps)
    grid = on_grid(contrast, rows, columns, hold)
    if grid is contrast:
        return contrast, query_times_s, reference_times_s
    return grid, grid_times(query_times_s, sample_fps), grid_times(reference_times_s, sample_fps)
