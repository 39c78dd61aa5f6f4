"""Captioned videos of real photographs: an object photo moving over a plain textured background,
with a caption that says what is shown. The photos ship inside installed packages (scikit-image,
scikit-learn, ultralytics, matplotlib), so the set is made offline and is the same everywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
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


# The fine-grained set: real objects in colours, counts, motions and places, with near misses.

FINE_OBJECTS = {  # noun (singular, plural) -> photo
    ("cat", "cats"): REAL_PHOTOS[0],
    ("cup of coffee", "cups of coffee"): REAL_PHOTOS[1],
    ("space shuttle", "space shuttles"): REAL_PHOTOS[2],
    ("astronaut", "astronauts"): REAL_PHOTOS[3],
    ("motorcycle", "motorcycles"): REAL_PHOTOS[4],
    ("bus", "buses"): REAL_PHOTOS[10],
    ("flower", "flowers"): REAL_PHOTOS[14],
}
COLOURS = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.1, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.6, 0.2, 0.8),
    "orange": (1.0, 0.5, 0.0),
}
COUNTS = ("one", "two", "three")
MOTIONS = ("moving to the left", "moving to the right", "growing bigger", "standing still")
PLACES = ("on the left", "on the right", "at the top", "at the bottom")  # for objects standing still


@dataclass(frozen=True)
class Scene:
    """What a fine-grained video shows, in words a caption can say."""

    noun: tuple[str, str]
    colour: str
    count: int
    motion: str
    place: str  # only for objects standing still, else ""

    def captions(self) -> list[str]:
        """Two phrasings that both say everything visible."""
        singular, plural = self.noun
        noun = singular if self.count == 1 else plural
        where = f" {self.place}" if self.place else ""
        first = f"{COUNTS[self.count - 1]} {self.colour} {noun} {self.motion}{where}"
        article = "a" if self.count == 1 else COUNTS[self.count - 1]
        verb = {
            "moving to the left": "move left",
            "moving to the right": "move right",
            "growing bigger": "grow bigger",
            "standing still": "stay still",
        }[self.motion]
        verb = verb if self.count > 1 else verb.split()[0] + "s " + " ".join(verb.split()[1:])
        second = f"{article} {noun} in {self.colour} {verb.strip()}{where}"
        return [first, second]


def _tinted(image: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    """The photo recoloured: its brightness times ``colour`` (65%) over the original (35%)."""
    grey = image.astype(np.float32).mean(-1, keepdims=True)
    tinted = grey * np.array(colour, np.float32) * 0.65 * 1.4 + image.astype(np.float32) * 0.35
    return np.clip(tinted, 0, 255).astype(np.uint8)


def _resized(image: np.ndarray, height: int) -> np.ndarray:
    ih, iw = image.shape[:2]
    width = max(1, round(iw * height / ih))
    return image[(np.arange(height) * ih // height)][:, (np.arange(width) * iw // width)]


def fine_grained_clip(
    scene: Scene, photo: np.ndarray, seed: int, duration_s: float = 6.0, fps: float = 8, size: int = 160
) -> synth.Clip:
    """``scene`` drawn over a grey textured background: ``count`` tinted copies of the photo in a
    row (a column when moving sideways), moving, growing or standing at ``place``."""
    rng = np.random.default_rng(seed)
    texture = synth.smooth_noise(rng, size, size, 5)[..., None]
    background = np.clip((0.35 + 0.3 * texture) * 255 * np.ones(3), 0, 255).astype(np.uint8)
    n_frames = round(duration_s * fps)
    frames = np.repeat(background[None], n_frames, axis=0)
    tinted = _tinted(photo, COLOURS[scene.colour])
    sideways = scene.motion.startswith("moving")
    base = size * (0.3 if scene.count > 1 else 0.45)
    for f in range(n_frames):
        t = f / max(1, n_frames - 1)
        height = round(base * (0.6 + 1.0 * t) if scene.motion == "growing bigger" else base)
        patch = _resized(tinted, height)
        ph, pw = patch.shape[:2]
        pw = min(pw, size // (1 if sideways else scene.count) - 2)
        patch = patch[:, :pw]
        if sideways:
            x_frac = t if scene.motion.endswith("right") else 1 - t
            xs = [x_frac * (size - pw)] * scene.count
            ys = [(i + 0.5) * size / scene.count - ph / 2 for i in range(scene.count)]
        else:
            cx = {"on the left": 0.25, "on the right": 0.75}.get(scene.place, 0.5)
            cy = {"at the top": 0.25, "at the bottom": 0.75}.get(scene.place, 0.5)
            if scene.place in ("at the top", "at the bottom") or not scene.place:
                xs = [(i + 0.5) * size / scene.count - pw / 2 for i in range(scene.count)]
                ys = [cy * size - ph / 2] * scene.count
            else:
                xs = [cx * size - pw / 2] * scene.count
                ys = [(i + 0.5) * size / scene.count - ph / 2 for i in range(scene.count)]
        for x, y in zip(xs, ys, strict=True):
            y0 = int(np.clip(y, 0, size - ph))
            x0 = int(np.clip(x, 0, size - pw))
            frames[f, y0 : y0 + ph, x0 : x0 + pw] = patch
    return synth.Clip(frames, fps)


def fine_grained_scenes(groups: int, seed: int = 0) -> list[Scene]:
    """``groups`` random scenes, each followed by three near misses: the same objects in another
    colour, in another motion (or place), and in another number. No scene is shown twice."""
    rng = np.random.default_rng(seed)
    nouns, colours = list(FINE_OBJECTS), list(COLOURS)

    def place_for(motion: str) -> str:
        return PLACES[rng.integers(len(PLACES))] if motion == "standing still" else ""

    possible = len(nouns) * len(colours) * 3 * (len(MOTIONS) - 1 + len(PLACES))
    if 4 * groups > possible // 2:
        raise ValueError(f"at most {possible // 8} groups of distinct scenes")
    scenes: list[Scene] = []
    while len(scenes) < 4 * groups:
        motion = MOTIONS[rng.integers(len(MOTIONS))]
        base = Scene(
            nouns[rng.integers(len(nouns))],
            colours[rng.integers(len(colours))],
            int(rng.integers(1, 4)),
            motion,
            place_for(motion),
        )
        if base in scenes:  # every video shows something no other video shows
            continue
        other_colour = [c for c in colours if c != base.colour][rng.integers(len(colours) - 1)]
        if base.motion == "standing still" and rng.random() < 0.5:
            moved = replace(base, place=[p for p in PLACES if p != base.place][rng.integers(len(PLACES) - 1)])
        else:
            other_motion = [m for m in MOTIONS if m != base.motion][rng.integers(len(MOTIONS) - 1)]
            moved = replace(base, motion=other_motion, place=place_for(other_motion))
        other_count = [n for n in (1, 2, 3) if n != base.count][rng.integers(2)]
        group = [base, replace(base, colour=other_colour), moved, replace(base, count=other_count)]
        if not any(scene in scenes for scene in group):
            scenes += group
    return scenes


def make_fine_grained_set(out_dir: Path, groups: int = 110, seed: int = 0, duration_s: float = 6.0) -> Path:
    """Videos of ``fine_grained_scenes(groups, seed)`` (four per group) in ``out_dir`` and
    ``captions.jsonl`` (two captions per video); deterministic. Returns the captions file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    photos = {noun: load_photo(photo) for noun, photo in FINE_OBJECTS.items()}
    lines = []
    for i, scene in enumerate(fine_grained_scenes(groups, seed)):
        photo = photos[scene.noun]
        if photo is None:
            continue
        name = f"scene{i:04d}.mp4"
        if not (out_dir / name).is_file():
            synth.write_video(out_dir / name, fine_grained_clip(scene, photo, seed * 100_000 + i, duration_s))
        lines += [json.dumps({"video": name, "caption": c}) for c in scene.captions()]
    captions = out_dir / "captions.jsonl"
    captions.write_text("\n".join(lines) + "\n")
    return captions
