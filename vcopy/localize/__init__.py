"""Localizers: find copied segments on a similarity map. Chosen by name from ``LOCALIZERS``."""

from __future__ import annotations

import importlib
from pathlib import Path

from vcopy.features import descriptor_kind
from vcopy.localize.base import Localizer, Segment

# name -> "module:class"; a localizer's module (numba, torch) is imported only when it is built, so
# that the CLI can check a name before any heavy import
LOCALIZERS: dict[str, str] = {
    "spd": "vcopy.localize.spd:SimilarityPatternDetector",
    "tn": "vcopy.localize.tn:TemporalNetwork",
    "dp": "vcopy.localize.dp:DynamicProgramming",
    "hv": "vcopy.localize.hv:HoughVoting",
    "dtw": "vcopy.localize.dtw:DynamicTimeWarping",
}
DEFAULT_LOCALIZER = "spd"
# the baselines' match thresholds on maps of each descriptor (the best train video F1, floors 0);
# SPD's come with its weights. SSCD's are fitted on the train split of the catalogue benchmark
# (generator version 3, `examples/benchmark.py --catalogue --calibrate`, 2026-12-03): held shots,
# slides and black frames give unrelated pairs strong paths there, as real footage does; fitted on
# version 2's train split (0.12-0.15) they report such coincidences as copies (docs/benchmarks.md)
MATCH_THRESHOLDS: dict[str, dict[str, float]] = {
    "sscd_distilled": {"tn": 0.589, "dp": 0.385, "hv": 0.521, "dtw": 0.36},
    "efficientnet_lite0": {},
}
# the baselines' floors (mean contrast below which nothing is reported) on maps of each descriptor:
# on SSCD's maps a copy's mean contrast is often below the 0.3 set for EfficientNet's, so the
# floor is 0 there and every pair a path runs through is ranked (the match threshold decides)
FLOORS: dict[str, dict[str, float]] = {
    "sscd_distilled": {"tn": 0.0, "dp": 0.0, "hv": 0.0, "dtw": 0.0},
}


def create_localizer(name: str, spd_weights: Path | None = None, descriptor: str | None = None) -> Localizer:
    """Build a localizer by its registry name; SPD with ``spd_weights`` when given, else with the
    shipped weights for maps of ``descriptor``."""
    if name not in LOCALIZERS:
        raise ValueError(f"unknown localizer {name!r}; choose from {', '.join(sorted(LOCALIZERS))}")
    module, _, class_name = LOCALIZERS[name].partition(":")
    factory = getattr(importlib.import_module(module), class_name)
    if name == "spd":
        from vcopy.localize.spd import shipped_weights_path

        return factory(weights_path=Path(spd_weights) if spd_weights else shipped_weights_path(descriptor))
    kind = descriptor_kind(descriptor) if descriptor else None
    options = {
        option: table[kind][name]
        for option, table in (("match_threshold", MATCH_THRESHOLDS), ("min_score", FLOORS))
        if kind in table and name in table[kind]
    }
    return factory(**options)


__all__ = [
    "DEFAULT_LOCALIZER",
    "LOCALIZERS",
    "Localizer",
    "Segment",
    "create_localizer",
]
