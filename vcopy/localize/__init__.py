"""Localizers: find copied segments on a similarity map. Chosen by name from ``LOCALIZERS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path

from vcopy.localize.base import Localizer, Segment
from vcopy.localize.dp import DynamicProgramming
from vcopy.localize.dtw import DynamicTimeWarping
from vcopy.localize.hv import HoughVoting
from vcopy.localize.spd import SimilarityPatternDetector
from vcopy.localize.tn import TemporalNetwork

LOCALIZERS: dict[str, Callable[[], Localizer]] = {
    "spd": SimilarityPatternDetector,
    "tn": TemporalNetwork,
    "dp": DynamicProgramming,
    "hv": HoughVoting,
    "dtw": DynamicTimeWarping,
}
DEFAULT_LOCALIZER = "spd"


def create_localizer(name: str, spd_weights: Path | None = None) -> Localizer:
    """Build a localizer by its registry name (SPD with ``spd_weights`` when given)."""
    if name not in LOCALIZERS:
        raise ValueError(f"unknown localizer {name!r}; choose from {', '.join(sorted(LOCALIZERS))}")
    if name == "spd" and spd_weights is not None:
        return SimilarityPatternDetector(weights_path=Path(spd_weights))
    return LOCALIZERS[name]()


def localizer_settings(localizer: Localizer) -> dict[str, object]:
    """A localizer's settings, for the report."""
    settings = getattr(localizer, "settings", None)
    if isinstance(settings, dict):
        return settings
    return asdict(localizer) if is_dataclass(localizer) and not isinstance(localizer, type) else {}


__all__ = [
    "DEFAULT_LOCALIZER",
    "LOCALIZERS",
    "Localizer",
    "Segment",
    "create_localizer",
    "localizer_settings",
]
