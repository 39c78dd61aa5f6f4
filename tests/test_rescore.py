"""The pair re-scorer: its features, its fit, its file, and the shipped one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vcopy.errors import VcopyError
from vcopy.localize import Segment
from vcopy.localize.rescore import (
    FEATURES,
    MAX_RANK,
    PairRescorer,
    best_diagonal_run,
    fit_rescorer,
    pair_features,
    shipped_rescorer,
)
from vcopy.localize.spd import shipped_weights_path
from vcopy.video import sha256_file


def test_features_of_one_querys_candidates() -> None:
    copied = np.full((4, 6), -0.1, dtype=np.float32)
    copied[[0, 1, 2, 3], [1, 2, 3, 4]] = [0.6, 0.7, 0.8, 0.5]
    unrelated = np.full((4, 3), 0.1, dtype=np.float32)
    boxed = [Segment(0, 4, 1, 5, 0.4), Segment(0, 1, 0, 1, 0.2)]
    rows = pair_features([copied, unrelated], [boxed, []])
    named = [dict(zip(FEATURES, r, strict=True)) for r in rows]
    assert named[0]["spd_score"] == pytest.approx(0.4) and named[1]["spd_score"] == 0.0
    assert [n["has_box"] for n in named] == [1, 0]
    assert named[0]["mean_row_max"] == pytest.approx(0.65) and named[1]["mean_row_max"] == pytest.approx(0.1)
    assert named[0]["margin"] == pytest.approx(0.55) and named[1]["margin"] == pytest.approx(-0.55)
    assert [n["rank"] for n in named] == [0, 1]
    assert named[0]["max_contrast"] == pytest.approx(0.8)
    assert named[0]["median_row_max"] == pytest.approx(0.65)
    many = pair_features([unrelated] * 8, [[]] * 8)
    assert many[:, FEATURES.index("rank")].max() == MAX_RANK
    assert pair_features([copied], [boxed])[0, FEATURES.index("margin")] == pytest.approx(0.65)


def _rescorer(weights: np.ndarray, threshold: float = 0.5) -> PairRescorer:
    n = len(FEATURES)
    return PairRescorer(np.zeros(n), np.ones(n), weights, 0.0, threshold, "0" * 64, "a test")


def test_the_fit_learns_which_feature_separates_copies() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.3).astype(float)
    features = rng.normal(size=(400, len(FEATURES)))
    features[:, 1] += 2.0 * labels  # the margin tells copies apart, nothing else does
    mean, scale, weights, bias = fit_rescorer(features, labels)
    assert np.argmax(np.abs(weights)) == 1 and weights[1] > 0
    z = (features - mean) / scale
    p = 1 / (1 + np.exp(-(z @ weights + bias)))
    assert p[labels == 1].mean() > 0.6 > 0.2 > p[labels == 0].mean()


def test_rescoring_gives_the_best_segment_the_pair_score_and_keeps_boxes() -> None:
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("margin")] = 10.0
    times = np.arange(3, dtype=np.float64)
    flat = np.zeros((3, 3), dtype=np.float32)
    strong = flat + np.eye(3, dtype=np.float32)
    found = [[Segment(0, 1, 0, 1, 0.1), Segment(2, 3, 2, 3, 0.05)], [Segment(0, 3, 0, 3, 0.9)]]
    rescored = _rescorer(weights).rescore([(strong, times, times), (flat, times, times)], found)
    assert rescored[0][0].score > 0.99 and rescored[0][1].score == pytest.approx(rescored[0][0].score / 2)
    assert rescored[1][0].score < 0.01  # SPD's strong box on a map the other candidate beats
    assert [replace(s, score=0) for s in rescored[0]] == [replace(s, score=0) for s in found[0]]


def test_a_map_without_a_box_is_scored_on_its_best_diagonal_run() -> None:
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("margin")] = 10.0
    times = np.arange(20, dtype=np.float64)
    copied = np.full((20, 20), -0.1, dtype=np.float32)
    copied[np.arange(5, 15), np.arange(2, 12)] = 0.6  # a band SPD did not box
    unrelated = np.full((20, 20), -0.1, dtype=np.float32)
    rescored = _rescorer(weights).rescore([(copied, times, times), (unrelated, times, times)], [[], []])
    [path] = rescored[0]
    assert (path.query_start_s, path.query_end_s) == pytest.approx((5, 15), abs=1)
    assert (path.reference_start_s, path.reference_end_s) == pytest.approx((2, 12), abs=1)
    assert path.score > 0.9 and rescored[1] == []  # no run at all on the unrelated map
    # a long upload's map (more query frames than reference frames) gives the same run, transposed
    [tall] = best_diagonal_run(copied[:, 2:14], times, times[:12])
    assert (tall.query_start_s, tall.query_end_s) == pytest.approx((5, 15), abs=1)
    assert (tall.reference_start_s, tall.reference_end_s) == pytest.approx((0, 10), abs=1)


def test_a_damaged_rescorer_file_is_one_line_naming_it(tmp_path: Path) -> None:
    good = _rescorer(np.ones(len(FEATURES)))
    path = tmp_path / "rescorer.json"
    good.save(path)
    assert PairRescorer.load(path).record() == good.record()
    damages: list[dict[str, object]] = [
        {"format": "other/1"},
        {"features": ["spd_score"]},
        {"scale": [0.0] * len(FEATURES)},
        {"weights": [1.0]},
        {"match_threshold": 3},
    ]
    for damage in damages:
        path.write_text(json.dumps({**good.record(), **damage}))
        with pytest.raises(VcopyError, match=r"rescorer\.json: not a vcopy re-scorer") as info:
            PairRescorer.load(path)
        assert "\n" not in str(info.value)
    with pytest.raises(VcopyError, match=r"missing\.json: cannot read"):
        PairRescorer.load(tmp_path / "missing.json")


def test_the_shipped_rescorer_was_fitted_for_the_shipped_spd() -> None:
    rescorer = shipped_rescorer(sha256_file(shipped_weights_path()))
    assert rescorer is not None, "refit it (examples/fit_rescorer.py) after retraining SPD"
    assert 0 < rescorer.match_threshold < 1
    assert shipped_rescorer("f" * 64) is None  # other SPD weights: not re-scored
