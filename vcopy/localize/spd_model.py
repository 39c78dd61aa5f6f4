"""SPD's network in torch: its ultralytics config, the weights file ``vcopy train spd`` writes
(``.pt``: config, state dict and settings), and the export of trained weights to the ONNX file
that inference runs (``vcopy.localize.spd``, ONNX Runtime, no torch at query time).

Weights (``vcopy.spd/2``): the model's YAML config, its state dict, the input size, ``max_aspect``,
the rendering range, the calibrated score threshold and how they were made.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from vcopy.checks import bounded_int
from vcopy.errors import VcopyError, read_torch_file
from vcopy.localize.spd_settings import ONNX_FORMAT, SETTINGS_KEY, SpdSettings
from vcopy.runtime import onnx_export

WEIGHTS_FORMAT = "vcopy.spd/2"
MAX_WIDTH = 256  # the most channels a weights file may ask for at any stride (vcopy's own use 8..64)


def model_config(widths: Sequence[int] = (8, 16, 32)) -> dict[str, Any]:
    """A small YOLOv8-style detector for one class: a 4x4 patch stem straight to stride 4 (a
    3x3 convolution on one input channel is slow on CPU), C2f blocks, SPPF, a PAN neck and
    detection heads at strides 8 and 16 that regress box sides directly (``reg_max`` 1, no
    distribution bins: a head a quarter the size). ``widths`` are the channels at strides 4, 8
    and 16."""
    c4, c8, c16 = widths
    return {
        "nc": 1,
        "reg_max": 1,
        "backbone": [
            [-1, 1, "Conv", [c4, 4, 4, 0]],  # 0: stride 4
            [-1, 1, "Conv", [c8, 3, 2]],  # 1: stride 8
            [-1, 1, "C2f", [c8, True]],  # 2
            [-1, 1, "Conv", [c16, 3, 2]],  # 3: stride 16
            [-1, 1, "C2f", [c16, True]],
            [-1, 1, "SPPF", [c16, 5]],  # 5
        ],
        "head": [
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 2], 1, "Concat", [1]],
            [-1, 1, "C2f", [c8]],  # 8: stride 8 features
            [-1, 1, "Conv", [c8, 3, 2]],
            [[-1, 5], 1, "Concat", [1]],
            [-1, 1, "C2f", [c16]],  # 11: stride 16 features
            [[8, 11], 1, "Detect", ["nc"]],
        ],
    }


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """ultralytics may print (settings notices) on import; stdout can be a JSON report."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def build_model(config: dict[str, Any]) -> torch.nn.Module:
    """The ultralytics detection model of ``config``, one input channel, randomly initialised
    (nothing is downloaded: ultralytics runs offline and quiet)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    with _quiet_stdout():
        from ultralytics.nn.tasks import DetectionModel

        return DetectionModel(config, ch=1, nc=1, verbose=False)


SPD_WEIGHTS_KEYS = frozenset(
    {"format", "model_config", "state_dict", "input_size", "max_aspect", "contrast_range", "score_threshold"}
    | {"descriptor", "command", "dataset", "epoch", "init_spd", "train_config", "validation", "widths"}
    | {"optimizer", "schedule", "best_f1"}  # a training checkpoint (last.pt) holds these too
)


def load_weights(path: Path) -> dict[str, Any]:
    """Read and check an SPD weights file. A weights file is data: its network must be exactly
    vcopy's (``model_config`` of its widths, which the detector then builds from vcopy's own
    config, never from the file's) and every setting in range, before anything is built."""
    return checked_weights(read_torch_file(path, "SPD weights", keys=SPD_WEIGHTS_KEYS), path)


def checked_weights(weights: Any, path: Path) -> dict[str, Any]:
    """``weights`` read from ``path`` if they are SPD weights as ``load_weights`` accepts them."""
    if not isinstance(weights, dict) or weights.get("format") != WEIGHTS_FORMAT:
        raise VcopyError(f"{path}: not SPD weights (format is not {WEIGHTS_FORMAT})")
    try:
        weights["widths"] = network_widths(weights["model_config"])
        settings(weights, path)
        state = weights["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("state_dict is not a set of tensors")
    except KeyError as exc:
        raise VcopyError(f"{path}: not SPD weights ({exc} is missing)") from None
    except (ValueError, TypeError) as exc:
        raise VcopyError(f"{path}: not SPD weights made by vcopy ({exc})") from None
    return weights


def settings(weights: dict[str, Any], path: Path) -> SpdSettings:
    """The inference settings a weights file carries (checked)."""
    return SpdSettings.from_record(
        {
            "format": ONNX_FORMAT,
            **{k: weights[k] for k in ("input_size", "max_aspect", "contrast_range", "score_threshold")},
            "descriptor": weights["descriptor"],
            "validation_segment_f1": weights.get("validation", {}).get("segment_f1"),
        },
        path,
    )


def network_widths(config: Any) -> tuple[int, int, int]:
    """The widths of ``config`` if it is exactly ``model_config(widths)`` (ultralytics evaluates
    parts of a model config as code, so nothing else is ever built); ValueError otherwise."""
    try:
        convs = [layer[3][0] for layer in config["backbone"] if layer[2] == "Conv"]
        c4, c8, c16 = (bounded_int(c, "a network width", 1, MAX_WIDTH) for c in convs)
        same = config == model_config((c4, c8, c16))
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"its network is not vcopy's SPD network ({exc})") from None
    if not same:
        raise ValueError("its network is not vcopy's SPD network")
    return c4, c8, c16


def trained_model(weights: dict[str, Any], path: Path) -> torch.nn.Module:
    """The network of checked ``weights`` (``load_weights``), in eval mode."""
    model = build_model(model_config(weights["widths"]))
    try:
        model.load_state_dict(weights["state_dict"], strict=True)
    except RuntimeError:
        raise VcopyError(f"{path}: SPD weights that do not fit their network") from None
    return model.eval()


def export_onnx(path: Path) -> bytes:
    """The ONNX file of the weights at ``path`` (batch norms folded into the convolutions; input
    ``[batch, 1, input_size, width]``, batch and width free), its settings in the file's metadata."""
    weights = load_weights(path)
    spd_settings = settings(weights, path)
    model = trained_model(weights, path)
    cast(Any, model).fuse(verbose=False)
    for module in model.modules():
        if hasattr(module, "export"):
            cast(Any, module).export = True  # the Detect head returns its boxes alone
    example = torch.zeros(1, 1, spd_settings.input_size, spd_settings.input_size)
    record = {**spd_settings.record(), "source_weights": path.name}
    with _quiet_stdout():
        return onnx_export(
            model.eval(),
            example,
            {"maps": {0: "batch", 3: "width"}},
            {"boxes": {0: "batch", 2: "anchors"}},
            {SETTINGS_KEY: record},
        )


class TorchNetwork:
    """A torch model (e.g. one being trained) as SPD's network: images [B, 1, H, W] -> [B, 5, anchors]."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        self.model, self.device = model, device

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.model.eval()
        with torch.inference_mode():
            raw = self.model(torch.from_numpy(images).to(self.device))
        predictions = raw[0] if isinstance(raw, tuple) else raw
        return cast(np.ndarray, predictions.float().cpu().numpy())
