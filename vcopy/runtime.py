"""ONNX Runtime sessions, as every model vcopy runs at index and query time is run."""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, cast

from vcopy.errors import VcopyError

ONNX_OPSET = 17


def cpu_threads() -> int:
    """Threads a model may use here: ``OMP_NUM_THREADS`` where it is set (Ray sets it to a worker's
    CPUs), else every core."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, os.cpu_count() or 1)


def onnx_session(model: Path | bytes, device: str = "cpu", threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` (a file or its bytes) on ``device`` (``cpu``
    or ``cuda[:N]``, which needs onnxruntime-gpu), quiet, with ``threads`` (default: ``cpu_threads``)."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise VcopyError(
                f"device {device}: this ONNX Runtime has no CUDA support (pip install onnxruntime-gpu)"
            )
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or cpu_threads()
    options.log_severity_level = 3
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), options, providers=providers
    )


def onnx_export(
    model: Any,
    example: Any,
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
    metadata: dict[str, Any],
) -> bytes:
    """A torch ``model`` as ONNX bytes (opset ``ONNX_OPSET``), traced on ``example``: named
    ``inputs`` and ``outputs`` with their free axes, ``metadata`` (key -> JSON value) in the file."""
    import onnx
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            cast(Any, buffer),  # a file object works; the stubs name paths only
            input_names=list(inputs),
            output_names=list(outputs),
            dynamic_axes={**inputs, **outputs},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return cast(bytes, proto.SerializeToString())
