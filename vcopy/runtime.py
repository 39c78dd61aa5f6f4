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


MAX_MODEL_BYTES = 64 << 20  # a weights file of the user's (SPD, SKE, a text model): vcopy's are < 1 MB
BOUNDED_ARENA_BYTES = 256 << 20  # what such a model may allocate when it runs (the shipped SPD: ~40 MB)
_bounded_arena = False


def read_model_file(path: Path, what: str, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """A weights file's bytes, once it is known to be a regular file of at most ``max_bytes``
    (checked before anything is read: a sparse file of gigabytes costs nothing); a one-line
    VcopyError saying it is not ``what`` otherwise."""
    from vcopy.files import read_bounded

    try:
        return read_bounded(path, max_bytes)
    except OSError as exc:
        raise VcopyError(f"{path}: not {what} ({exc.strerror or exc})") from None


def onnx_session(
    model: Path | bytes, device: str = "cpu", threads: int | None = None, bounded: bool = False
) -> Any:
    """An ``onnxruntime.InferenceSession`` of ``model`` (a file or its bytes) on ``device`` (``cpu``
    or ``cuda[:N]``, which needs onnxruntime-gpu), quiet, with ``threads`` (default: ``cpu_threads``).

    ``bounded``, for weights a user may hand in (SPD, SKE): what the network allocates on the CPU
    comes from one arena of ``BOUNDED_ARENA_BYTES`` (a crafted graph that asks for gigabytes fails
    to run instead), and constants are not folded when the session is made (folding allocates
    outside any arena)."""
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
    extra: dict[str, Any] = {}
    if bounded:
        _register_bounded_arena(ort)
        options.add_session_config_entry("session.use_env_allocators", "1")
        options.log_severity_level = 4  # a refused allocation is the caller's one-line error
        extra["disabled_optimizers"] = ["ConstantFolding"]
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), options, providers=providers, **extra
    )


def run_failure(exc: BaseException) -> str:
    """Why a network did not run, in a few words (ONNX Runtime's messages carry source paths)."""
    if "Available memory of" in str(exc):
        return f"it asks for more than the {BOUNDED_ARENA_BYTES >> 20} MiB a network may use"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][-120:]}" if str(exc) else type(exc).__name__


def _register_bounded_arena(ort: Any) -> None:
    """The process's one CPU arena for bounded sessions (ONNX Runtime shares it between them)."""
    global _bounded_arena
    if not _bounded_arena:
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(BOUNDED_ARENA_BYTES, -1, -1, -1))
        _bounded_arena = True


def onnx_export(
    model: Any,
    example: Any | tuple[Any, ...],
    inputs: dict[str, dict[int, str]],
    outputs: dict[str, dict[int, str]],
    metadata: dict[str, Any],
    dynamo: bool = False,
) -> bytes:
    """A torch ``model`` as ONNX bytes (opset ``ONNX_OPSET``), traced on ``example`` (one input or
    a tuple of them): named ``inputs`` and ``outputs`` with their free axes (axes of one name are
    one size), ``metadata`` (key -> JSON value) in the file. ``dynamo``: torch.export's exporter
    (needs ``onnxscript``), for networks whose shapes the tracer would fix (attention, antialiased
    resizing)."""
    import onnx
    import torch

    example = example if isinstance(example, tuple) else (example,)
    buffer = io.BytesIO()
    names: dict[str, Any] = {"input_names": list(inputs), "output_names": list(outputs)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {name: torch.export.Dim(name) for axes in inputs.values() for name in axes.values()}
            free = tuple({axis: dims[name] for axis, name in axes.items()} for axes in inputs.values())
            program = torch.onnx.export(
                model, example, dynamo=True, dynamic_shapes=free, opset_version=18, verbose=False, **names
            )
            assert program is not None
            program.save(cast(Any, buffer))  # a file object works; the stubs name paths only
        else:
            torch.onnx.export(
                model,
                example,
                cast(Any, buffer),
                dynamic_axes={**inputs, **outputs},
                opset_version=ONNX_OPSET,
                dynamo=False,
                **names,
            )
    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return cast(bytes, proto.SerializeToString())
