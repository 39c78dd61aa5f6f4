"""Localizers: find copied segments on a similarity map. Chosen by name from ``LOCALIZERS``."""

from __future__ import annotations

from collections.abc import Callable

from vcopy.localize.base import Localizer, Segment
from vcopy.localize.dp import DynamicProgramming
from vcopy.localize.dtw import DynamicTimeWarping
from vcopy.localize.hv import HoughVoting
from vcopy.localize.tn import TemporalNetwork

LOCALIZERS: dict[str, Callable[[], Localizer]] = {
    "tn": TemporalNetwork,
    "dp": DynamicProgramming,
    "hv": HoughVoting,
    "dtw": DynamicTimeWarping,
}
DEFAULT_LOCALIZER = "tn"


def create_localizer(name: str) -> Localizer:
    """Build a localizer by its registry name."""
    try:
        return LOCALIZERS[name]()
    except KeyError:
        raise ValueError(f"unknown localizer {name!r}; choose from {', '.join(sorted(LOCALIZERS))}") from None


__all__ = ["DEFAULT_LOCALIZER", "LOCALIZERS", "Localizer", "Segment", "create_localizer"]
