"""SPD, similarity pattern detection: copied segments are found as objects on the contrast map.

A query x reference contrast map is drawn as a one-channel image (``Rendering``): its longer axis
along x, ``input_size`` pixels high and ``input_size`` times 1, 2 or 4 (up to ``max_aspect``) wide,
so that both axes get about the same frames per pixel; an axis longer than its pixels is
max-pooled a whole number of frames per pixel (a thin diagonal band survives), a shorter one is
stretched. An ultralytics YOLO detector finds the boxes of class "copy", and each box maps back to
query and reference frames. A map whose query is long is also drawn in windows (``views``), so
that a short copy in a long upload is not a sliver. A box is a few frames coarse (more on a shrunk
axis), so its ends are then refined on the full-resolution map: rows and columns at the ends of the
(slightly widened) box whose best contrast stays below ``refine_min_contrast`` are cut off, and
ends whose neighbours stay strong grow into them. Maps drawn on the same
canvas go through the network as one batch; the crops of a second look (below) all go as one, on
the widest canvas they need (a call costs a few ms however few maps it holds).

The network runs with ONNX Runtime (no torch at query time; 6-25x faster per batch than torch on
2 cores). Its file (``spd.onnx``, ``vcopy train spd`` writes it beside the trainable ``spd.pt``,
``vcopy.localize.spd_model``) carries the settings it was trained and calibrated with in its
metadata (``SpdSettings``): the input size, ``max_aspect``, the rendering range, the calibrated
score threshold and the descriptor whose maps it reads. A ``.pt`` file given instead is exported
when it is loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from vcopy.errors import VcopyError, check_torch_archive
from vcopy.features import descriptor_kind
from vcopy.localize.base import MapInput, Segment, box_segment, suppress_overlaps
from vcopy.localize.spd_settings import SETTINGS_KEY, SpdSettings
from vcopy.video import sha256_file

SHIPPED_WEIGHTS = "spd.onnx"  # trained on maps of the default descriptor; "spd-<descriptor>.onnx" for others
CONTRAST_RANGE = (-0.2, 0.8)  # contrast values mapped to image values 0..1
DIAGONAL_HALF_WIDTH = 3  # frames either side of a box's diagonal searched when its ends are refined
SECOND_LOOK_FRAMES_PER_PIXEL = 4  # maps drawn this coarsely get a second look at weak boxes
TWO_FRAME_END_FRAMES_PER_PIXEL = 2  # on axes drawn this coarsely a box end needs two strong frames
WINDOW_FRAMES_PER_PIXEL = 2  # a map drawn coarser than this is also drawn in windows at most this coarse
IN_MEMORY = Path("<in memory>")  # the weights path of a detector built around a live network
BACKGROUND_CONTRAST = -0.1  # typical contrast of unrelated frames; a drawn map's median is moved here

Network = Callable[[np.ndarray], np.ndarray]  # images [B, 1, H, W] float32 -> [B, 5, anchors]: xywh, score


def load_network(path: Path, device: str = "cpu") -> tuple[Network, SpdSettings]:
    """The network of an SPD weights file and its settings: an ``.onnx`` file as it is, any other
    (``vcopy train spd``'s ``.pt``) exported first (which needs torch)."""
    from vcopy.runtime import onnx_session, read_model_file, run_failure

    if path.suffix == ".onnx":
        model: bytes = read_model_file(path, "SPD weights")
    else:
        check_torch_archive(path, "SPD weights")  # before torch is imported
        from vcopy.localize.spd_model import export_onnx

        model = export_onnx(path)
    try:
        session = onnx_session(model, device, bounded=True)
    except VcopyError:
        raise
    except Exception as exc:  # ONNX Runtime's errors have no common base class
        raise VcopyError(
            f"{path}: not SPD weights (not a loadable ONNX model: {type(exc).__name__})"
        ) from None
    try:
        record = json.loads(session.get_modelmeta().custom_metadata_map[SETTINGS_KEY])
    except (KeyError, ValueError, RecursionError):
        raise VcopyError(f"{path}: not SPD weights made by vcopy (no {SETTINGS_KEY} settings)") from None
    settings = SpdSettings.from_record(record, path)
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1:3] != [1, settings.input_size]:
        raise VcopyError(f"{path}: not SPD weights made by vcopy (its network's input shape)")
    input_name = inputs[0].name

    def network(images: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, session.run(None, {input_name: images})[0])

    try:
        probe = network(np.zeros((1, 1, settings.input_size, settings.input_size), np.float32))
    except Exception as exc:  # ONNX Runtime's errors have no common base class
        reason = run_failure(exc)
        raise VcopyError(f"{path}: not SPD weights (its network does not run: {reason})") from None
    if probe.ndim != 3 or probe.shape[1] != 5:
        raise VcopyError(f"{path}: not SPD weights made by vcopy (its network's output shape)")
    return network, settings


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

    def draw(self, x: np.ndarray, axis: int) -> np.ndarray:
        """``x`` (2-D) with its ``axis`` drawn at this scale."""
        if self.frames_per_pixel <= 1:
            return np.take(x, np.arange(self.pixels) * self.frames // self.pixels, axis=axis)
        k = int(self.frames_per_pixel)
        whole = self.frames // k * k

        def every_k(j: int) -> np.ndarray:
            return x[j:whole:k] if axis == 0 else x[:, j:whole:k]

        pooled = np.maximum(every_k(0), every_k(1))  # elementwise over slices: memory-bound
        for j in range(2, k):
            np.maximum(pooled, every_k(j), out=pooled)
        if whole == self.frames:
            return pooled
        rest = x[whole:] if axis == 0 else x[:, whole:]
        return np.concatenate([pooled, rest.max(axis=axis, keepdims=True)], axis=axis)


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
) -> np.ndarray:
    """Contrast maps as a batch of one-channel float32 images [B, 1, H, W] on the largest of
    their canvases, each drawn in the top-left corner and padded with 0. Max pooling lifts the
    background the more frames a pixel holds, so each drawn map is shifted to put its median at
    ``BACKGROUND_CONTRAST`` (the level of an unpooled map) before ``contrast_range`` is mapped to
    values 0..1."""
    lo, hi = contrast_range
    height = max(r.canvas[0] for r in renderings)
    width = max(r.canvas[1] for r in renderings)
    images = np.zeros((len(maps), 1, height, width), dtype=np.float32)
    for i, (m, r) in enumerate(zip(maps, renderings, strict=True)):
        x = np.asarray(m, dtype=np.float32)
        image = r.x.draw(r.y.draw(x.T if r.transposed else x, 0), 1)
        values = image.ravel()
        median = np.partition(values, (len(values) - 1) // 2)[(len(values) - 1) // 2]
        shifted = image - np.float32(median - BACKGROUND_CONTRAST + lo)
        images[i, 0, : r.y.pixels, : r.x.pixels] = np.clip(shifted / np.float32(hi - lo), 0.0, 1.0)
    return images


@dataclass(frozen=True)
class Detection:
    """A detected copy on one map, in frame indices (inclusive ranges)."""

    rows: tuple[int, int]  # query frames
    cols: tuple[int, int]  # reference frames
    score: float

    def moved(self, first_row: int, first_column: int) -> Detection:
        """This detection on a map whose part it was found on starts at (``first_row``,
        ``first_column``)."""
        rows = (self.rows[0] + first_row, self.rows[1] + first_row)
        return Detection(rows, (self.cols[0] + first_column, self.cols[1] + first_column), self.score)


def refine_span(strength: np.ndarray, min_contrast: float, min_run: int = 1) -> tuple[int, int] | None:
    """First and last index of the strong frames (strength reaching ``min_contrast``) that lie in
    a run of at least ``min_run`` strong frames in a row; None when there is no such run."""
    strong = (strength >= min_contrast).astype(np.int8)
    in_run = np.convolve(strong, np.ones(min_run, dtype=np.int8), mode="valid") == min_run
    starts = np.flatnonzero(in_run)  # runs of min_run strong frames starting here
    return (int(starts[0]), int(starts[-1]) + min_run - 1) if len(starts) else None


def shipped_weights_path(descriptor: str | None = None) -> Path:
    """The shipped weights for maps of ``descriptor`` (a registry or library name; None: the
    default descriptor's)."""
    from vcopy.weights import shipped

    kind = descriptor_kind(descriptor) if descriptor else None
    if kind is not None and shipped(f"spd-{kind}.onnx").is_file():
        return shipped(f"spd-{kind}.onnx")
    return shipped(SHIPPED_WEIGHTS)


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
    batch_size: int = 64
    device: str = "cpu"
    name: str = "spd"
    network: Network | None = field(default=None, repr=False, compare=False)  # None: the weights'
    trained: SpdSettings | None = None  # the settings of ``network`` when it is given

    @classmethod
    def from_network(
        cls, network: Network, settings: SpdSettings, **options: object
    ) -> SimilarityPatternDetector:
        """A detector around a network in memory (training validates its live model with one)."""
        return cls(weights_path=IN_MEMORY, network=network, trained=settings, **options)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        self.weights_path = Path(self.weights_path)
        if self.network is None or self.trained is None:
            self.network, self.trained = load_network(self.weights_path, self.device)
            self.sha256 = sha256_file(self.weights_path)
        else:
            self.sha256 = ""
        settings = self.trained
        self.input_size: int = settings.input_size
        self.contrast_range = settings.contrast_range
        self.trained_on: str = settings.descriptor  # the descriptor whose maps it reads
        self.validation_f1 = (
            float("nan") if settings.validation_segment_f1 is None else settings.validation_segment_f1
        )
        if self.score_threshold is None:
            self.score_threshold = settings.score_threshold
        if self.max_aspect is None:
            self.max_aspect = settings.max_aspect

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
        self, contrast: np.ndarray, query_timestamps_s: np.ndarray, reference_timestamps_s: np.ndarray
    ) -> list[Segment]:
        return self.localize_batch([(contrast, query_timestamps_s, reference_timestamps_s)])[0]

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

    def views(self, shape: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """The parts of a map of ``shape`` that are drawn, as ([first, stop) rows, [first, stop)
        columns): the whole map, and, when the query is long (its axis drawn coarser than
        ``WINDOW_FRAMES_PER_PIXEL``, or at other frames per pixel than a short reference's: a short
        copy inside a long upload is then a sliver), windows overlapping by half, each drawn with
        both axes at about the same frames per pixel (at most ``WINDOW_FRAMES_PER_PIXEL``), so that
        a copy looks the same whatever the length of the upload. A short query against a long
        reference is drawn whole (windows along a long reference found as many coincidences as
        copies on the benchmark, docs/benchmarks.md)."""
        assert self.max_aspect is not None
        whole = ((0, shape[0]), (0, shape[1]))
        short, long = sorted(shape)
        short_frames = min(short, int(self.input_size * WINDOW_FRAMES_PER_PIXEL))
        long_frames = max(self.max_aspect * short_frames, self.input_size)
        plan = self.rendering(shape)
        coarse = max(plan.x.frames_per_pixel, plan.y.frames_per_pixel) > WINDOW_FRAMES_PER_PIXEL
        short_query = shape[0] < shape[1] and short_frames == short  # a short query, a long reference
        if (long <= long_frames and not coarse) or short_query:
            return [whole]
        short_spans, long_spans = _windows(short, short_frames), _windows(long, long_frames)
        if shape[0] <= shape[1]:
            return [whole, *((r, c) for r in short_spans for c in long_spans)]
        return [whole, *((r, c) for r in long_spans for c in short_spans)]

    def detect(
        self, maps: Sequence[np.ndarray], score_threshold: float | None = None
    ) -> list[list[Detection]]:
        """Detections on each map (frame indices) scoring at least ``score_floor``, best first.
        Each map is drawn whole and, when long, in windows (``views``), whose boxes are then joined
        (``_joined``)."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        assert threshold is not None
        origins: list[tuple[int, int, int]] = []  # map index, first row, first column
        parts: list[np.ndarray] = []
        windowed = []
        for i, m in enumerate(maps):
            views = self.views(m.shape) if m.size else [((0, 0), (0, 0))]
            windowed.append(len(views) > 1)
            for (r0, r1), (c0, c1) in views:
                origins.append((i, r0, c0))
                parts.append(m[r0:r1, c0:c1])
        found = self._detect_with_second_look(parts, threshold)
        per_map: list[list[Detection]] = [[] for _ in maps]
        for (i, r0, c0), dets in zip(origins, found, strict=True):
            per_map[i] += [d.moved(r0, c0) for d in dets]
        return [
            _joined(f, threshold) if w else sorted(f, key=lambda d: -d.score)
            for f, w in zip(per_map, windowed, strict=True)
        ]

    def _detect_with_second_look(self, maps: Sequence[np.ndarray], threshold: float) -> list[list[Detection]]:
        """Detections on each map scoring at least ``score_floor``. On a map drawn at several
        frames per pixel, a box scored at least ``second_look_score`` but below the threshold is
        looked at again: the map around it (twice its size) is cropped and detected on at full
        detail, and what the crop finds above the threshold replaces it (a faint band of a few
        pixels in a long map fills the crop). The crops all go through the network as one batch.
        Boxes below the threshold are kept: they rank pairs, they are not matches."""
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
            results[i] += [d.moved(r0, c0) for d in found]
        return results

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
            predictions = cast(Network, self.network)(images)  # set by __post_init__
            limits = np.array([thresholds[i] for i in chunk])
            for local, box, score in _nms(predictions, limits, self.iou_threshold):
                results[chunk[local]].append(
                    self._detection(maps[chunk[local]], chunk_plans[local], box, score)
                )
        return results

    def _detection(
        self, contrast: np.ndarray, plan: Rendering, box_xyxy_px: np.ndarray, score: float
    ) -> Detection:
        """The box's frames, its ends refined on the map: twice over, each axis along the other's
        refined span (a box that overshoots one axis tilts its diagonal off the band)."""
        rows, cols = plan.frames(box_xyxy_px)
        for _ in range(2):
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
        beside the band does not extend it; on an axis drawn finer, an end whose neighbours
        outside the box stay strong grows into them, by up to the box's length (a box drawn short
        on a block, a held shot matching a held shot, reaches the block's edge). ``axis`` 1
        refines rows (``scale`` is then the query axis's)."""
        along, across = (rows, cols) if axis == 1 else (cols, rows)
        pad = max(1, int(np.ceil(scale.frames_per_pixel)))
        first, last = max(0, along[0] - pad), min(scale.frames - 1, along[1] + pad)
        reach = along[1] - along[0] + 1  # how far an end may grow
        lo, hi = max(0, first - reach), min(scale.frames - 1, last + reach)
        grid = contrast if axis == 1 else contrast.T
        strength = _diagonal_strength(grid, (lo, hi), along, across)  # each row on its own
        min_run = 2 if scale.frames_per_pixel >= TWO_FRAME_END_FRAMES_PER_PIXEL else 1
        refined = refine_span(strength[first - lo : last - lo + 1], self.refine_min_contrast, min_run)
        if refined is None:
            return along
        start, end = first + refined[0], first + refined[1]
        if min_run > 1:
            return start, end
        strong = strength >= self.refine_min_contrast
        if start == first:
            while start > lo and strong[start - 1 - lo]:
                start -= 1
        if end == last:
            while end < hi and strong[end + 1 - lo]:
                end += 1
        return start, end


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


def _windows(frames: int, length: int) -> list[tuple[int, int]]:
    """[first, stop) windows of ``length`` frames overlapping by half that cover ``frames``."""
    if frames <= length:
        return [(0, frames)]
    starts = [*range(0, frames - length, max(1, length // 2)), frames - length]
    return [(s, s + length) for s in starts]


def _overlaps(a: Detection, b: Detection) -> bool:
    """Whether two boxes share frames on both axes."""
    return (
        a.rows[0] <= b.rows[1]
        and b.rows[0] <= a.rows[1]
        and a.cols[0] <= b.cols[1]
        and b.cols[0] <= a.cols[1]
    )


def _joined(found: list[Detection], threshold: float) -> list[Detection]:
    """Matches first, then the rest, best first; a box that overlaps kept ones is dropped, except
    that a match is joined with the matches it overlaps when all lie on one diagonal (their union,
    the best score): a copy longer than half a window is found in pieces by the windows it
    crosses, and the whole map may see more of it than any window."""
    kept: list[Detection] = []
    for d in sorted(found, key=lambda d: (d.score < threshold, -d.score)):
        hits = [k for k, j in enumerate(kept) if _overlaps(d, j)]
        if not hits:
            kept.append(d)
        elif d.score >= threshold and all(kept[k].score >= threshold for k in hits):
            parts = [d, *(kept[k] for k in hits)]
            rows = (min(p.rows[0] for p in parts), max(p.rows[1] for p in parts))
            cols = (min(p.cols[0] for p in parts), max(p.cols[1] for p in parts))
            union = Detection(rows, cols, max(p.score for p in parts))
            if all(_on_diagonal(p, union) for p in parts):
                kept = [j for k, j in enumerate(kept) if k not in hits]
                kept.append(union)
    return sorted(kept, key=lambda d: -d.score)


def _on_diagonal(part: Detection, box: Detection) -> bool:
    """Whether both corners of ``part``'s diagonal lie near ``box``'s diagonal (within the band
    ``_diagonal_strength`` searches): a piece of the same copy, not a neighbouring one."""
    slope = (box.cols[1] - box.cols[0]) / max(1, box.rows[1] - box.rows[0])
    tolerance = max(DIAGONAL_HALF_WIDTH, round(0.1 * (box.cols[1] - box.cols[0] + 1)))
    return all(
        abs(box.cols[0] + (row - box.rows[0]) * slope - col) <= tolerance
        for row, col in ((part.rows[0], part.cols[0]), (part.rows[1], part.cols[1]))
    )


def _widened(span: tuple[int, int], frames: int) -> tuple[int, int]:
    """The slice [start, stop) around an inclusive frame span, twice as long (at least 16 frames
    more each side), within the map."""
    pad = max(16, (span[1] - span[0] + 1) // 2)
    return max(0, span[0] - pad), min(frames, span[1] + 1 + pad)


def _nms(
    predictions: np.ndarray, score_thresholds: np.ndarray, iou_threshold: float
) -> Iterator[tuple[int, np.ndarray, float]]:
    """(image index, xyxy box, score) of the boxes scoring at least their image's threshold and
    kept by greedy non-maximum suppression (a box overlapping a better one by more than
    ``iou_threshold`` is dropped), per image, best first."""
    for image, (prediction, threshold) in enumerate(zip(predictions, score_thresholds, strict=True)):
        scores = prediction[4]
        candidates = np.flatnonzero(scores >= threshold)
        if len(candidates) == 0:
            continue
        xywh = prediction[:4, candidates].T.astype(np.float64)
        boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-scores[candidates], kind="stable")
        while len(order):
            best, rest = order[0], order[1:]
            yield image, boxes[best].astype(np.float32), float(scores[candidates[best]])
            low = np.maximum(boxes[rest, :2], boxes[best, :2])
            high = np.minimum(boxes[rest, 2:], boxes[best, 2:])
            overlap = np.prod(np.clip(high - low, 0, None), axis=1)
            iou = overlap / np.maximum(areas[rest] + areas[best] - overlap, 1e-12)
            order = rest[iou <= iou_threshold]
