"""Shots shaped like real catalogues (generator version 3): held pictures, slow zooms, talking
heads, slides, slideshows, montages, fades, shared intros, with heavy-tailed lengths.

Real footage is mostly the opposite of a pan cut every 3 s: shots held for 5-60 s (interviews,
slides, wide shots), slow zooms, dissolves, black frames and intros that many videos share. A
copy of a held shot is a block on the similarity map, not a diagonal band; a detector that never
saw blocks misses such copies. Every shot here is deterministic given its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vcopy.synth import Clip, camera_path, photo_pan, procedural_shot, procedural_video

# kind -> share of shots; static and near-static kinds dominate, as in real catalogues
SHOT_KINDS: dict[str, float] = {
    "static": 0.24,  # a picture held still: sensor noise and compression flicker only
    "zoom": 0.16,  # a slow zoom or pan over a picture (Ken Burns)
    "talking": 0.14,  # a held frame with a small moving region (a talking head)
    "slide": 0.10,  # a slide or title card with text
    "handheld": 0.08,  # a picture with camera shake
    "pan": 0.07,  # a fast pan
    "slideshow": 0.06,  # pictures held 2-4 s each, joined by dissolves
    "montage": 0.06,  # cuts every 0.4-1.5 s
    "scene": 0.05,  # shapes moving over a textured background (version 2's procedural shot)
    "fade": 0.04,  # a fade to or from black over a picture, or plain black
}
STATIC_KINDS = frozenset({"static", "talking", "slide"})  # shots whose frames barely change
MEDIAN_SHOT_S = 5.0
SHOT_LENGTH_SIGMA = 1.0  # of log seconds: about 1 shot in 150 is over 60 s
SHOT_S_RANGE = (0.8, 120.0)
INTRO_S = (2.5, 3.0, 3.5, 4.0)  # the shared intros' lengths; several references open with each

_WORDS = (
    "quarterly", "results", "market", "outlook", "chapter", "introduction", "summary", "lecture",
    "questions", "river", "mountain", "history", "science", "weather", "report", "interview", "highlights",
    "season", "episode", "programme", "analysis", "method", "evidence", "results", "discussion",
    "future", "plans", "thanks",
)  # fmt: skip


@dataclass(frozen=True)
class ShotSpec:
    """One version-3 shot: its kind, length and seed; ``picture`` indexes the pictures its video
    frames (for an intro: which intro)."""

    kind: str
    seed: int
    duration_s: float
    picture: int = 0


def shot_length_s(rng: np.random.Generator) -> float:
    """A heavy-tailed shot length: log-normal around ``MEDIAN_SHOT_S``, within ``SHOT_S_RANGE``."""
    return float(np.clip(MEDIAN_SHOT_S * np.exp(rng.normal(0, SHOT_LENGTH_SIGMA)), *SHOT_S_RANGE))


def plan_shots(rng: np.random.Generator, duration_s: float, n_pictures: int) -> list[ShotSpec]:
    """Shots of drawn kinds and lengths up to ``duration_s``."""
    kinds, shares = list(SHOT_KINDS), np.array(list(SHOT_KINDS.values()))
    shots, total = [], 0.0
    while total < duration_s - 0.5:
        length = min(shot_length_s(rng), duration_s - total)
        kind = str(rng.choice(kinds, p=shares / shares.sum()))
        shots.append(ShotSpec(kind, int(rng.integers(2**31)), length, int(rng.integers(max(1, n_pictures)))))
        total += length
    return shots


def procedural_picture(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A picture of its own for a shot to frame: a procedural scene at twice ``size``."""
    return procedural_shot(seed, 1.0, 1.0, (size[0] * 2, size[1] * 2)).frames[0]


def render_shot(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """The frames of one shot framing ``picture`` (an intro ignores it)."""
    return _RENDERERS[shot.kind](shot, picture, fps, size)


def _intro(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """Intro number ``shot.picture``: a logo card growing out of black, the same in every video
    that opens with it."""
    card = _text_card(np.random.default_rng(1000 + shot.picture), size, lines=1, scale=2.0)
    n = _frames(shot, fps)
    ramp = np.clip(np.linspace(0, 1.6, n), 0, 1)[:, None, None, None]
    return Clip((card[None].astype(np.float32) * ramp).astype(np.uint8), fps)


def _frames(shot: ShotSpec, fps: float) -> int:
    return max(1, round(shot.duration_s * fps))


def _still(picture: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A framing of ``picture`` (a random crop of 50-100% of its height) at ``size``, float32."""
    height, width = size
    ih, iw = picture.shape[:2]
    h = int(ih * rng.uniform(0.5, 1.0))
    w = min(iw, int(h * width / height))
    y0, x0 = int(rng.integers(0, ih - h + 1)), int(rng.integers(0, iw - w + 1))
    rows = y0 + np.arange(height) * h // height
    cols = x0 + np.arange(width) * w // width
    return picture[rows][:, cols].astype(np.float32)


def _held(still: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` frames of a held picture: per-frame sensor noise and a slow brightness flicker (as
    compression and auto-exposure give)."""
    flicker = 3.0 * np.sin(np.arange(n) * rng.uniform(0.05, 0.3) + rng.uniform(0, 6))
    noise = 2.0 * rng.standard_normal((4, *still.shape), dtype=np.float32)  # drawn in turn, at random
    frames = np.empty((n, *still.shape), dtype=np.uint8)
    for f, k in enumerate(rng.integers(0, len(noise), n)):
        frames[f] = np.clip(still + noise[k] + np.float32(flicker[f]), 0, 255)
    return frames


def _static(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    rng = np.random.default_rng(shot.seed)
    return Clip(_held(_still(picture, size, rng), _frames(shot, fps), rng), fps)


def _zoom(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """A slow zoom (in or out, by 10-30%) drifting a little across the picture."""
    rng = np.random.default_rng(shot.seed)
    n = _frames(shot, fps)
    start = rng.uniform(0.6, 0.95)
    end = start * rng.uniform(0.7, 0.9) if rng.random() < 0.5 else min(1.0, start / rng.uniform(0.7, 0.9))
    (cy0, cy1), (cx0, cx1) = rng.uniform(0.4, 0.6, (2, 2))
    zoom, cy, cx = np.linspace(start, end, n), np.linspace(cy0, cy1, n), np.linspace(cx0, cx1, n)
    return Clip(camera_path(picture, zoom, cy, cx, size), fps)


def _talking(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """A held frame with a head-sized ellipse that sways and a mouth-sized region that changes."""
    rng = np.random.default_rng(shot.seed)
    n = _frames(shot, fps)
    height, width = size
    frames = _held(_still(picture, size, rng), n, rng)
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = height * rng.uniform(0.35, 0.55), width * rng.uniform(0.3, 0.7)
    ry, rx = height * 0.22, width * 0.12
    skin = rng.uniform(120, 230, 3)
    for f in range(n):
        sway = 3.0 * np.sin(f / fps * rng.uniform(0.5, 1.5))
        head = ((yy - cy) / ry) ** 2 + ((xx - cx - sway) / rx) ** 2 < 1
        frames[f][head] = skin.astype(np.uint8)
        mouth = (np.abs(yy - cy - ry * 0.45) < 2 + 4 * abs(np.sin(f * 1.7))) & (
            np.abs(xx - cx - sway) < rx * 0.4
        )
        frames[f][mouth] = 40
    return Clip(frames, fps)


def _text_card(rng: np.random.Generator, size: tuple[int, int], lines: int, scale: float = 1.0) -> np.ndarray:
    """A plain or two-tone card with ``lines`` lines of words (PIL's built-in font)."""
    height, width = size
    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.5:
        band = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.rectangle((0, 0, width, int(height * rng.uniform(0.15, 0.3))), fill=band)
    ink = tuple(255 - v for v in background)
    font = ImageFont.load_default(size=max(8, int(height / 14 * scale)))
    y = height * 0.2
    for _ in range(lines):
        words = " ".join(str(w) for w in rng.choice(_WORDS, int(rng.integers(2, 5))))
        draw.text((width * 0.08, y), words, fill=ink, font=font)
        y += height / 12 * scale * 1.4
    return np.asarray(image)


def _slide(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    rng = np.random.default_rng(shot.seed)
    card = _text_card(rng, size, lines=int(rng.integers(1, 7))).astype(np.float32)
    return Clip(_held(card, _frames(shot, fps), rng), fps)


def _handheld(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """A held framing that shakes by a few pixels (a smoothed random walk)."""
    rng = np.random.default_rng(shot.seed)
    n = _frames(shot, fps)
    height, width = size
    big = _still(picture, (height + 24, width + 24), rng).astype(np.uint8)
    walk = np.cumsum(rng.normal(0, 1.5, (n, 2)), axis=0)
    offsets = np.clip(walk - walk.mean(axis=0) + 12, 0, 24).astype(int)
    frames = np.stack([big[dy : dy + height, dx : dx + width] for dy, dx in offsets])
    return Clip(frames, fps)


def _pan(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    return photo_pan(picture, shot.seed, shot.duration_s, fps, size)


def _slideshow(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """Framings of the picture held 2-4 s each, joined by half-second dissolves."""
    rng = np.random.default_rng(shot.seed)
    n = _frames(shot, fps)
    stills: list[np.ndarray] = []
    bounds = [0]
    while bounds[-1] < n:
        stills.append(_still(picture, size, rng))
        bounds.append(bounds[-1] + max(1, round(rng.uniform(2, 4) * fps)))
    frames = np.empty((n, *size, 3), dtype=np.uint8)
    blend = max(1, round(0.5 * fps))
    for k, still in enumerate(stills):
        for f in range(bounds[k], min(bounds[k + 1], n)):
            into = f - (bounds[k + 1] - blend)
            if into > 0 and k + 1 < len(stills):
                a = into / blend
                frames[f] = ((1 - a) * still + a * stills[k + 1]).astype(np.uint8)
            else:
                frames[f] = still.astype(np.uint8)
    return Clip(frames, fps)


def _montage(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """Cuts every 0.4-1.5 s between framings of the picture and procedural scenes."""
    rng = np.random.default_rng(shot.seed)
    n = _frames(shot, fps)
    pieces, total = [], 0
    while total < n:
        length = max(1, round(rng.uniform(0.4, 1.5) * fps))
        if rng.random() < 0.5:
            pieces.append(np.repeat(_still(picture, size, rng).astype(np.uint8)[None], length, axis=0))
        else:
            pieces.append(procedural_shot(int(rng.integers(2**31)), length / fps, fps, size).frames)
        total += length
    return Clip(np.concatenate(pieces)[:n], fps)


def _scene(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    return procedural_video(shot.seed, shot.duration_s, fps, size)


def _fade(shot: ShotSpec, picture: np.ndarray, fps: float, size: tuple[int, int]) -> Clip:
    """Black, or a picture fading to or from black."""
    rng = np.random.default_rng(shot.seed)
    n = _frames(shot, fps)
    if rng.random() < 0.3:
        return Clip(np.zeros((n, *size, 3), dtype=np.uint8), fps)
    ramp = np.linspace(1, 0, n) if rng.random() < 0.5 else np.linspace(0, 1, n)
    still = _still(picture, size, rng)
    return Clip((still[None] * ramp[:, None, None, None]).astype(np.uint8), fps)


_RENDERERS: dict[str, Callable[[ShotSpec, np.ndarray, float, tuple[int, int]], Clip]] = {
    "static": _static,
    "zoom": _zoom,
    "talking": _talking,
    "slide": _slide,
    "handheld": _handheld,
    "pan": _pan,
    "slideshow": _slideshow,
    "montage": _montage,
    "scene": _scene,
    "fade": _fade,
    "intro": _intro,
}
