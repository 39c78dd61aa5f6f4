"""Encoded videos with random frame vectors, for filling a library through its real commit path
without decoding anything (library scale benchmarks, text-search timing, tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcopy.features import LAYOUT_DIMS, LAYOUT_GRID, EncodedVideo, FrameClasses, TextFeatures
from vcopy.video import FileStamp, VideoInfo


def random_video(
    rng: np.random.Generator, number: int, n_frames: int, dim: int, text: bool = True
) -> EncodedVideo:
    """Video ``/videos/v<number>.mp4`` of ``n_frames`` frames at 1 frame/s: unit vectors drawn at
    random and, with ``text``, random ImageNet classes and layouts."""
    vectors = rng.normal(size=(n_frames, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    features = None
    if text:
        probabilities = rng.dirichlet(np.full(1000, 0.02), n_frames).astype(np.float32)
        layouts = rng.normal(size=(n_frames, LAYOUT_GRID**2 * LAYOUT_DIMS)).astype(np.float32)
        features = TextFeatures(FrameClasses.top(probabilities), np.clip(layouts / 4, -1, 1))
    return EncodedVideo(
        path=Path(f"/videos/v{number:07d}.mp4"),
        info=VideoInfo(float(n_frames), 25.0, 320, 240, 0, n_frames * 25),
        stamp=FileStamp(1, number, f"{number:064x}"),
        decoder="synthetic",
        vectors=vectors,
        timestamps_s=np.arange(n_frames, dtype=np.float64),
        text=features,
    )
