"""SPD, similarity pattern detection: copied segments are found as objects on the similarity map.

A query x reference contrast map is rendered as a one-channel image of fixed size (max-pooled
down, nearest-neighbour up, so a thin diagonal band survives), an ultralytics YOLO detector finds
the boxes of class "copy", and each box maps back to query and reference frames. On a map that was
shrunk, a box is a few frames coarse, so its ends are then refined on the full-resolution map: rows
and columns inside the (slightly widened) box whose best contrast stays below
``refine_min_contrast`` are cut off. All maps of one call go through the network as one batch.

Weights (``vcopy.spd/1``): the model's YAML config, its state dict, the input size, the rendering
range, the calibrated score threshold and how they were made. ``vcopy train spd`` writes them.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from vcopy.errors import VcopyError
from vcopy.localize.base import MapInput, Segment, box_segment, suppress_overlaps
from vcopy.video import sha256_file

WEIGHTS_FORMAT = "vcopy.spd/1"
SHIPPED_WEIGHTS = "spd.pt"
CONTRAST_RANGE = (-0.2, 0.8)  # contrast values mapped to image values 0..1


def model_config(widths: Sequence[int] = (8, 16, 32, 64)) -> dict[str, Any]:
    """A YOLOv8-style detector (C2f backbone, SPPF, PAN neck, detection heads at strides 8 and 16)
    for one class; ``widths`` are the channels at strides 2, 4, 8 and 16."""
    c1, c2, c3, c4 = widths
    return {
        "nc": 1,
        "backbone": [
            [-1, 1, "Conv", [c1, 3, 2]],  # 0: stride 2
            [-1, 1, "Conv", [c2, 3, 2]],  # 1: stride 4
            [-1, 1, "C2f", [c2, True]],
            [-1, 1, "Conv", [c3, 3, 2]],  # 3: stride 8
            [-1, 1, "C2f", [c3, True]],  # 4
            [-1, 1, "Conv", [c4, 3, 2]],  # 5: stride 16
            [-1, 1, "C2f", [c4, True]],
            [-1, 1, "SPPF", [c4, 5]],  # 7
        ],
        "head": [
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]],
            [[-1, 4], 1, "Concat", [1]],
            [-1, 1, "C2f", [c3]],  # 10: stride 8 features
            [-1, 1, "Conv", [c3, 3, 2]],
            [[-1, 7], 1, "Concat", [1]],
            [-1, 1, "C2f", [c4]],  # 13: stride 16 features
            [[10, 13], 1, "Detect", ["nc"]],
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


def render_maps(
    maps: Sequence[np.ndarray], size: int, contrast_range: tuple[float, float] = CONTRAST_RANGE
) -> torch.Tensor:
    """Contrast maps as a batch of one-channel ``size`` x ``size`` images, ``contrast_range`` mapped
    to values 0..1: axes shorter than ``size`` are stretched (nearest), longer ones max-pooled."""
    lo, hi = contrast_range
    images = torch.empty(len(maps), 1, size, size)
    for i, m in enumerate(maps):
        x = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]
        h, w = x.shape[-2:]
        if h < size or w < size:
            x = F.interpolate(x, size=(max(h, size), max(w, size)), mode="nearest")
        if h > size or w > size:
            x = F.adaptive_max_pool2d(x, (size, size))
        images[i] = x[0]
    return images.sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)


@dataclass(frozen=True)
class Detection:
    """A detected copy on one map, in frame indices (inclusive ranges)."""

    rows: tuple[int, int]  # query frames
    cols: tuple[int, int]  # reference frames
    score: float


def boxes_to_frames(
    box_xyxy_px: np.ndarray, shape: tuple[int, int], size: int
) -> tuple[tuple[int, int], ...]:
    """A box in image pixels (x along reference frames, y along query frames) as inclusive
    (first, last) frame ranges: ((rows), (cols))."""
    n_rows, n_cols = shape
    x0, y0, x1, y1 = (float(v) for v in box_xyxy_px)

    def span(a: float, b: float, n: int) -> tuple[int, int]:
        first = int(np.clip(np.floor(a * n / size + 1e-6), 0, n - 1))
        last = int(np.clip(np.ceil(b * n / size - 1e-6) - 1, first, n - 1))
        return first, last

    return span(y0, y1, n_rows), span(x0, x1, n_cols)


def refine_span(strength: np.ndarray, min_contrast: float) -> tuple[int, int] | None:
    """First and last index whose strength reaches ``min_contrast``; None when none does."""
    strong = np.flatnonzero(strength >= min_contrast)
    return (int(strong[0]), int(strong[-1])) if len(strong) else None


def load_weights(path: Path) -> dict[str, Any]:
    """Read and check an SPD weights file."""
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise VcopyError(f"{path}: not SPD weights (not a torch file of tensors and plain values)") from exc
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        raise VcopyError(f"{path}: not readable SPD weights ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(weights, dict) or weights.get("format") != WEIGHTS_FORMAT:
        raise VcopyError(f"{path}: not SPD weights (format is not {WEIGHTS_FORMAT})")
    return weights


def shipped_weights_path() -> Path:
    from importlib.resources import files

    return Path(str(files("vcopy.weights").joinpath(SHIPPED_WEIGHTS)))


@dataclass
class SimilarityPatternDetector:
    """The SPD localizer. ``score_threshold`` None uses the one calibrated with the weights."""

    weights_path: Path = field(default_factory=shipped_weights_path)
    score_threshold: float | None = None
    iou_threshold: float = 0.5
    refine_min_contrast: float = 0.15
    batch_size: int = 64
    device: str = "cpu"
    name: str = "spd"

    def __post_init__(self) -> None:
        self.weights_path = Path(self.weights_path)
        weights = load_weights(self.weights_path)
        self.input_size: int = int(weights["input_size"])
        lo, hi = weights["contrast_range"]
        self.contrast_range = (float(lo), float(hi))
        self.descriptor: str = str(weights["descriptor"])
        self.widths: list[int] = [int(layer[3][0]) for layer in weights["model_config"]["backbone"][:7:2]]
        self.validation_f1: float = float(weights.get("validation", {}).get("segment_f1", float("nan")))
        if self.score_threshold is None:
            self.score_threshold = float(weights["score_threshold"])
        self.model = build_model(weights["model_config"])
        self.model.load_state_dict(weights["state_dict"], strict=True)
        self.model.to(self.device).eval()
        self.sha256 = sha256_file(self.weights_path)

    @property
    def models(self) -> list[dict[str, str]]:
        """Weights files used, for the report."""
        return [{"name": f"spd:{self.weights_path.name}", "sha256": self.sha256}]

    @property
    def settings(self) -> dict[str, object]:
        return {
            "weights": str(self.weights_path),
            "input_size": self.input_size,
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "refine_min_contrast": self.refine_min_contrast,
        }

    def __call__(
        self, similarity: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        return self.localize_batch([(similarity, query_timestamps_s, reference_timestamps_s)])[0]

    def localize_batch(self, maps: Sequence[MapInput]) -> list[list[Segment]]:
        detections = self.detect([m[0] for m in maps])
        return [
            suppress_overlaps([box_segment(q_times, r_times, d.rows, d.cols, d.score) for d in dets])
            for dets, (_, q_times, r_times) in zip(detections, maps, strict=True)
        ]

    @torch.inference_mode()
    def detect(
        self, maps: Sequence[np.ndarray], score_threshold: float | None = None
    ) -> list[list[Detection]]:
        """Detections on each map (frame indices), best first."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        assert threshold is not None
        results: list[list[Detection]] = [[] for _ in maps]
        usable = [i for i, m in enumerate(maps) if m.size > 0]
        for start in range(0, len(usable), self.batch_size):
            chunk = usable[start : start + self.batch_size]
            images = render_maps([maps[i] for i in chunk], self.input_size, self.contrast_range)
            images = images.to(self.device)
            raw = self.model(images)
            predictions = raw[0] if isinstance(raw, tuple) else raw  # [B, 5, anchors]: xywh, score
            for local, boxes, score in _nms(predictions, threshold, self.iou_threshold):
                i = chunk[local]
                results[i].append(self._detection(maps[i], boxes, score))
        return results

    def _detection(self, contrast: np.ndarray, box_xyxy_px: np.ndarray, score: float) -> Detection:
        rows, cols = boxes_to_frames(box_xyxy_px, contrast.shape, self.input_size)
        rows = self._refine(contrast, rows, cols, axis=1)
        cols = self._refine(contrast, rows, cols, axis=0)
        return Detection(rows, cols, score)

    def _refine(
        self, contrast: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], axis: int
    ) -> tuple[int, int]:
        """On an axis the image shrank, widen the box by one pixel's worth of frames each side, then
        cut the frames whose best contrast inside the box is weak. ``axis`` 1 refines rows."""
        n = contrast.shape[1 - axis]
        per_px = n / self.input_size
        span = rows if axis == 1 else cols
        if per_px <= 1:
            return span
        pad = int(np.ceil(per_px))
        first, last = max(0, span[0] - pad), min(n - 1, span[1] + pad)
        if axis == 1:
            strength = contrast[first : last + 1, cols[0] : cols[1] + 1].max(axis=1)
        else:
            strength = contrast[rows[0] : rows[1] + 1, first : last + 1].max(axis=0)
        refined = refine_span(strength, self.refine_min_contrast)
        return span if refined is None else (first + refined[0], first + refined[1])


def _nms(
    predictions: torch.Tensor, score_threshold: float, iou_threshold: float
) -> Iterator[tuple[int, np.ndarray, float]]:
    """(image index, xyxy box, score) of the boxes kept by class-agnostic NMS, per image, best first."""
    scores = predictions[:, 4, :]
    image, anchor = torch.nonzero(scores >= score_threshold, as_tuple=True)
    if len(image) == 0:
        return
    xywh = predictions[image, :4, anchor]
    xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], dim=1)
    kept_scores = scores[image, anchor]
    keep = batched_nms(xyxy, kept_scores, image, iou_threshold)  # sorted by score
    for k in keep.tolist():
        yield int(image[k]), xyxy[k].cpu().numpy(), float(kept_scores[k])
