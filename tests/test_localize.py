"""Every localizer, on contrast maps with a known copied band.

The synthetic maps imitate EfficientNet-Lite0 maps (a band near contrast 0.6 over a background near
-0.1), so SPD runs with the weights trained on those; SPD on SSCD maps is tested end to end on real
videos (test_cli.py). Only segments at or above a localizer's match threshold count as found."""

from __future__ import annotations

import numpy as np
import pytest

from vcopy.localize import LOCALIZERS, Segment, create_localizer
from vcopy.localize.base import boundary_ranges

SYNTHETIC_MAPS_DESCRIPTOR = "efficientnet_lite0"


def _matches(name: str, sim: np.ndarray) -> list[Segment]:
    localizer = create_localizer(name, descriptor=SYNTHETIC_MAPS_DESCRIPTOR)
    found = localizer(sim, np.arange(float(sim.shape[0])), np.arange(float(sim.shape[1])))
    return [s for s in found if s.score >= localizer.match_threshold]


def _map(n_query: int, n_ref: int, q0: int, r0: int, length: int, speed: float, seed: int = 0) -> np.ndarray:
    """Background contrast around -0.1 and a band from (q0, r0) over ``length`` query frames; as on
    real maps, the frames next to a copied frame (same shot) are similar too, less so."""
    rng = np.random.default_rng(seed)
    sim = rng.normal(-0.1, 0.08, (n_query, n_ref)).astype(np.float32)
    for t in range(length):
        r = r0 + round(t * speed)
        sim[q0 + t, r - 1 : r + 2] = np.maximum(sim[q0 + t, r - 1 : r + 2], 0.3)
        sim[q0 + t, r] = 0.6 + rng.normal(0, 0.05)
    return sim


@pytest.mark.parametrize("name", sorted(LOCALIZERS))
@pytest.mark.parametrize("speed", [1.0, 2.0])
def test_finds_the_band(name: str, speed: float) -> None:
    if name == "hv" and speed != 1.0:
        pytest.skip("Hough voting assumes unchanged speed")
    sim = _map(60, 120, q0=10, r0=30, length=20, speed=speed)
    segments = _matches(name, sim)
    assert segments, name
    best = segments[0]
    r_end = 30 + round(19 * speed)
    assert best.query_start_s == pytest.approx(9.5, abs=1.01)
    assert best.query_end_s == pytest.approx(29.5, abs=1.01)
    assert best.reference_start_s == pytest.approx(29.5, abs=1.01)
    assert best.reference_end_s == pytest.approx(r_end + 0.5, abs=1.01)


@pytest.mark.parametrize("name", sorted(LOCALIZERS))
def test_noise_alone_gives_nothing(name: str) -> None:
    sim = np.random.default_rng(1).normal(-0.1, 0.08, (50, 80)).astype(np.float32)
    assert _matches(name, sim) == []


@pytest.mark.parametrize("name", sorted(LOCALIZERS))
def test_two_copies(name: str) -> None:
    sim = np.maximum(_map(80, 100, 5, 10, 15, 1.0), _map(80, 100, 50, 70, 15, 1.0, seed=2))
    segments = _matches(name, sim)
    starts = sorted(round(s.query_start_s) for s in segments)
    assert len(segments) == 2 and starts[0] in (4, 5) and starts[1] in (49, 50), segments


def test_boundary_ranges_widen_only_where_the_map_is_flat() -> None:
    times = np.arange(40, dtype=np.float64)
    diagonal = np.full((40, 40), -0.1)
    for i in range(10, 30):
        diagonal[i, i + 5] = 0.8  # a clean copy: query 10-29 s = reference 15-34 s
    segment = Segment(9.5, 29.5, 14.5, 34.5, 0.9)
    clean = boundary_ranges(diagonal, times, times, segment, tie=0.1, margin_steps=1.0)
    assert clean.query_start_s == (8.5, 10.5) and clean.reference_end_s == (33.5, 35.5)  # one step
    panned = diagonal.copy()
    panned[10, 15:25] = 0.78  # the first query frame matches a whole shot equally well
    wide = boundary_ranges(panned, times, times, segment, tie=0.1, margin_steps=1.0)
    assert wide.reference_start_s == (13.5, 24.5)  # the reference start is unsure by the shot
    assert wide.query_start_s == clean.query_start_s and wide.query_end_s == clean.query_end_s
