"""ONNX Runtime sessions, as every model vcopy runs at index and query time is run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vcopy.errors import VcopyError


def onnx_session(model: Path | bytes, device: str = "cpu", threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` (a file or its bytes) on ``device`` (``cpu``
    or ``cuda[:N]``, which needs onnxruntime-gpu), quiet, with ``threads`` (default: every core)."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VcopyError(
                f"device {device}: this ONNX Runtime has no CUDA support (pip install onnxruntime-gpu)"
            )
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or max(1, os.cpu_count() or 1)
    options.log_severity_level = 3
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), options, providers=providers
    )
