"""Captioned videos of real photographs: an object photo moving over a plain textured background,
with a caption that says what is shown. The photos ship inside installed packages (scikit-image,
scikit-learn, ultralytics, matplotlib), so the set is made offline and is the same everywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcopy import synth


@dataclass(frozen=True)
class CaptionedPhoto:
    package: str
    file: str  # inside the package
    caption: str


REAL_PHOTOS = (
    CaptionedPhoto("skimage", "data/chelsea.png", "a tabby cat looking at the camera"),
    CaptionedPhoto("skimage", "data/coffee.png", "a cup of coffee on a saucer"),
    CaptionedPhoto("skimage", "data/rocket.jpg", "a space shuttle on the launch pad"),
    CaptionedPhoto("skimage", "data/astronaut.png", "an astronaut in a space suit with a flag"),
    CaptionedPhoto("skimage", "data/motorcycle_left.png", "a motorcycle parked indoors"),
    CaptionedPhoto("skimage", "data/clock_motion.png", "a clock on the wall"),
    CaptionedPhoto("skimage", "data/coins.png", "a collection of old coins"),
    CaptionedPhoto("skimage", "data/hubble_deep_field.jpg", "galaxies in deep space"),
    CaptionedPhoto("skimage", "data/camera.png", "a photographer with a camera on a tripod"),
    CaptionedPhoto("skimage", "data/brick.png", "a brick wall"),
    CaptionedPhoto("ultralytics", "assets/bus.jpg", "a bus in the street with people walking"),
    CaptionedPhoto("ultralytics", "assets/zidane.jpg", "two men in suits, one wearing a tie"),
    CaptionedPhoto("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "a woman in a navy uniform"),
    CaptionedPhoto("sklearn", "datasets/images/china.jpg", "a chinese temple among trees"),
    CaptionedPhoto("sklearn", "datasets/images/flower.jpg", "a close-up of a pink flower"),
)


def load_photo(photo: CaptionedPhoto) -> np.ndarray | None:
    """The photo as RGB uint8, or None when its package is not installed."""
    from importlib.util import find_spec

    from PIL import Image

    spec = find_spec(photo.package)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / photo.file
    return np.asarray(Image.open(path).convert("RGB")) if path.is_file() else None


def object_over_background(
    image: np.ndarray, seed: int, duration_s: float, fps: float = 8, size: tuple[int, int] = (240, 320)
) -> synth.Clip:
    """The photo, scaled to 60-80% of the frame height, gliding across a coloured textured
    background."""
    rng = np.random.default_rng(seed)
    height, width = size
    colour = rng.uniform(0.2, 0.8, 3)
    texture = synth.smooth_noise(rng, height, width, 6)[..., None]
    background = np.clip((colour * 0.7 + 0.3 * texture) * 255, 0, 255).astype(np.uint8)
    ih, iw = image.shape[:2]
    n_frames = max(1, round(duration_s * fps))
    frames = np.repeat(background[None], n_frames, axis=0)
    scale = rng.uniform(0.6, 0.8) * height / ih
    oh, ow = int(ih * scale), min(width, int(iw * scale))
    patch = image[(np.arange(oh) * ih // oh)][:, (np.arange(ow) * iw // ow)]
    x_path = np.linspace(rng.uniform(0, 0.2), rng.uniform(0.8, 1.0), n_frames) * (width - ow)
    y_path = np.linspace(rng.uniform(0, 1), rng.uniform(0, 1), n_frames) * (height - oh)
    for f in range(n_frames):
        y, x = int(y_path[f]), int(x_path[f])
        frames[f, y : y + oh, x : x + ow] = patch
    return synth.Clip(frames, fps)


def make_real_photo_set(out_dir: Path, duration_s: float = 6.0, seed: int = 0) -> Path:
    """One video per available photo in ``out_dir`` and ``captions.jsonl`` (``{"video",
    "caption"}`` per line, video paths relative to ``out_dir``); returns the captions file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, photo in enumerate(REAL_PHOTOS):
        image = load_photo(photo)
        if image is None:
            continue
        name = f"{Path(photo.file).stem}.mp4"
        if not (out_dir / name).is_file():
            synth.write_video(out_dir / name, object_over_background(image, seed * 1000 + i, duration_s))
        lines.append(json.dumps({"video": name, "caption": photo.caption}))
    captions = out_dir / "captions.jsonl"
    captions.write_text("\n".join(lines) + "\n")
    return captions
