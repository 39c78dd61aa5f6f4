"""What each trainer trains, and how: plain dataclasses without torch, so that the CLI makes its
options from them (``vcopy.cli.train``) before anything heavy is imported."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vcopy.features import DEFAULT_DESCRIPTOR
from vcopy.features.views import DEFAULT_VIEWS


@dataclass(frozen=True)
class MapMix:
    """The kinds of training map and how they are varied, as probabilities and sizes."""

    chain: float = 0.3  # maps with one long copy chained from several copies
    composite: float = 0.35  # maps composed of several videos on each axis (the rest: pairs)
    max_chain: int = 10  # copies chained into one
    max_composite_queries: int = 40  # up to about 1200 query frames: long-form sizes
    max_composite_references: int = 48
    faint: float = 0.3  # maps whose copies are faded towards the background
    pair_copied: float = 0.6  # a pair's reference is one the query copies ...
    pair_hard_negative: float = 0.8  # ... else, this often, a top candidate it does not copy
    pair_resampled: float = 0.3  # a pair's query played at another rate
    composite_resampled: float = 0.2  # each query of a composite played at another rate
    composite_has_copy: float = 0.8  # a composite holds a reference its queries copy
    repeated_reference: float = 0.15  # one reference twice on a composite's axis
    static_run: float = 0.3  # a run of one repeated frame inserted on an axis of a composite
    band_dropout: float = 0.3  # rows or columns lose their signal
    max_noise: float = 0.05  # standard deviation of the Gaussian noise, at most


@dataclass(frozen=True)
class DataSplit:
    """How the train split is read: which query views are encoded, which queries are held out."""

    views: tuple[str, ...]  # query views, as `vcopy query` uses them
    validation_fraction: float
    candidates: int  # references per held-out query that get a map, as in `vcopy query`
    seed: int


@dataclass(frozen=True)
class TrainConfig:
    """What ``vcopy train spd`` trains, and how."""

    input_size: int = 64  # detector input height (px)
    max_aspect: int = 2  # maps are drawn up to input_size x (input_size * max_aspect) pixels
    widths: tuple[int, int, int] = (8, 16, 32)  # channels at strides 4, 8 and 16
    epochs: int = 30
    steps_per_epoch: int = 100
    batch_size: int = 32
    learning_rate: float = 2e-3
    maps: MapMix = field(default_factory=MapMix)
    validation_fraction: float = 0.2
    candidates: int = 10  # references per held-out query that get a map, as in `vcopy query`
    seed: int = 0
    descriptor: str = DEFAULT_DESCRIPTOR  # registry name; the maps are of this descriptor
    views: tuple[str, ...] = DEFAULT_VIEWS  # query views, as `vcopy query` uses them
    device: str = "cpu"

    @property
    def split(self) -> DataSplit:
        """How the train split is read for this training."""
        return DataSplit(self.views, self.validation_fraction, self.candidates, self.seed)


@dataclass(frozen=True)
class CopyTrainConfig:
    """What ``vcopy train copy`` trains, and how (the maps and SPD's settings: ``spd``)."""

    spd: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=12))
    init_spd: Path | None = None  # SPD weights to start from; None: the shipped ones
    key_rate: float = 0.2  # target share of frames kept (uniform ones included)
    uniform_period: int = 10  # m_uniform: one frame in this many is always kept
    threshold: float = 0.5  # a frame this likely a key frame is kept
    budget_weight: float = 1.0
    key_learning_rate: float = 3e-3
    frozen_spd: bool = False  # train the key frames alone, against SPD's initial weights
    hidden: int = 48


@dataclass(frozen=True)
class TextTrainConfig:
    """What ``vcopy train text`` trains, and how."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    temporal: bool = False  # the video encoder's temporal transformer layer (else mean pooling only)
    text_head: bool = True  # learn a correction on top of the frozen text encoder
    layouts: bool = True  # the video encoder reads frame layouts and their changes (places, motions)
    temperature: float | None = None  # None: learned (starting at 0.05); else fixed
    caption_neighbour_batches: bool = False  # batch videos with others whose captions read alike
    validation_fraction: float = 0.2
    split_seed: int = 0  # which videos are held out (kept apart from ``seed`` so seeds share a split)
    max_frames: int = 64
    seed: int = 0
    descriptor: str = DEFAULT_DESCRIPTOR  # registry name of the library's frame descriptor
    device: str = "cpu"
