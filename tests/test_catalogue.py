"""Copies that real catalogues hold: held (static) shots re-uploaded with simple edits, and a short
copy inside a long upload. Real videos, real SSCD, the shipped SPD, default settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from vcopy import synth
from vcopy.features import create_descriptor
from vcopy.indexing import index_videos
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.query import CopyFinder, QueryConfig, QueryResult
from vcopy.synth import edits
from vcopy.synth.benchmark import Recipe, random_shots, render
from vcopy.video import SamplingConfig

pytestmark = pytest.mark.slow
HELD_S = (8.0, 18.0)  # the held shot in the reference
HELD_QUERY_S = (5.0, 15.0)  # where its copies sit in each query


def held_shot(image: np.ndarray, seconds: float, fps: float, seed: int) -> synth.Clip:
    """A photo held still for ``seconds``, with sensor noise in every frame."""
    rng = np.random.default_rng(seed)
    still = synth.photo_pan(image, seed, 1 / fps, fps).frames[0].astype(np.float32)
    noisy = still[None] + rng.normal(0, 2.0, (round(seconds * fps), *still.shape))
    return synth.Clip(np.clip(noisy, 0, 255).astype(np.uint8), fps)


def _library(root: Path, references: list[Path]) -> Path:
    descriptor = create_descriptor("sscd_distilled")
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    with Library.open(root, write=True, spec=PipelineSpec.of(descriptor, sampling)) as library:
        index_videos(library, references, descriptor)
    return root


def _query(library: Path, paths: list[Path]) -> list[QueryResult]:
    with Library.open(library) as opened:
        finder = CopyFinder(opened, config=QueryConfig())
        return list(finder.query_many(paths))


def _ends_within(result: QueryResult, reference: str, truth: tuple[float, ...], tolerance_s: float) -> bool:
    found = [m for m in result.matches if Path(m.reference.path).name == reference]
    if not found:
        return False
    s = found[0].segments[0]
    ends = (s.query_start_s, s.query_end_s, s.reference_start_s, s.reference_end_s)
    return all(abs(a - b) <= tolerance_s for a, b in zip(ends, truth, strict=True))


def test_a_held_shot_copied_grey_letterboxed_or_blurred_is_found_with_its_ends(tmp_path: Path) -> None:
    """The copy is a block on the map, which vcopy 0.3's SPD scored 0.14-0.26 (not a match)."""
    fps = 10.0
    china, flower = load_sample_images().images
    held = held_shot(china, HELD_S[1] - HELD_S[0], fps, 0)
    reference = synth.concat(
        [synth.procedural_video(1, HELD_S[0], fps), held, synth.procedural_video(2, 8, fps)]
    )
    elsewhere = [
        synth.procedural_video(3, 6, fps),
        held_shot(flower, 8, fps, 1),
        synth.procedural_video(4, 6, fps),
    ]
    others = [synth.concat(elsewhere), synth.procedural_video(5, 20, fps)]
    refs = [
        synth.write_video(tmp_path / "refs" / f"r{i}.mp4", c, crf=20)
        for i, c in enumerate([reference, *others])
    ]
    rng = np.random.default_rng(0)
    copied = reference.cut(*HELD_S)
    queries = []
    for name, edit in [("grey", edits.grayscale), ("letterbox", edits.border), ("blur", edits.blur)]:
        around = synth.procedural_video(7, HELD_QUERY_S[0], fps), synth.procedural_video(8, 5, fps)
        clip = synth.concat([around[0], edit(copied, 1, rng), around[1]])
        queries.append(synth.write_video(tmp_path / "suspects" / f"{name}.mp4", clip, crf=28))
    results = _query(_library(tmp_path / "library", refs), queries)
    for result in results:
        assert _ends_within(result, "r0.mp4", (*HELD_QUERY_S, *HELD_S), 2.0), (result.path.name, result)
        assert [Path(m.reference.path).name for m in result.matches] == ["r0.mp4"], result.path.name


def test_a_30_s_copy_inside_a_10_minute_upload_is_found(tmp_path: Path) -> None:
    """Drawn whole, the copy is a sliver 6 pixels wide whose box ends 7 s early; drawn in windows
    at the frames per pixel of the reference axis it is a square."""
    fps, size = 2.0, (120, 160)
    rng = np.random.default_rng(3)
    recipes = [
        Recipe(random_shots(rng, 30.0 if i == 0 else float(rng.uniform(20, 60))), fps, size) for i in range(4)
    ]
    refs = [
        synth.write_video(tmp_path / "refs" / f"r{i}.mp4", render(r), crf=20) for i, r in enumerate(recipes)
    ]
    before = Recipe(random_shots(rng, 285.0), fps, size)
    after = Recipe(random_shots(rng, 285.0), fps, size)
    copied = edits.brightness(synth.crop(render(recipes[0]), 0.8), 1, rng)  # cropped, brightened
    upload = synth.concat([render(before), copied, render(after)])
    query = synth.write_video(tmp_path / "upload.mp4", upload, crf=30)
    (result,) = _query(_library(tmp_path / "library", refs), [query])
    start = before.duration_s
    assert _ends_within(result, "r0.mp4", (start, start + 30.0, 0.0, 30.0), 2.0), result


def test_the_catalogue_generator_holds_long_static_shots_and_copies_anywhere() -> None:
    from collections import Counter

    from vcopy.synth.benchmark import SIZES, _plan_catalogue_split, dominant_kind, shot_profile

    rng = np.random.default_rng(0)
    tiles = [("held_out", p, t) for p in range(14) for t in range(12)]
    refs, queries = _plan_catalogue_split("test", SIZES["catalogue"].splits["test"], rng, tiles)
    profile = shot_profile(refs)
    assert 3.5 <= profile["median_shot_s"] <= 6.0 and profile["static_shot_share"] >= 0.3
    lengths = [s.duration_s for r in refs for s in r.shots]
    assert max(lengths) > 40  # a heavy tail: some shots are held for most of a minute or more
    framed = [{(s.photo, s.tile) for s in r.shots if s.photo >= 0} for r in refs]
    assert sum(len(f) for f in framed) == len(set().union(*framed)) >= 0.8 * len(refs)  # none shared
    assert sum(s.kind == "intro" for r in refs for s in r.shots) >= 5  # shared openings
    copies = [(q, c) for q in queries for c in q.copies]
    assert Counter(len(q.copies) for q in queries).keys() >= {0, 1, 2, 3}
    assert any(
        c.reference_start_s == 0 and c.reference_end_s == refs[c.reference].duration_s for _, c in copies
    )
    assert any(q.fillers[0].duration_s == 0 for q, _ in copies)  # a copy that opens its query
    kinds = Counter(
        dominant_kind(refs[c.reference], c.reference_start_s, c.reference_end_s) for _, c in copies
    )
    assert {"static", "zoom", "talking", "slide", "pan", "montage"} <= kinds.keys()
