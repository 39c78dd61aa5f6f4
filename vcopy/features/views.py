"""Query views: other framings of a suspect's frames, each described like the frame itself; a query
frame's similarity to a reference frame is the best over its views (``vcopy.similarity``).

Copies are often reframed: mirrored, letterboxed or padded, cropped around the action, or shown
small inside other footage or side by side with something else. The library stores one vector per
frame; a suspect's frame is also described as

- ``flip``: mirrored left to right;
- ``trim``: with uniform borders (letterbox, pillarbox, padding of any flat colour) cut off;
- ``centre``: its central 70%, for crops and a picture in the middle of the frame;
- ``halves``: its left, right, top and bottom halves, for stacked frames and a picture in a corner.

Every view keeps the frame size, so the descriptor sees what it sees of a library frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

CENTRE_FRACTION = 0.7
BORDER_MAX_STD = 6.0  # a border row or column is this flat (grey levels)
BORDER_MAX_FRACTION = 0.35  # at most this much of each side is cut


def _resized(frames: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Each frame's box (top, bottom, left, right) resized back to the frame's size."""
    height, width = frames.shape[1:3]
    return np.stack(
        [
            np.asarray(Image.fromarray(f[t:b, left:right]).resize((width, height), Image.Resampling.BILINEAR))
            for f, (t, b, left, right) in zip(frames, boxes, strict=True)
        ]
    )


def _flat_edge(profile: np.ndarray) -> int:
    """How many leading entries of a per-row (or per-column) spread profile are flat."""
    limit = int(len(profile) * BORDER_MAX_FRACTION)
    flat = profile[:limit] <= BORDER_MAX_STD
    return int(np.argmin(flat)) if not flat.all() else limit


def trim_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of ``frame`` without its flat borders."""
    grey = frame.astype(np.float32).mean(axis=2)
    rows, cols = grey.std(axis=1), grey.std(axis=0)
    top, bottom = _flat_edge(rows), _flat_edge(rows[::-1])
    left, right = _flat_edge(cols), _flat_edge(cols[::-1])
    height, width = grey.shape
    if rows.max() <= BORDER_MAX_STD:  # a flat picture (a plain colour) has no border to cut
        return 0, height, 0, width
    return top, height - bottom, left, width - right


def flip(frames: np.ndarray) -> list[np.ndarray]:
    return [np.ascontiguousarray(frames[:, :, ::-1])]


def trim(frames: np.ndarray) -> list[np.ndarray]:
    return [_resized(frames, [trim_box(f) for f in frames])]


def centre(frames: np.ndarray) -> list[np.ndarray]:
    height, width = frames.shape[1:3]
    dy, dx = round(height * (1 - CENTRE_FRACTION) / 2), round(width * (1 - CENTRE_FRACTION) / 2)
    return [_resized(frames, [(dy, height - dy, dx, width - dx)] * len(frames))]


def halves(frames: np.ndarray) -> list[np.ndarray]:
    height, width = frames.shape[1:3]
    boxes = [
        (0, height, 0, width // 2),
        (0, height, width // 2, width),
        (0, height // 2, 0, width),
        (height // 2, height, 0, width),
    ]
    return [_resized(frames, [box] * len(frames)) for box in boxes]


VIEWS: dict[str, Callable[[np.ndarray], list[np.ndarray]]] = {
    "flip": flip,
    "trim": trim,
    "centre": centre,
    "halves": halves,
}
# centre and halves cost more false matches than they find (docs/benchmarks.md)
DEFAULT_VIEWS = ("flip", "trim")


def view_frames(frames: np.ndarray, views: tuple[str, ...]) -> list[np.ndarray]:
    """The frames of every view named in ``views``, in order (``halves`` gives four)."""
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown view {unknown[0]!r}; choose from {', '.join(VIEWS)}")
    return [framed for name in views for framed in VIEWS[name](frames)]
