"""What text search keeps of each library video, in tables it registers with the library
(``vcopy.library.register_tables``): each frame's top ImageNet classes (zero-shot search) and its
layout (trained search). They are written in the same transaction as the video's own rows, by
whoever commits it (``vcopy index`` or ``vcopy.indexing.index_videos``), and deleted with it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import numpy as np

from vcopy.library import Library
from vcopy.library_db import VideoTables, register_tables

if TYPE_CHECKING:
    from vcopy.features import EncodedVideo, FrameClasses

LAYOUT_STEPS = 127  # layouts (parts of unit vectors, so within -1..1) are stored as int8 in these steps

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frame_classes (
    video_id INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
    class_ids BLOB NOT NULL,  -- uint16 [frames, top_k], frames in time order
    probabilities BLOB NOT NULL,  -- float16 [frames, top_k]
    top_k INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS frame_layouts (
    video_id INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
    layouts BLOB NOT NULL,  -- int8 [frames, dim] = round(layout * LAYOUT_STEPS), frames in time order
    dim INTEGER NOT NULL
);
"""


def _insert(db: sqlite3.Connection, video_id: int, video: EncodedVideo) -> None:
    if video.text is None:
        return
    classes = video.text.classes
    db.execute(
        "INSERT INTO frame_classes VALUES (?, ?, ?, ?)",
        (
            video_id,
            classes.ids.astype(np.uint16).tobytes(),
            classes.probabilities.astype(np.float16).tobytes(),
            classes.ids.shape[1],
        ),
    )
    layouts = video.text.layouts
    db.execute(
        "INSERT INTO frame_layouts VALUES (?, ?, ?)",
        (video_id, quantized_layouts(layouts).tobytes(), layouts.shape[1]),
    )


TEXT_TABLES = VideoTables("text", _SCHEMA, ("frame_classes", "frame_layouts"), _insert)
register_tables(TEXT_TABLES)


def frame_classes(library: Library, video_id: int) -> FrameClasses | None:
    """A video's frames' top ImageNet classes, in time order; None when it has none."""
    row = library.video_row("frame_classes", "class_ids, probabilities, top_k", video_id)
    if row is None:
        return None
    k = int(row[2])
    ids = np.frombuffer(row[0], dtype=np.uint16).reshape(-1, k).astype(np.int64)
    probabilities = np.frombuffer(row[1], dtype=np.float16).reshape(-1, k).astype(np.float32)
    from vcopy.features import FrameClasses

    return FrameClasses(ids, probabilities)


def frame_layouts(library: Library, video_id: int) -> np.ndarray | None:
    """A video's frames' layouts [N, dim] (float32), in time order; None when it has none."""
    row = library.video_row("frame_layouts", "layouts, dim", video_id)
    if row is None:
        return None
    return np.frombuffer(row[0], dtype=np.int8).reshape(-1, int(row[1])).astype(np.float32) / LAYOUT_STEPS


def quantized_layouts(layouts: np.ndarray) -> np.ndarray:
    """Layouts as int8 steps of 1 / ``LAYOUT_STEPS`` (on the ablation set, no worse than float16)."""
    return np.clip(np.round(layouts * LAYOUT_STEPS), -LAYOUT_STEPS, LAYOUT_STEPS).astype(np.int8)
