"""Copy transformations (METHOD.md section 4), each at three strengths (level 0, 1, 2).

Clip edits act on every frame of a clip; speed changes resample frames; encoding edits
(heavy re-encoding, low resolution, frame-rate change) are settings for ``write_video``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from vcopy.synth import Clip, colour_shift, crop


@dataclass(frozen=True)
class Edit:
    """One transformation and its strength level (0 weakest, 2 strongest)."""

    name: str
    level: int

    @property
    def label(self) -> str:
        return f"{self.name}:{self.level}"


def _per_frame(clip: Clip, fn: Callable[[Image.Image], Image.Image]) -> Clip:
    _, height, width, _ = clip.frames.shape
    out = np.stack(
        [np.asarray(fn(Image.fromarray(f)).convert("RGB").resize((width, height))) for f in clip.frames]
    )
    return Clip(out, clip.fps)


def _resize(clip: Clip, height: int, width: int) -> Clip:
    return Clip(
        np.stack(
            [
                np.asarray(Image.fromarray(f).resize((width, height), Image.Resampling.BILINEAR))
                for f in clip.frames
            ]
        ),
        clip.fps,
    )


def hflip(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    return Clip(np.ascontiguousarray(clip.frames[:, :, ::-1]), clip.fps)


def crop_edit(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    return crop(clip, (0.85, 0.7, 0.55)[level])


def scale(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    """Change the resolution (and aspect ratio at the strongest level)."""
    _, height, width, _ = clip.frames.shape
    fy, fx = ((1.5, 1.5), (0.6, 0.6), (0.75, 0.5))[level]
    return _resize(clip, 2 * round(height * fy / 2), 2 * round(width * fx / 2))


def low_resolution(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    """Shrink to a small frame; the encoder then works at that size."""
    _, height, width, _ = clip.frames.shape
    f = (0.4, 0.3, 0.2)[level]
    return _resize(clip, 2 * round(height * f / 2), 2 * round(width * f / 2))


def rotation(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    angle = (5.0, 12.0, 25.0)[level] * rng.choice([-1.0, 1.0])
    return _per_frame(clip, lambda im: im.rotate(angle, resample=Image.Resampling.BILINEAR))


def blur(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    radius = (1.5, 3.0, 5.0)[level]
    return _per_frame(clip, lambda im: im.filter(ImageFilter.GaussianBlur(radius)))


def noise(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    sigma = (8.0, 16.0, 30.0)[level]
    noisy = clip.frames.astype(np.float32) + rng.normal(0, sigma, clip.frames.shape).astype(np.float32)
    return Clip(np.clip(noisy, 0, 255).astype(np.uint8), clip.fps)


def brightness(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    return colour_shift(clip, brightness=(0.12, -0.2, 0.3)[level])


def contrast(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    return colour_shift(clip, contrast=(1.3, 0.6, 0.4)[level])


def saturation(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    return colour_shift(clip, saturation=(1.5, 0.4, 2.2)[level])


def hue(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    shift = round((0.08, 0.2, 0.45)[level] * 255)

    def rotate_hue(im: Image.Image) -> Image.Image:
        h, s, v = im.convert("HSV").split()
        h = h.point(lambda x: (x + shift) % 256)
        return Image.merge("HSV", (h, s, v))

    return _per_frame(clip, rotate_hue)


def grayscale(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    grey = (clip.frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(
        np.uint8
    )
    return Clip(np.repeat(grey[..., None], 3, axis=-1), clip.fps)


_WORDS = "breaking news live exclusive subscribe watch full video now free hd official clip".split()  # noqa: SIM905


def text_overlay(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    """Captions: more lines and larger type at higher levels."""
    _, height, width, _ = clip.frames.shape
    lines = (1, 2, 4)[level]
    font = ImageFont.load_default(size=max(10, int(height * (0.07, 0.1, 0.13)[level])))
    text = [" ".join(rng.choice(_WORDS, 3)) for _ in range(lines)]
    ys = rng.uniform(0.05, 0.85, lines) * height
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))

    def draw(im: Image.Image) -> Image.Image:
        d = ImageDraw.Draw(im)
        for line, y in zip(text, ys, strict=True):
            d.text((width * 0.05, y), line, fill=colour, font=font, stroke_width=1, stroke_fill=(0, 0, 0))
        return im

    return _per_frame(clip, draw)


def logo_overlay(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    """An opaque badge in a corner covering a fraction of the frame's width."""
    _, height, width, _ = clip.frames.shape
    side = int(width * (0.12, 0.2, 0.3)[level])
    y0 = int(rng.choice([0.03 * height, height - side - 0.03 * height]))
    x0 = int(rng.choice([0.03 * width, width - side - 0.03 * width]))
    badge = np.zeros((side, side, 3), dtype=np.uint8)
    badge[:] = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:side, 0:side]
    badge[(yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 3) ** 2] = rng.integers(0, 256, 3)
    frames = clip.frames.copy()
    frames[:, y0 : y0 + side, x0 : x0 + side] = badge
    return Clip(frames, clip.fps)


def border(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    """Letterbox (bars top and bottom) or pillarbox, then back to the frame size."""
    _, height, width, _ = clip.frames.shape
    pad = (0.1, 0.2, 0.3)[level]
    colour = rng.integers(0, 256, 3) if level == 2 else np.zeros(3)
    vertical = bool(rng.random() < 0.5)
    ph, pw = (int(height * pad), 0) if vertical else (0, int(width * pad))
    inner = _resize(clip, height - 2 * ph, width - 2 * pw)
    frames = np.empty_like(clip.frames)
    frames[:] = colour.astype(np.uint8)
    frames[:, ph : height - ph, pw : width - pw] = inner.frames
    return Clip(frames, clip.fps)


def picture_in_picture(clip: Clip, level: int, rng: np.random.Generator, background: Clip) -> Clip:
    """The clip, shrunk, placed over ``background`` (a clip of at least the same length)."""
    _, height, width, _ = background.frames.shape
    f = (0.7, 0.55, 0.4)[level]
    h, w = int(height * f), int(width * f)
    inner = _resize(clip, h, w)
    y0 = int(rng.integers(0, height - h + 1))
    x0 = int(rng.integers(0, width - w + 1))
    frames = background.frames[: len(clip.frames)].copy()
    frames[:, y0 : y0 + h, x0 : x0 + w] = inner.frames
    return Clip(frames, clip.fps)


def frame_drop(clip: Clip, level: int, rng: np.random.Generator) -> Clip:
    """Freeze on the previous frame in place of a random fraction of frames (timing is kept)."""
    frames = clip.frames.copy()
    dropped = np.flatnonzero(rng.random(len(frames)) < (0.1, 0.25, 0.5)[level])
    for i in dropped[dropped > 0]:
        frames[i] = frames[i - 1]
    return Clip(frames, clip.fps)


CLIP_EDITS: dict[str, Callable[[Clip, int, np.random.Generator], Clip]] = {
    "crop": crop_edit,
    "scale": scale,
    "hflip": hflip,
    "rotation": rotation,
    "blur": blur,
    "noise": noise,
    "brightness": brightness,
    "contrast": contrast,
    "saturation": saturation,
    "hue": hue,
    "grayscale": grayscale,
    "text": text_overlay,
    "logo": logo_overlay,
    "border": border,
    "low_resolution": low_resolution,
    "frame_drop": frame_drop,
}
"""Edits applied to the whole query video, frame by frame."""

ENCODING_EDITS = ("reencode", "frame_rate")
"""Edits that are encoder settings: heavy re-encoding, a different output frame rate."""

COMPOSITE_EDITS = ("pip",)
"""Edits that put the copied segment over other content."""

ALL_EDITS = (*CLIP_EDITS, *ENCODING_EDITS, *COMPOSITE_EDITS)


def reencode_settings(level: int) -> dict[str, object]:
    """Encoder settings of a heavy re-encoding at ``level``: x264 at a high CRF, or MPEG-4 Part 2."""
    return (
        {"codec": "libx264", "crf": 38},
        {"codec": "mpeg4", "bit_rate": 150_000},
        {"codec": "libx264", "crf": 47},
    )[level]


def frame_rate(level: int) -> float:
    """Output frame rate of a frame-rate change at ``level``."""
    return (25.0, 6.0, 30.0)[level]


def change_speed(clip: Clip, speed: float) -> Clip:
    """Play ``speed`` times faster (frames dropped) or slower (frames repeated), same frame rate."""
    n_out = max(1, round(len(clip.frames) / speed))
    src = np.minimum((np.arange(n_out) * speed).astype(int), len(clip.frames) - 1)
    return Clip(clip.frames[src], clip.fps)


def resample_fps(clip: Clip, fps: float) -> Clip:
    """The same footage at another frame rate (frames dropped or repeated; duration kept)."""
    n_out = max(1, round(clip.duration_s * fps))
    src = np.minimum((np.arange(n_out) * clip.fps / fps).astype(int), len(clip.frames) - 1)
    return Clip(clip.frames[src], fps)
