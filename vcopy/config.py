"""What ``vcopy query`` computes with: a plain dataclass without heavy imports, so that the CLI
makes its options from it (``vcopy.cli.query``) before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vcopy.features.views import DEFAULT_VIEWS
from vcopy.localize import DEFAULT_LOCALIZER


@dataclass(frozen=True)
class QueryConfig:
    """Settings of candidate retrieval and localization."""

    localizer: str = DEFAULT_LOCALIZER
    spd_weights: Path | None = None  # SPD weights file; None: the shipped ones
    knn: int = 64  # library frames retrieved per query frame
    background_rank: int = 30  # the background-set neighbour whose similarity is a frame's background
    candidates: int = 10  # library videos that get localized
    shortlist: int = 30  # videos the index proposes; their exact maps pick the candidates
    min_score: float | None = None  # a match scores at least this; None: the localizer's calibrated threshold
    views: tuple[str, ...] = DEFAULT_VIEWS  # query views (vcopy.features.views): a frame counts as its best
    stall_timeout_s: float = 120.0  # a decoder silent this long is killed
    rescore: bool = True  # score pairs with the shipped re-scorer where it was fitted for the SPD weights
    query_fps: float | None = None  # suspects' frames/s, a whole multiple of the library's; None: twice its
