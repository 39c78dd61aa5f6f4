"""SPD, similarity pattern detection: copied segments are found as objects on the similarity map.

A query x reference contrast map is drawn as a one-channel image (``Rendering``): its longer axis
along x, ``input_size`` pixels high and ``input_size`` times 1, 2 or 4 (up to ``max_aspect``) wide,
so that both axes get about the same frames per pixel; an axis longer than its pixels is
max-pooled a whole number of frames per pixel (a thin diagonal band survives), a shorter one is
stretched. An ultralytics YOLO detector finds the boxes of class "copy", and each box maps back to
query and reference frames. A box is a few frames coarse (more on a shrunk axis), so its ends are
then refined on the full-resolution map: rows and columns at the ends of the (slightly widened)
box whose best contrast stays below ``refine_min_contrast`` are cut off. Maps drawn on the same
canvas go through the network as one batch; the crops of a second look (below) all go as one, on
the widest canvas they need (a call costs a few ms however few maps it holds).

Weights (``vcopy.spd/2``): the model's YAML config, its state dict, the input size, ``max_aspect``,
the rendering range, the calibrated score threshold and how they were made. ``vcopy train spd``
writes them.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from vcopy.checks import bounded_float, bounded_int
from vcopy.errors import VcopyError, read_torch_file
from vcopy.features import descriptor_kind
from vcopy.localize.base import MapInput, Segment, box_segment, suppress_overlaps
from vcopy.video import sha256_file

WEIGHTS_FORMAT = "vcopy.spd/2"
SHIPPED_WEIGHTS = "spd.pt"  # trained on maps of the default descriptor; "spd-<descriptor>.pt" for others
CONTRAST_RANGE = (-0.2, 0.8)  # contrast values mapped to image values 0..1
DIAGONAL_HALF_WIDTH = 3  # frames either side of a box's diagonal searched when its ends are refined
SECOND_LOOK_FRAMES_PER_PIXEL = 4  # maps drawn this coarsely get a second look at weak boxes
TWO_FRAME_END_FRAMES_PER_PIXEL = 2  # on axes drawn this coarsely a box end needs two strong frames
BACKGROUND_CONTRAST = -0.1  # typical contrast of unrelated frames; a drawn map's median is moved here
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


@dataclass(frozen=True)
class AxisScale:
    """How one axis of a map is drawn: ``frames`` frames on ``pixels`` image pixels, each pixel
    showing ``frames_per_pixel`` frames (their maximum) or, below 1, a frame repeated."""

    frames: int
    pixels: int
    frames_per_pixel: float

    @classmethod
    def fit(cls, frames: int, budget_px: int) -> AxisScale:
        """Stretch ``frames`` (nearest) onto ``budget_px`` pixels, or max-pool them ``k`` to a
        pixel, ``k`` the smallest whole number that fits."""
        if frames <= budget_px:
            return cls(frames, budget_px, frames / budget_px)
        k = math.ceil(frames / budget_px)
        return cls(frames, math.ceil(frames / k), float(k))

    def frame_span(self, px_start: float, px_end: float) -> tuple[int, int]:
        """The inclusive (first, last) frames under the pixel interval [px_start, px_end)."""
        first = int(np.clip(np.floor(px_start * self.frames_per_pixel + 1e-6), 0, self.frames - 1))
        last = int(np.clip(np.ceil(px_end * self.frames_per_pixel - 1e-6) - 1, first, self.frames - 1))
        return first, last

    def draw(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """``x`` (2-D) with its axis ``dim`` drawn at this scale."""
        if self.frames_per_pixel <= 1:
            return x.index_select(dim, torch.arange(self.pixels) * self.frames // self.pixels)
        k = int(self.frames_per_pixel)
        if dim == 1:  # a 1-D max pool along rows is several times faster than reshape + amax
            return F.max_pool1d(x[None], k, k, ceil_mode=True)[0]
        whole = self.frames // k * k
        pooled = torch.maximum(x[0:whole:k], x[1:whole:k])  # elementwise over row slices: memory-bound
        for j in range(2, k):
            torch.maximum(pooled, x[j:whole:k], out=pooled)
        if whole == self.frames:
            return pooled
        return torch.cat([pooled, x[whole:].amax(0, keepdim=True)], 0)


@dataclass(frozen=True)
class Rendering:
    """How a map becomes an image: the longer axis runs along image x (``transposed`` when that
    is the query axis), drawn at ``x`` and ``y`` scales into a ``canvas`` (height, width)."""

    transposed: bool
    y: AxisScale
    x: AxisScale
    canvas: tuple[int, int]

    @classmethod
    def plan(cls, shape: tuple[int, int], height: int, width: int) -> Rendering:
        transposed = shape[0] > shape[1]
        short, long = sorted(shape)
        return cls(transposed, AxisScale.fit(short, height), AxisScale.fit(long, width), (height, width))

    @property
    def query_axis(self) -> AxisScale:
        return self.x if self.transposed else self.y

    @property
    def reference_axis(self) -> AxisScale:
        return self.y if self.transposed else self.x

    def frames(self, box_xyxy_px: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
        """A box in image pixels as inclusive ((first, last) query frames, (first, last) reference
        frames)."""
        x0, y0, x1, y1 = (float(v) for v in box_xyxy_px)
        along_y, along_x = self.y.frame_span(y0, y1), self.x.frame_span(x0, x1)
        return (along_x, along_y) if self.transposed else (along_y, along_x)

    def box_xywh(self, rows: tuple[int, int], cols: tuple[int, int]) -> tuple[float, float, float, float]:
        """Inclusive query (rows) and reference (cols) frame ranges as a box in the canvas,
        normalised (x centre, y centre, width, height)."""
        along_y, along_x = (cols, rows) if self.transposed else (rows, cols)
        x0, x1 = along_x[0] / self.x.frames_per_pixel, (along_x[1] + 1) / self.x.frames_per_pixel
        y0, y1 = along_y[0] / self.y.frames_per_pixel, (along_y[1] + 1) / self.y.frames_per_pixel
        height, width = self.canvas
        return ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)


def canvas_width(shape: tuple[int, int], size: int, max_aspect: int) -> int:
    """The image width for a map: ``size`` doubled (up to ``size * max_aspect``) until the longer
    axis is drawn at about as many frames per pixel as the shorter one."""
    short, long = sorted(shape)
    need = math.ceil(long / max(1, math.ceil(short / size)))
    width = size
    while width < need and width * 2 <= size * max_aspect:
        width *= 2
    return width


def render_maps(
    maps: Sequence[np.ndarray],
    renderings: Sequence[Rendering],
    contrast_range: tuple[float, float] = CONTRAST_RANGE,
) -> torch.Tensor:
    """Contrast maps as a batch of one-channel images on the largest of their canvases, each drawn
    in the top-left corner and padded with 0. Max pooling lifts the background the more frames a pixel
    holds, so each drawn map is shifted to put its median at ``BACKGROUND_CONTRAST`` (the level of
    an unpooled map) before ``contrast_range`` is mapped to values 0..1."""
    lo, hi = contrast_range
    height = max(r.canvas[0] for r in renderings)
    width = max(r.canvas[1] for r in renderings)
    images = torch.zeros(len(maps), 1, height, width)
    for i, (m, r) in enumerate(zip(maps, renderings, strict=True)):
        x = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))
        if r.transposed:
            x = x.T
        image = r.x.draw(r.y.draw(x, 0), 1)
        values = image.numpy().ravel()
        median = np.partition(values, (len(values) - 1) // 2)[(len(values) - 1) // 2]  # faster than torch's
        image = image - float(median - BACKGROUND_CONTRAST)
        images[i, 0, : r.y.pixels, : r.x.pixels] = image.sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)
    return images


@dataclass(frozen=True)
class Detection:
    """A detected copy on one map, in frame indices (inclusive ranges)."""

    rows: tuple[int, int]  # query frames
    cols: tuple[int, int]  # reference frames
    score: float


def refine_span(strength: np.ndarray, min_contrast: float, min_run: int = 1) -> tuple[int, int] | None:
    """First and last index of the strong frames (strength reaching ``min_contrast``) that lie in
    a run of at least ``min_run`` strong frames in a row; None when there is no such run."""
    strong = (strength >= min_contrast).astype(np.int8)
    in_run = np.convolve(strong, np.ones(min_run, dtype=np.int8), mode="valid") == min_run
    starts = np.flatnonzero(in_run)  # runs of min_run strong frames starting here
    return (int(starts[0]), int(starts[-1]) + min_run - 1) if len(starts) else None


def load_weights(path: Path) -> dict[str, Any]:
    """Read and check an SPD weights file. A weights file is data: its network must be exactly
    vcopy's (``model_config`` of its widths, which the detector then builds from vcopy's own
    config, never from the file's) and every setting in range, before anything is built."""
    weights = read_torch_file(path, "SPD weights")
    if not isinstance(weights, dict) or weights.get("format") != WEIGHTS_FORMAT:
        raise VcopyError(f"{path}: not SPD weights (format is not {WEIGHTS_FORMAT})")
    try:
        weights["widths"] = network_widths(weights["model_config"])
        bounded_int(weights["input_size"], "input_size", 32, 1024)
        bounded_int(weights["max_aspect"], "max_aspect", 1, 16)
        lo, hi = weights["contrast_range"]
        if bounded_float(lo, "contrast_range", -1, 1) >= bounded_float(hi, "contrast_range", -1, 1):
            raise ValueError("contrast_range is empty")
        bounded_float(weights["score_threshold"], "score_threshold", 0, 1)
        if not isinstance(weights["descriptor"], str):
            raise ValueError("descriptor is not a name")
        state = weights["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("state_dict is not a set of tensors")
    except KeyError as exc:
        raise VcopyError(f"{path}: not SPD weights ({exc} is missing)") from None
    except (ValueError, TypeError) as exc:
        raise VcopyError(f"{path}: not SPD weights made by vcopy ({exc})") from None
    return weights


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


def shipped_weights_path(descriptor: str | None = None) -> Path:
    """The shipped weights for maps of ``descriptor`` (a registry or library name; None: the
    default descriptor's)."""
    from importlib.resources import files

    shipped = files("vcopy.weights")
    kind = descriptor_kind(descriptor) if descriptor else None
    if kind is not None and shipped.joinpath(f"spd-{kind}.pt").is_file():
        return Path(str(shipped.joinpath(f"spd-{kind}.pt")))
    return Path(str(shipped.joinpath(SHIPPED_WEIGHTS)))


@dataclass
class SimilarityPatternDetector:
    """The SPD localizer. ``score_threshold`` None uses the one calibrated with the weights."""

    weights_path: Path = field(default_factory=shipped_weights_path)
    score_threshold: float | None = None
    score_floor: float = 0.05  # weaker boxes are not reported at all; boxes below the threshold rank pairs
    iou_threshold: float = 0.5
    refine_min_contrast: float = 0.15
    second_look_score: float = 0.15  # weaker boxes on coarsely drawn maps are cropped and looked at again
    max_aspect: int | None = None
    fused: bool = True  # batch norms folded into the convolutions (faster; the weights can't be trained)
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
        self.widths: list[int] = list(weights["widths"])
        self.validation_f1: float = float(weights.get("validation", {}).get("segment_f1", float("nan")))
        if self.score_threshold is None:
            self.score_threshold = float(weights["score_threshold"])
        if self.max_aspect is None:
            self.max_aspect = int(weights["max_aspect"])
        self.model = build_model(model_config(self.widths))
        try:
            self.model.load_state_dict(weights["state_dict"], strict=True)
        except RuntimeError:
            raise VcopyError(f"{self.weights_path}: SPD weights that do not fit their network") from None
        self.model.to(self.device).eval()
        if self.fused:
            cast(Any, self.model).fuse(verbose=False)
        self.model.to(memory_format=torch.channels_last)  # faster convolutions on CPU
        self.sha256 = sha256_file(self.weights_path)

    @property
    def match_threshold(self) -> float:
        assert self.score_threshold is not None
        return self.score_threshold

    @property
    def models(self) -> list[dict[str, str]]:
        """Weights files used, for the report."""
        return [{"name": f"spd:{self.weights_path.name}", "sha256": self.sha256}]

    @property
    def settings(self) -> dict[str, object]:
        return {
            "weights": str(self.weights_path),
            "input_size": self.input_size,
            "max_aspect": self.max_aspect,
            "score_threshold": self.score_threshold,
            "score_floor": self.score_floor,
            "iou_threshold": self.iou_threshold,
            "refine_min_contrast": self.refine_min_contrast,
            "refine_two_frame_ends_from_frames_per_pixel": TWO_FRAME_END_FRAMES_PER_PIXEL,
            "second_look_score": self.second_look_score,
            "second_look_from_frames_per_pixel": SECOND_LOOK_FRAMES_PER_PIXEL,
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

    def rendering(self, shape: tuple[int, int]) -> Rendering:
        """How a map of ``shape`` is drawn for the network."""
        assert self.max_aspect is not None
        width = canvas_width(shape, self.input_size, self.max_aspect)
        return Rendering.plan(shape, self.input_size, width)

    @torch.inference_mode()
    def detect(
        self, maps: Sequence[np.ndarray], score_threshold: float | None = None
    ) -> list[list[Detection]]:
        """Detections on each map (frame indices) scoring at least ``score_floor``, best first. On a
        map drawn at several frames per pixel, a box scored at least ``second_look_score`` but
        below the threshold is looked at again: the map around it (twice its size) is cropped and
        detected on at full detail, and what the crop finds above the threshold replaces it (a
        faint band of a few pixels in a long map fills the crop). The crops all go through the
        network as one batch. Boxes below the threshold are kept: they rank pairs, they are not
        matches."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        assert threshold is not None
        floor = min(threshold, self.score_floor)
        plans = [self.rendering(m.shape) if m.size else None for m in maps]
        first = self._detect_once(maps, plans, [floor] * len(maps))
        crops, origins = [], []
        for i, (found, plan) in enumerate(zip(first, plans, strict=True)):
            coarse = plan is not None and (
                max(plan.x.frames_per_pixel, plan.y.frames_per_pixel) >= SECOND_LOOK_FRAMES_PER_PIXEL
            )
            for d in found:
                if coarse and self.second_look_score <= d.score < threshold:
                    r0, r1 = _widened(d.rows, maps[i].shape[0])
                    c0, c1 = _widened(d.cols, maps[i].shape[1])
                    crops.append(maps[i][r0:r1, c0:c1])
                    origins.append((i, r0, c0, d))
        crop_plans = [self.rendering(c.shape) for c in crops]
        second = self._detect_once(crops, crop_plans, [threshold] * len(crops), pad_to_widest=True)
        results = [list(found) for found in first]
        for (i, r0, c0, weak), found in zip(origins, second, strict=True):
            if found:
                results[i].remove(weak)
            results[i] += [
                Detection((d.rows[0] + r0, d.rows[1] + r0), (d.cols[0] + c0, d.cols[1] + c0), d.score)
                for d in found
            ]
        return [sorted(found, key=lambda d: -d.score) for found in results]

    @torch.inference_mode()
    def _detect_once(
        self,
        maps: Sequence[np.ndarray],
        plans: Sequence[Rendering | None],
        thresholds: Sequence[float],
        pad_to_widest: bool = False,
    ) -> list[list[Detection]]:
        """Detections on each map (drawn as ``plans`` say; None: empty) scoring at least its
        threshold. Maps of one canvas go through the network together; with ``pad_to_widest`` all
        maps do, on the widest canvas (narrower ones padded)."""
        results: list[list[Detection]] = [[] for _ in maps]
        groups: dict[tuple[int, int] | None, list[int]] = {}  # by canvas, or all together (None)
        for i, plan in enumerate(plans):
            if plan is not None:
                groups.setdefault(None if pad_to_widest else plan.canvas, []).append(i)
        chunks = [
            g[s : s + self.batch_size] for g in groups.values() for s in range(0, len(g), self.batch_size)
        ]
        for chunk in chunks:
            chunk_plans = [cast(Rendering, plans[i]) for i in chunk]
            images = render_maps([maps[i] for i in chunk], chunk_plans, self.contrast_range)
            raw = self.model(images.to(self.device, memory_format=torch.channels_last))
            predictions = raw[0] if isinstance(raw, tuple) else raw  # [B, 5, anchors]: xywh, score
            limits = torch.tensor([thresholds[i] for i in chunk], device=predictions.device)
            for local, box, score in _nms(predictions, limits, self.iou_threshold):
                results[chunk[local]].append(
                    self._detection(maps[chunk[local]], chunk_plans[local], box, score)
                )
        return results

    def _detection(
        self, contrast: np.ndarray, plan: Rendering, box_xyxy_px: np.ndarray, score: float
    ) -> Detection:
        rows, cols = plan.frames(box_xyxy_px)
        rows = self._refine(contrast, rows, cols, plan.query_axis, axis=1)
        cols = self._refine(contrast, rows, cols, plan.reference_axis, axis=0)
        return Detection(rows, cols, score)

    def _refine(
        self, contrast: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], scale: AxisScale, axis: int
    ) -> tuple[int, int]:
        """Widen the box by one pixel's worth of frames (at least one frame) each side, then cut
        the frames at its ends whose best contrast near the box's diagonal (where a copy's band
        runs) is weak. On an axis drawn at several frames per pixel (a margin of several frames
        around the box) an end needs two strong frames in a row, so a lone bright noise cell
        beside the band does not extend it. ``axis`` 1 refines rows (``scale`` is then the query axis's)."""
        along, across = (rows, cols) if axis == 1 else (cols, rows)
        pad = max(1, int(np.ceil(scale.frames_per_pixel)))
        first, last = max(0, along[0] - pad), min(scale.frames - 1, along[1] + pad)
        strength = _diagonal_strength(contrast if axis == 1 else contrast.T, (first, last), along, across)
        min_run = 2 if scale.frames_per_pixel >= TWO_FRAME_END_FRAMES_PER_PIXEL else 1
        refined = refine_span(strength, self.refine_min_contrast, min_run)
        return along if refined is None else (first + refined[0], first + refined[1])


def _diagonal_strength(
    contrast: np.ndarray, frames: tuple[int, int], along: tuple[int, int], across: tuple[int, int]
) -> np.ndarray:
    """Best contrast of each row in ``frames`` (inclusive) within a few frames of where the
    diagonal of the box ``along`` x ``across`` (rows x columns) crosses it, columns kept inside
    ``across``."""
    rows = np.arange(frames[0], frames[1] + 1)
    slope = (across[1] - across[0]) / max(1, along[1] - along[0])
    centre = np.round(across[0] + (rows - along[0]) * slope).astype(np.int64)
    half = max(DIAGONAL_HALF_WIDTH, round(0.1 * (across[1] - across[0] + 1)))
    columns = np.clip(centre[:, None] + np.arange(-half, half + 1)[None, :], across[0], across[1])
    return contrast[rows[:, None], columns].max(axis=1)


def _widened(span: tuple[int, int], frames: int) -> tuple[int, int]:
    """The slice [start, stop) around an inclusive frame span, twice as long (at least 16 frames
    more each side), within the map."""
    pad = max(16, (span[1] - span[0] + 1) // 2)
    return max(0, span[0] - pad), min(frames, span[1] + 1 + pad)


def _nms(
    predictions: torch.Tensor, score_thresholds: torch.Tensor, iou_threshold: float
) -> Iterator[tuple[int, np.ndarray, float]]:
    """(image index, xyxy box, score) of the boxes scoring at least their image's threshold and
    kept by class-agnostic NMS, per image, best first."""
    scores = predictions[:, 4, :]
    image, anchor = torch.nonzero(scores >= score_thresholds[:, None], as_tuple=True)
    if len(image) == 0:
        return
    xywh = predictions[image, :4, anchor]
    xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], dim=1)
    kept_scores = scores[image, anchor]
    keep = batched_nms(xyxy, kept_scores, image, iou_threshold)  # sorted by score
    for k in keep.tolist():
        yield int(image[k]), xyxy[k].cpu().numpy(), float(kept_scores[k])
