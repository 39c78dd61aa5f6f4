"""A copy-detection benchmark: reference videos, query videos that copy parts of them, ground truth.

``generate(out_dir, size="small"|"default", seed=0)`` writes videos under ``out_dir`` and
``groundtruth.json`` (schema ``vcopy.groundtruth/1``). Everything is deterministic given the seed.

Splits: ``train`` (for training models; its references and queries are disjoint from the rest),
``test`` (the benchmark), and ``long`` (catalogue-like: 10-60 minute references, 1-10 minute
queries; default size only).

References are cut together from shots: procedural scenes, and pans over tiles of real photos
(each tile used by one reference only, so that no two references share footage). The test split
pans over another set of photos than the train and long splits (``PHOTO_SETS``), so that what is
measured there is footage that training never saw. Queries embed one or two copied segments
between unrelated procedural content, or copy nothing; every query carries an edit from
``vcopy.synth.edits`` (each edit alone at each level, then combinations: pairs in train, up to
three in test), and copied segments are played at speeds from 0.5x to 2x. A share of the test
queries also goes through an ffmpeg-made edit (``vcopy.synth.ffmpeg_edits``), kinds and code that
the train split never has.
"""

from __future__ import annotations

import functools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from vcopy import __version__, synth
from vcopy.errors import VcopyError
from vcopy.files import write_atomically
from vcopy.groundtruth import GROUND_TRUTH, SCHEMA
from vcopy.processes import die_with_parent
from vcopy.synth import edits, ffmpeg_edits, shots
from vcopy.synth.edits import Edit
from vcopy.video import sha256_file

SPEEDS = (1.0, 1.0, 1.0, 1.0, 0.5, 0.75, 1.5, 2.0)
# 2: held-out photos in the test split, ffmpeg-made edits, up to 3 edits in test, and each photo tile
# in one reference only (version 1 gave every reference the same tiles, so references shared footage)
# 3 (size "catalogue"): shots shaped like real catalogues (vcopy.synth.shots), several copies per
# query anywhere in it, whole re-uploads, intros shared by references (hard negatives)
GENERATOR_VERSION = 2
CATALOGUE_VERSION = 3


@dataclass(frozen=True)
class SplitSpec:
    """How many videos of which lengths one split holds."""

    n_refs: int
    ref_s: tuple[float, float]
    n_queries: int
    copy_s: tuple[float, float]  # length of a copied segment, in reference seconds
    filler_s: tuple[float, float]  # unrelated content around copied segments
    fps: float = 10.0
    size: tuple[int, int] = (240, 320)  # height, width
    max_edits: int = 2
    photo_set: str = "base"  # which PHOTO_SETS its references pan over
    ffmpeg_fraction: float = 0.0  # share of queries that also get an ffmpeg-made edit
    catalogue: bool = False  # version 3: catalogue-like shots (vcopy.synth.shots), copies anywhere


@dataclass(frozen=True)
class BenchmarkSize:
    splits: dict[str, SplitSpec]


SIZES = {
    "small": BenchmarkSize(
        {
            "test": SplitSpec(8, (14, 20), 16, (5, 9), (1, 4), photo_set="held_out", ffmpeg_fraction=0.35),
            "train": SplitSpec(4, (14, 20), 8, (5, 9), (1, 4)),
        }
    ),
    "default": BenchmarkSize(
        {
            "test": SplitSpec(
                100, (20, 40), 300, (6, 16), (2, 10), max_edits=3, photo_set="held_out", ffmpeg_fraction=0.35
            ),
            "train": SplitSpec(60, (20, 40), 200, (6, 16), (2, 10)),
            "long": SplitSpec(4, (600, 3600), 6, (20, 180), (20, 200), fps=5.0, size=(180, 320), max_edits=1),
        }
    ),
    "catalogue": BenchmarkSize(
        {
            "train": SplitSpec(30, (20, 150), 120, (3, 60), (2, 40), catalogue=True),
            "test": SplitSpec(
                50, (20, 150), 150, (3, 120), (2, 40), max_edits=3, photo_set="held_out",
                ffmpeg_fraction=0.35, catalogue=True,
            ),
            "long": SplitSpec(
                3, (600, 1200), 4, (10, 120), (60, 300), fps=5.0, size=(180, 320), max_edits=1, catalogue=True
            ),
        }
    ),
}  # fmt: skip
LONG_REF_S = (600.0, 1200.0, 1800.0, 3600.0)
LONG_QUERY_S = (60.0, 120.0, 180.0, 300.0, 480.0, 600.0)


@dataclass(frozen=True)
class Shot:
    """A piece of footage: a procedural scene, or a pan over one tile of a real photo."""

    seed: int
    duration_s: float
    photo: int = -1  # index into photos(photo_set), -1 for procedural
    tile: int = 0
    photo_set: str = "base"
    kind: str = ""  # version 3: a kind of vcopy.synth.shots; its picture is a tile of the photo
    # (CATALOGUE_GRID), or with photo -1 the procedural picture of seed ``tile``


@dataclass(frozen=True)
class Recipe:
    """Everything needed to render a video again, deterministically."""

    shots: tuple[Shot, ...]
    fps: float
    size: tuple[int, int]

    @property
    def duration_s(self) -> float:
        return sum(round(s.duration_s * self.fps) for s in self.shots) / self.fps


@dataclass(frozen=True)
class CopyPlan:
    reference: int  # index of the reference in the split
    reference_start_s: float
    reference_end_s: float
    speed: float


@dataclass(frozen=True)
class QueryPlan:
    path: str
    fillers: tuple[Recipe, ...]  # one more than copies: before, between, after
    copies: tuple[CopyPlan, ...]
    edits: tuple[edits.Edit, ...]
    seed: int
    ffmpeg_edit: Edit | None = None  # applied by ffmpeg after encoding

    @property
    def labels(self) -> list[str]:
        """Every edit of the query, as ground truth names them."""
        return [e.label for e in (*self.edits, *([self.ffmpeg_edit] if self.ffmpeg_edit else []))]


@dataclass
class Copy:
    """Ground truth for one copied segment (seconds)."""

    reference: str
    query_start: float
    query_end: float
    reference_start: float
    reference_end: float
    speed: float
    transforms: list[str] = field(default_factory=list)
    shot: str = ""  # the kind of shot that fills most of the copied span (dominant_kind)


_TILE_GRID = (2, 3)
CATALOGUE_GRID = (3, 4)  # version 3 frames smaller tiles (a reference holds a tile, not a photo's worth)
PHOTO_SETS = ("base", "held_out")
# scikit-image's sample photos (colour, then greyscale), the test split's footage
_HELD_OUT_PHOTOS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "stereo_motorcycle", "camera", "moon", "brick", "grass", "gravel", "clock", "coins",
)  # fmt: skip


@functools.cache
def photos(photo_set: str = "base") -> list[np.ndarray]:
    """Real photographs that ship inside installed packages (RGB uint8): ``base`` from scikit-learn,
    ultralytics and matplotlib; ``held_out`` from scikit-image."""
    from importlib.util import find_spec

    from PIL import Image

    if photo_set == "held_out":
        import skimage.data

        loaded = [getattr(skimage.data, name)() for name in _HELD_OUT_PHOTOS]
        pictures = [p[0] if isinstance(p, tuple) else p for p in loaded]  # a stereo pair: its left view
        return [np.repeat(p[..., None], 3, axis=2) if p.ndim == 2 else p[..., :3] for p in pictures]
    found: list[Path] = []
    for package, names in [
        ("sklearn", ["datasets/images/china.jpg", "datasets/images/flower.jpg"]),
        ("ultralytics", ["assets/bus.jpg", "assets/zidane.jpg"]),
        ("matplotlib", ["mpl-data/sample_data/grace_hopper.jpg"]),
    ]:
        spec = find_spec(package)
        if spec and spec.origin:
            found += [p for n in names if (p := Path(spec.origin).parent / n).is_file()]
    return [np.asarray(Image.open(p).convert("RGB")) for p in found]


def _tile(image: np.ndarray, tile: int, grid: tuple[int, int] = _TILE_GRID) -> np.ndarray:
    rows, cols = grid
    h, w = image.shape[0] // rows, image.shape[1] // cols
    r, c = divmod(tile, cols)
    return image[r * h : (r + 1) * h, c * w : (c + 1) * w]


def render(recipe: Recipe, start_s: float = 0.0, end_s: float | None = None) -> synth.Clip:
    """Frames of ``recipe`` between ``start_s`` and ``end_s``, rendering only the shots needed."""
    end_s = recipe.duration_s if end_s is None else end_s
    start_f, end_f = round(start_s * recipe.fps), round(end_s * recipe.fps)
    pictures = {name: photos(name) for name in {s.photo_set for s in recipe.shots if s.photo >= 0}}
    pieces, at = [], 0
    for shot in recipe.shots:
        n = round(shot.duration_s * recipe.fps)
        if at + n > start_f and at < end_f:
            if shot.kind:
                picture = (
                    _tile(pictures[shot.photo_set][shot.photo], shot.tile, CATALOGUE_GRID)
                    if shot.photo >= 0
                    else shots.procedural_picture(shot.tile, recipe.size)
                )
                spec = shots.ShotSpec(shot.kind, shot.seed, n / recipe.fps, shot.tile)
                clip = shots.render_shot(spec, picture, recipe.fps, recipe.size)
            elif shot.photo >= 0:
                clip = synth.photo_pan(
                    _tile(pictures[shot.photo_set][shot.photo], shot.tile),
                    shot.seed,
                    n / recipe.fps,
                    recipe.fps,
                    recipe.size,
                )
            else:
                clip = synth.procedural_shot(shot.seed, n / recipe.fps, recipe.fps, recipe.size)
            pieces.append(clip.frames[max(0, start_f - at) : end_f - at])
        at += n
    if not pieces:  # a filler of no length: a copy at the very start or end of its query
        return synth.Clip(np.zeros((0, *recipe.size, 3), dtype=np.uint8), recipe.fps)
    return synth.Clip(np.concatenate(pieces), recipe.fps)


def catalogue_shots(
    rng: np.random.Generator,
    duration_s: float,
    tiles: list[tuple[str, int, int]] | None = None,
    intro: int | None = None,
) -> tuple[Shot, ...]:
    """Version-3 shots up to ``duration_s`` (``vcopy.synth.shots.plan_shots``), framing one photo
    tile popped from ``tiles`` (when there is one) and two procedural pictures of their own;
    ``intro``: open with that shared intro."""
    pool: list[tuple[str, int, int]] = [tiles.pop()] if tiles else []
    pool += [("", -1, int(rng.integers(2**31))) for _ in range(2)]
    opening = [] if intro is None else [Shot(0, shots.INTRO_S[intro], -1, intro, kind="intro")]
    rest = max(0.0, duration_s - sum(o.duration_s for o in opening))
    planned = shots.plan_shots(rng, rest, len(pool)) if rest > 0.5 else []
    return (*opening, *(Shot(p.seed, p.duration_s, *_source(pool[p.picture]), kind=p.kind) for p in planned))


def _source(picture: tuple[str, int, int]) -> tuple[int, int, str]:
    """(photo, tile, photo set) of a pool entry (photo set, photo, tile)."""
    photo_set, photo, tile = picture
    return photo, tile, photo_set or "base"


def random_shots(
    rng: np.random.Generator, duration_s: float, tiles: list[tuple[str, int, int]] | None = None
) -> tuple[Shot, ...]:
    """Shots of 1.5-4 s up to ``duration_s``. Photo tiles are taken from ``tiles`` (popped: a tile
    used by one video is gone for every other, so no two videos share footage)."""
    shots, total = [], 0.0
    tiles = tiles if tiles is not None else []
    while total < duration_s - 0.5:
        seed = int(rng.integers(2**31))
        if tiles and rng.random() < 0.3:
            photo_set, photo, tile = tiles.pop()
            length = min(float(rng.uniform(3.0, 5.0)), duration_s - total)
            shots.append(Shot(seed, length, photo, tile, photo_set))
        else:
            length = min(float(rng.uniform(1.5, 4.0)), duration_s - total)
            shots.append(Shot(seed, length))
        total += length
    return tuple(shots)


def _edit_plan(rng: np.random.Generator, n: int, max_edits: int) -> list[tuple[edits.Edit, ...]]:
    """Every edit alone at every level first, then random pairs (or singles when ``max_edits`` is 1)."""
    singles = [(edits.Edit(name, level),) for level in range(3) for name in edits.ALL_EDITS]
    plan = [singles[i] for i in rng.permutation(len(singles))]
    while len(plan) < n:
        k = int(rng.integers(1, max_edits + 1))
        names = rng.choice(len(edits.ALL_EDITS), k, replace=False)
        plan.append(tuple(edits.Edit(edits.ALL_EDITS[i], int(rng.integers(3))) for i in names))
    return plan[:n]


def _ffmpeg_plan(rng: np.random.Generator, n: int, fraction: float) -> list[edits.Edit | None]:
    """An ffmpeg edit for about ``fraction`` of ``n`` queries: every kind at every level in turn."""
    kinds = [edits.Edit(f"ffmpeg_{name}", level) for level in range(3) for name in ffmpeg_edits.FILTERS]
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    chosen = rng.random(n) < fraction
    return [
        order[int(k) % len(order)] if c else None for k, c in zip(np.cumsum(chosen) - 1, chosen, strict=True)
    ]


def _plan_split(
    name: str, spec: SplitSpec, rng: np.random.Generator, tiles: list[tuple[str, int, int]]
) -> tuple[list[Recipe], list[QueryPlan]]:
    long_form = name == "long"
    refs = [
        Recipe(
            random_shots(
                rng, LONG_REF_S[i % len(LONG_REF_S)] if long_form else float(rng.uniform(*spec.ref_s)), tiles
            ),
            spec.fps,
            spec.size,
        )
        for i in range(spec.n_refs)
    ]
    queries = []
    ffmpeg_plan = _ffmpeg_plan(rng, spec.n_queries, spec.ffmpeg_fraction)
    for i, edit in enumerate(_edit_plan(rng, spec.n_queries, spec.max_edits)):
        kind = rng.choice(["single", "double", "negative"], p=[0.65, 0.15, 0.2]) if not long_form else "long"
        n_copies = {"single": 1, "double": 2, "negative": 0, "long": 1 + i % 3}[str(kind)]
        chosen: list[int] = list(rng.choice(len(refs), n_copies, replace=False)) if n_copies else []
        copies = []
        for r in chosen:
            length = float(rng.uniform(*spec.copy_s))
            start = float(rng.uniform(0, refs[r].duration_s - length))
            speed = float(rng.choice(SPEEDS)) if not long_form else 1.0
            copies.append(CopyPlan(int(r), round(start, 1), round(start + length, 1), speed))
        if long_form:
            target = LONG_QUERY_S[i % len(LONG_QUERY_S)]
            copied = sum((c.reference_end_s - c.reference_start_s) / c.speed for c in copies)
            filler_lengths = np.maximum(
                rng.dirichlet(np.ones(n_copies + 1)) * max(10.0, target - copied), 1.0
            )
        else:
            filler_lengths = rng.uniform(*spec.filler_s, n_copies + 1)
            if n_copies == 0:
                filler_lengths = rng.uniform(spec.copy_s[0] * 2, spec.copy_s[1] * 2, 1)
        fillers = tuple(Recipe(random_shots(rng, float(f)), spec.fps, spec.size) for f in filler_lengths)
        queries.append(
            QueryPlan(
                f"{name}/queries/q{i:04d}.mp4",
                fillers,
                tuple(copies),
                edit,
                int(rng.integers(2**31)),
                ffmpeg_plan[i],
            )
        )
    return refs, queries


QUERY_KINDS = {"single": 0.4, "several": 0.2, "whole": 0.1, "negative": 0.15, "intro": 0.15}


def _plan_catalogue_split(
    name: str, spec: SplitSpec, rng: np.random.Generator, tiles: list[tuple[str, int, int]]
) -> tuple[list[Recipe], list[QueryPlan]]:
    """Version 3: references of catalogue-like shots, a third opening with one of the shared
    intros; queries copying 1-3 segments (log-uniform lengths) anywhere, the whole reference, or
    nothing (some of these open with a shared intro: a hard negative)."""
    long_form = name == "long"

    def intro() -> int | None:
        return int(rng.integers(len(shots.INTRO_S))) if rng.random() < 0.35 else None

    refs = [
        Recipe(
            catalogue_shots(rng, float(np.exp(rng.uniform(*np.log(spec.ref_s)))), tiles, intro()),
            spec.fps,
            spec.size,
        )
        for _ in range(spec.n_refs)
    ]
    kinds, shares = list(QUERY_KINDS), np.array(list(QUERY_KINDS.values()))
    queries = []
    ffmpeg_plan = _ffmpeg_plan(rng, spec.n_queries, spec.ffmpeg_fraction)
    for i, edit in enumerate(_edit_plan(rng, spec.n_queries, spec.max_edits)):
        kind = str(rng.choice(kinds, p=shares))
        n_copies = {"single": 1, "several": int(rng.integers(2, 4)), "whole": 1}.get(kind, 0)
        copies = []
        for r in rng.choice(len(refs), n_copies, replace=n_copies > len(refs)):
            duration = refs[r].duration_s
            if kind == "whole":
                start, end = 0.0, duration
            else:
                length = min(float(np.exp(rng.uniform(*np.log(spec.copy_s)))), duration)
                start = float(rng.uniform(0, duration - length))
                end = start + length
            speed = float(rng.choice(SPEEDS)) if not long_form else 1.0
            copies.append(CopyPlan(int(r), round(start, 1), round(min(end, duration), 1), speed))
        lengths = rng.uniform(*spec.filler_s, n_copies + 1)
        if n_copies:
            lengths[0] *= rng.random() < 0.7  # 3 in 10 copies open their query
            lengths[-1] *= rng.random() < 0.7  # and 3 in 10 close it
        opening = (
            [int(rng.integers(len(shots.INTRO_S)))] + [None] * n_copies
            if kind == "intro"
            else [None] * (n_copies + 1)
        )
        fillers = tuple(
            Recipe(catalogue_shots(rng, float(f), None, o), spec.fps, spec.size)
            for f, o in zip(lengths, opening, strict=True)
        )
        seed = int(rng.integers(2**31))
        queries.append(
            QueryPlan(f"{name}/queries/q{i:04d}.mp4", fillers, tuple(copies), edit, seed, ffmpeg_plan[i])
        )
    return refs, queries


def dominant_kind(recipe: Recipe, start_s: float, end_s: float) -> str:
    """The kind of shot that fills most of ``recipe`` between ``start_s`` and ``end_s`` (a
    version-2 shot is a "pan" over a photo or a procedural "scene")."""
    seconds: dict[str, float] = {}
    at = 0.0
    for shot in recipe.shots:
        length = round(shot.duration_s * recipe.fps) / recipe.fps
        kind = shot.kind or ("pan" if shot.photo >= 0 else "scene")
        seconds[kind] = seconds.get(kind, 0.0) + max(0.0, min(end_s, at + length) - max(start_s, at))
        at += length
    return max(seconds, key=lambda k: seconds[k])


def shot_profile(recipes: list[Recipe]) -> dict[str, float]:
    """Median shot length (s) and the share of static shots (held pictures, talking heads, slides)
    of a split's references."""
    lengths = [s.duration_s for r in recipes for s in r.shots]
    static = [s.kind in shots.STATIC_KINDS for r in recipes for s in r.shots]
    return {
        "median_shot_s": round(float(np.median(lengths)), 2),
        "static_shot_share": round(float(np.mean(static)), 3),
    }


def _write_reference(job: tuple[Path, Recipe]) -> None:
    path, recipe = job
    synth.write_video(path, render(recipe), crf=20)


def _write_query(job: tuple[Path, QueryPlan, list[Recipe]]) -> list[dict[str, object]]:
    """Render, edit and encode one query; returns its copies' ground truth (reference = index)."""
    path, plan, refs = job
    rng = np.random.default_rng(plan.seed)
    names = {e.name: e.level for e in plan.edits}
    pieces: list[synth.Clip] = [render(plan.fillers[0])]
    spans = []
    for copy, filler in zip(plan.copies, plan.fillers[1:], strict=True):
        ref = refs[copy.reference]
        clip = edits.change_speed(render(ref, copy.reference_start_s, copy.reference_end_s), copy.speed)
        if "pip" in names:
            background = render(Recipe(random_shots(rng, clip.duration_s + 1), ref.fps, ref.size))
            clip = edits.picture_in_picture(clip, names["pip"], rng, background)
        start = sum(len(p.frames) for p in pieces)
        spans.append((start, start + len(clip.frames)))
        pieces += [clip, render(filler)]
    video = synth.concat(pieces)
    fps = video.fps
    for edit in plan.edits:
        if edit.name in edits.CLIP_EDITS:
            video = edits.CLIP_EDITS[edit.name](video, edit.level, rng)
    if "frame_rate" in names:
        video = edits.resample_fps(video, edits.frame_rate(names["frame_rate"]))
    encoding: dict[str, object] = {"crf": 23}
    if "reencode" in names:
        encoding = edits.reencode_settings(names["reencode"])
    if plan.ffmpeg_edit is None:
        synth.write_video(path, video, **encoding)  # type: ignore[arg-type]
    else:
        first = path.with_name(f".{path.stem}-pyav{path.suffix}")
        synth.write_video(first, video, **encoding)  # type: ignore[arg-type]
        name = plan.ffmpeg_edit.name.removeprefix("ffmpeg_")
        ffmpeg_edits.apply(first, path, name, plan.ffmpeg_edit.level, video.frames.shape[1:3])
        first.unlink()
    labels = plan.labels
    return [
        {
            "shot": dominant_kind(refs[c.reference], c.reference_start_s, c.reference_end_s),
            "reference": c.reference,
            "query_start": round(a / fps, 3),
            "query_end": round(b / fps, 3),
            "reference_start": c.reference_start_s,
            "reference_end": c.reference_end_s,
            "speed": c.speed,
            "transforms": labels,
        }
        for c, (a, b) in zip(plan.copies, spans, strict=True)
    ]


def _same_dataset(recorded: object, size: str, seed: int) -> bool:
    """Whether a dataset's recorded parameters are those of ``size`` and ``seed`` from this generator
    version (the vcopy version that made it does not matter)."""
    keys = ("size", "seed", "generator_version")
    wanted = _parameters(size, seed)
    return isinstance(recorded, dict) and all(recorded.get(k) == wanted[k] for k in keys)


def _parameters(size: str, seed: int) -> dict[str, object]:
    version = CATALOGUE_VERSION if size == "catalogue" else GENERATOR_VERSION
    return {"size": size, "seed": seed, "generator_version": version, "vcopy_version": __version__}


def generate(out_dir: Path, size: str = "default", seed: int = 0, workers: int | None = None) -> Path:
    """Write the benchmark under ``out_dir`` and return the ground-truth path. An existing benchmark
    made with the same size, seed and vcopy version is reused."""
    out_dir = Path(out_dir)
    gt_path = out_dir / GROUND_TRUTH
    if gt_path.is_file() and _same_dataset(json.loads(gt_path.read_text()).get("generator"), size, seed):
        return gt_path
    rng = np.random.default_rng(seed)
    tiles = {}
    for photo_set in PHOTO_SETS:
        grid = CATALOGUE_GRID if size == "catalogue" else _TILE_GRID
        n_tiles = grid[0] * grid[1]
        found = [(photo_set, p, t) for p in range(len(photos(photo_set))) for t in range(n_tiles)]
        tiles[photo_set] = [found[i] for i in rng.permutation(len(found))]
    plans = {
        name: (_plan_catalogue_split if spec.catalogue else _plan_split)(
            name, spec, rng, tiles[spec.photo_set]
        )
        for name, spec in SIZES[size].splits.items()
    }

    ref_jobs = [
        (out_dir / f"{name}/refs/r{i:04d}.mp4", recipe)
        for name, (refs, _) in plans.items()
        for i, recipe in enumerate(refs)
    ]
    query_jobs = [(out_dir / q.path, q, refs) for refs, queries in plans.values() for q in queries]
    workers = workers or os.cpu_count() or 1
    try:
        # workers die with this process, however it dies (a killed generator leaves no renderers)
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            list(pool.map(_write_reference, ref_jobs))
            truths = list(pool.map(_write_query, query_jobs, chunksize=4))
    except BrokenProcessPool:  # most often: a script without a main guard, re-imported by each worker
        raise VcopyError(
            "the benchmark's worker processes died; in a script, call generate() under "
            '`if __name__ == "__main__":` (each worker imports the script again)'
        ) from None

    def entry(path: Path, split: str) -> dict[str, object]:
        return {
            "path": path.relative_to(out_dir).as_posix(),
            "sha256": sha256_file(path),
            "split": split,
        }

    references = [entry(path, path.parts[-3]) for path, _ in ref_jobs]
    for ref, (_, recipe) in zip(references, ref_jobs, strict=True):
        ref["duration"] = recipe.duration_s
    queries = []
    for (path, plan, _), copies in zip(query_jobs, truths, strict=True):
        split = path.parts[-3]
        q = entry(path, split)
        q["transforms"] = plan.labels
        q["copies"] = [
            asdict(Copy(**{**c, "reference": f"{split}/refs/r{c['reference']:04d}.mp4"}))  # type: ignore[arg-type]
            for c in copies
        ]
        queries.append(q)
    profiles = {name: shot_profile(refs) for name, (refs, _) in plans.items()}
    ground_truth = {
        "schema": SCHEMA,
        "generator": {**_parameters(size, seed), "shot_profiles": profiles},
        "references": references,
        "queries": queries,
    }
    write_atomically(gt_path, json.dumps(ground_truth, indent=1).encode())
    return gt_path


def copied_frame_pairs(
    copy: dict[str, float], query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
) -> list[tuple[int, int]]:
    """(query frame, reference frame) index pairs showing the same moment of a ground-truth copy:
    query frames inside the copied segment (half a second from its ends) and the reference frame
    nearest to where they map, when one lies within half a second."""
    pairs = []
    for i, t in enumerate(query_timestamps_s):
        if copy["query_start"] + 0.5 <= t <= copy["query_end"] - 0.5:
            t_ref = copy["reference_start"] + (t - copy["query_start"]) * copy["speed"]
            j = int(np.argmin(np.abs(reference_timestamps_s - t_ref)))
            if abs(reference_timestamps_s[j] - t_ref) <= 0.5:
                pairs.append((i, j))
    return pairs
