"""Synthetic videos: procedural shots, pans over real photos, copy transformations, encoding.

Used by the tests and the bundled examples. Every clip is deterministic given its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Clip:
    """Frames [N, H, W, 3] uint8 RGB at ``fps`` frames per second."""

    frames: np.ndarray
    fps: float

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps

    def cut(self, start_s: float, end_s: float) -> Clip:
        return Clip(self.frames[round(start_s * self.fps) : round(end_s * self.fps)], self.fps)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], bilinear upsampling of a random grid."""
    grid = rng.random((cells + 1, cells + 1))
    ys = np.linspace(0, cells, height)
    xs = np.linspace(0, cells, width)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def procedural_shot(
    seed: int, duration_s: float, fps: float = 15, size: tuple[int, int] = (240, 320)
) -> Clip:
    """One shot: a textured, coloured background with shapes moving over it."""
    rng = np.random.default_rng(seed)
    height, width = size
    colours = rng.random((2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1) / 2
    texture = smooth_noise(rng, height, width, int(rng.integers(3, 12)))
    background = (colours[0] * ramp[..., None] + colours[1] * (1 - ramp[..., None])) * 0.7 + 0.3 * texture[
        ..., None
    ]
    n_shapes = int(rng.integers(3, 7))
    centres = rng.random((n_shapes, 2)) * [height, width]
    velocity = rng.normal(0, 40, (n_shapes, 2))
    radius = rng.uniform(15, 60, n_shapes)
    shape_colour = rng.random((n_shapes, 3))
    is_box = rng.random(n_shapes) < 0.5
    n_frames = max(1, round(duration_s * fps))
    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    for f in range(n_frames):
        image = background.copy()
        for s in range(n_shapes):
            cy, cx = centres[s] + velocity[s] * f / fps
            if is_box[s]:
                mask = (np.abs(yy - cy) < radius[s]) & (np.abs(xx - cx) < radius[s] * 0.7)
            else:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < radius[s] ** 2
            image[mask] = shape_colour[s]
        frames[f] = np.clip(image * 255, 0, 255).astype(np.uint8)
    return Clip(frames, fps)


def procedural_video(
    seed: int, duration_s: float, fps: float = 15, size: tuple[int, int] = (240, 320)
) -> Clip:
    """Shots of 1.5-4 s cut together, so that content changes over time like edited footage."""
    rng = np.random.default_rng(seed)
    shots = []
    total = 0.0
    while total < duration_s - 1e-9:
        length = min(float(rng.uniform(1.5, 4.0)), duration_s - total)
        shots.append(procedural_shot(int(rng.integers(2**31)), length, fps, size).frames)
        total += length
    return Clip(np.concatenate(shots), fps)


def photo_pan(
    image: np.ndarray, seed: int, duration_s: float, fps: float = 15, size: tuple[int, int] = (240, 320)
) -> Clip:
    """A camera moving and zooming over a real photo."""
    rng = np.random.default_rng(seed)
    n_frames = max(1, round(duration_s * fps))
    zoom = np.linspace(rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.7), n_frames)
    cy0, cy1 = rng.uniform(0.3, 0.7, 2)
    cy = np.linspace(cy0, cy1, n_frames)
    cx0, cx1 = rng.uniform(0.3, 0.7, 2)
    cx = np.linspace(cx0, cx1, n_frames)
    return Clip(camera_path(image, zoom, cy, cx, size), fps)


def camera_path(
    image: np.ndarray, zoom: np.ndarray, cy: np.ndarray, cx: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Frames [N, H, W, 3] of a camera over ``image``: per frame, the window ``zoom`` of the
    image's height (as wide as ``size``'s aspect allows) centred at (``cy``, ``cx``) in fractions
    of the image, kept inside it, sampled (nearest) at ``size``."""
    height, width = size
    ih, iw = image.shape[:2]
    frames = np.empty((len(zoom), height, width, 3), dtype=np.uint8)
    for f in range(len(zoom)):
        h = int(ih * zoom[f])
        w = min(iw, int(h * width / height))
        y0 = int(np.clip(cy[f] * ih - h / 2, 0, ih - h))
        x0 = int(np.clip(cx[f] * iw - w / 2, 0, iw - w))
        rows = y0 + (np.arange(height) * h // height)
        cols = x0 + (np.arange(width) * w // width)
        frames[f] = image[rows][:, cols]
    return frames


def concat(clips: Sequence[Clip]) -> Clip:
    return Clip(np.concatenate([c.frames for c in clips]), clips[0].fps)


def crop(clip: Clip, keep: float) -> Clip:
    """Keep the central ``keep`` fraction of each side, scaled back to the original size."""
    _, height, width, _ = clip.frames.shape
    h, w = int(height * keep), int(width * keep)
    y0, x0 = (height - h) // 2, (width - w) // 2
    rows = y0 + np.arange(height) * h // height
    cols = x0 + np.arange(width) * w // width
    return Clip(clip.frames[:, rows][:, :, cols], clip.fps)


def colour_shift(clip: Clip, brightness: float = 0.0, contrast: float = 1.0, saturation: float = 1.0) -> Clip:
    """Brightness offset (in [-1, 1] of full range), contrast and saturation gains."""
    x = clip.frames.astype(np.float32) / 255
    grey = x.mean(axis=-1, keepdims=True)
    x = grey + (x - grey) * saturation
    x = (x - 0.5) * contrast + 0.5 + brightness
    return Clip(np.clip(x * 255, 0, 255).astype(np.uint8), clip.fps)


def write_video(
    path: Path,
    clip: Clip,
    codec: str = "libx264",
    crf: int = 23,
    size: tuple[int, int] | None = None,
    rotation_deg: int = 0,
    bit_rate: int | None = None,
) -> Path:
    """Encode with PyAV (real encoders); ``size`` is (height, width) to rescale to; ``bit_rate``
    (bits per second) is for codecs without a CRF, such as ``mpeg4``."""
    import av

    height, width = size or clip.frames.shape[1:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(clip.fps).limit_denominator(1001))
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        if bit_rate:
            stream.bit_rate = bit_rate
        if rotation_deg:
            stream.set_display_rotation(rotation_deg)
        for image in clip.frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if (height, width) != image.shape[:2]:
                frame = frame.reformat(width=width, height=height)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
