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

Each stored key frame stands for a span of the video, recorded with it (``span_ends``): a coverage
key frame for the frames until the next one and the last for the rest of the video ("hold"); a
learned key frame for its own sampling step ("gap", as the masked maps SKE and SPD were trained on).
Maps against thinned references are drawn back on the full sampling grid (``grid_map``), each key
frame filling the grid columns of its span and cells outside any span holding the background
contrast, so that localizers see the axes they know and return seconds as before.
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
HOLDING = frozenset({"coverage"})  # key-framers whose key frames held their span before schema 7
COVERAGE_THRESHOLD = 0.8  # a frame less similar than this to the current key frame starts a new one


class KeyFramer(Protocol):
    """What the pipeline needs of a key-frame selector."""

    name: str  # recorded in the library: registry name, and its weights' checksum if it has any

    @property
    def holds(self) -> bool:
        """A key frame stands for the span to the next one (else for its own sampling step)."""
        ...

    @property
    def models(self) -> list[dict[str, str]]: ...

    def select(self, vectors: np.ndarray) -> np.ndarray:
        """The rows kept of a video's frame vectors [N, dim]: sorted, the first included."""
        ...


@dataclass(frozen=True)
class Uniform:
    """Every sampled frame is a key frame."""

    name: str = "uniform"
    holds: bool = False

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
    holds: bool = True

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
    """Whether the key frames of this (full) name stood for the span to the next one in a library
    made before spans were recorded (schema 6: coverage key frames did, learned ones did not)."""
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


def span_ends(times_s: np.ndarray, rows: np.ndarray, sample_fps: float, holds: bool) -> np.ndarray:
    """The end (s) of the span each kept frame (``rows`` of a video's sampled frames at ``times_s``)
    stands for: with ``holds`` up to the next kept frame, the last one to the end of the video's last
    sampling step; otherwise its own sampling step."""
    times = np.asarray(times_s, dtype=np.float64)
    kept = times[np.asarray(rows, dtype=np.int64)]
    if not holds or len(kept) == 0:
        return kept + 1.0 / sample_fps
    return np.append(kept[1:], times[-1] + 1.0 / sample_fps)


def one_step_spans(times_s: np.ndarray, sample_fps: float) -> np.ndarray:
    """Span ends of frames that each stand for their own sampling step only."""
    return np.asarray(times_s, dtype=np.float64) + 1.0 / sample_fps


def grid_axis(
    times_s: np.ndarray, span_ends_s: np.ndarray, sample_fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """An axis of kept frames laid out on the full sampling grid, from the first kept frame to the
    end of the last one's span: (for each grid row the kept frame whose span holds it, -1 for none;
    each grid row's time: a kept frame's own at its first row, whole sampling steps from the first
    kept frame elsewhere)."""
    times = np.asarray(times_s, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    starts = np.round((times - times[0]) * sample_fps).astype(np.int64)
    ends = np.round((np.asarray(span_ends_s, dtype=np.float64) - times[0]) * sample_fps).astype(np.int64)
    ends = np.maximum(ends, starts + 1)
    rows = np.arange(int(ends.max()))
    owner = np.searchsorted(starts, rows, side="right") - 1
    source = np.where(rows < ends[owner], owner, -1)
    grid_times_s = times[0] + rows / sample_fps
    grid_times_s[starts] = times
    return source, grid_times_s


def on_grid(contrast: np.ndarray, query_source: np.ndarray, reference_source: np.ndarray) -> np.ndarray:
    """A map between kept frames [q, r] drawn on the full grid (``grid_axis``'s sources): each kept
    frame fills the rows or columns of its span, every cell outside any span holds
    ``GAP_CONTRAST``."""
    complete = np.array_equal(query_source, np.arange(contrast.shape[0])) and np.array_equal(
        reference_source, np.arange(contrast.shape[1])
    )
    if complete:
        return contrast  # nothing was left out
    full = contrast[np.ix_(np.maximum(query_source, 0), np.maximum(reference_source, 0))]
    full = np.array(full, dtype=np.float32)
    full[query_source < 0, :] = GAP_CONTRAST
    full[:, reference_source < 0] = GAP_CONTRAST
    return full


def grid_map(
    contrast: np.ndarray,
    query_times_s: np.ndarray,
    reference_times_s: np.ndarray,
    sample_fps: float,
    reference_span_ends_s: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(map, query times, reference times) of a map between kept frames, on the full grid: each
    reference key frame fills its span (``reference_span_ends_s``; default: its own sampling step),
    each query frame its own step."""
    ends = reference_span_ends_s
    if ends is None:
        ends = one_step_spans(reference_times_s, sample_fps)
    query_source, query_grid_s = grid_axis(
        query_times_s, one_step_spans(query_times_s, sample_fps), sample_fps
    )
    reference_source, reference_grid_s = grid_axis(reference_times_s, ends, sample_fps)
    grid = on_grid(contrast, query_source, reference_source)
    if grid is contrast:
        return contrast, query_times_s, reference_times_s
    return grid, query_grid_s, reference_grid_s
