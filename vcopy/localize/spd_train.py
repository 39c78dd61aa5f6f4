"""Training SPD from synthesised copies: ``train_spd(dataset, out_dir, config)``.

The data is a copy dataset made by ``vcopy.synth.benchmark.generate`` (only its ``train`` split is
read): unlabeled source videos, queries that copy parts of them under edits, and the generator's
record of where each copy is. Every video is encoded once with the production descriptor (cached
under ``out_dir/features``); training maps are then built from the frame vectors on the fly:

- real pairs: a query against a reference it copies, or against a hard negative (a reference that
  retrieval would rank high but that it does not copy);
- composites: several queries laid end to end against many references laid end to end, up to
  long-form sizes, sometimes with the same reference twice (repeated content), with runs of one
  repeated frame (static content), and with query pieces resampled (rescaling in time).

Boxes come from the ground truth. On the map: Gaussian noise and band dropout (rows or columns
replaced by background). A fifth of the train-split queries is held out; after each epoch their
maps against their top retrieval candidates are localized and scored with the benchmark's
segment-level metric, and the score threshold that maximises segment F1 is kept with the weights.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vcopy.checks import bounded_float, bounded_int, load_training_state
from vcopy.errors import VcopyError
from vcopy.evaluate import Prediction, Scores, score
from vcopy.features import DEFAULT_DESCRIPTOR, Descriptor, FailedVideo, create_descriptor, encode_videos
from vcopy.features.views import DEFAULT_VIEWS
from vcopy.files import atomic_path, write_atomically
from vcopy.groundtruth import TrueQuery, load_ground_truth, vcopy_record
from vcopy.keyframes import grid_map
from vcopy.localize.base import MapInput, Segment
from vcopy.localize.spd import (
    BACKGROUND_CONTRAST,
    CONTRAST_RANGE,
    Rendering,
    SimilarityPatternDetector,
    canvas_width,
    render_maps,
)
from vcopy.localize.spd_model import (
    WEIGHTS_FORMAT,
    TorchNetwork,
    build_model,
    export_onnx,
    load_weights,
    model_config,
)
from vcopy.query import QueryConfig
from vcopy.similarity import background_similarity, similarity_map
from vcopy.video import SamplingConfig

TRAIN_SPLIT = "train"
BACKGROUND_RANK = QueryConfig.background_rank


@dataclass(frozen=True)
class TrainConfig:
    """What ``vcopy train spd`` trains, and how."""

    input_size: int = 64
    max_aspect: int = 2  # maps are drawn up to input_size x (input_size * max_aspect) pixels
    widths: tuple[int, int, int] = (8, 16, 32)
    epochs: int = 30
    steps_per_epoch: int = 100
    batch_size: int = 32
    learning_rate: float = 2e-3
    composite_fraction: float = 0.35  # share of training maps composed of several videos
    chain_fraction: float = 0.3  # share of maps with one long copy chained from several copies
    max_chain: int = 10  # copies chained into one
    max_composite_queries: int = 40  # up to about 1200 query frames: long-form sizes
    max_composite_references: int = 48
    faint_fraction: float = 0.3  # share of maps whose copies are faded towards the background
    validation_fraction: float = 0.2
    candidates: int = 10  # references per held-out query that get a map, as in `vcopy query`
    seed: int = 0
    descriptor: str = DEFAULT_DESCRIPTOR  # registry name; the maps are of this descriptor
    views: tuple[str, ...] = DEFAULT_VIEWS  # query views, as `vcopy query` uses them
    device: str = "cpu"


@dataclass(frozen=True)
class Piece:
    """Consecutive sampled frames of one video (``key``: its dataset path), or of a static run."""

    key: str
    vectors: np.ndarray  # [1 + V, N, dim]: each frame's vector, then its query views' vectors
    times_s: np.ndarray
    background: np.ndarray  # [1 + V, N]: each frame's (and view's) background similarity


@dataclass(frozen=True)
class CopyTruth:
    reference: str
    query_start_s: float
    query_end_s: float
    reference_start_s: float
    reference_end_s: float


@dataclass
class TrainingData:
    """The train split, encoded: videos by dataset path, copies by query path, the held-out queries."""

    videos: dict[str, Piece]
    sha256: dict[str, str]
    references: list[str]
    train_queries: list[str]
    validation_queries: list[str]
    copies: dict[str, list[CopyTruth]]
    candidates: dict[str, list[str]] = field(default_factory=dict)  # query -> top-ranked references


@dataclass(frozen=True)
class EpochLog:
    epoch: int
    steps: int
    seconds: float
    loss: dict[str, float]
    validation: dict[str, float]
    score_threshold: float


def read_dataset(gt_path: Path) -> dict[str, Any]:
    """The dataset's ground truth (``vcopy.groundtruth/1``), checked to have a train split."""
    truth = vcopy_record(Path(gt_path))
    try:
        splits = {v["split"] for kind in ("references", "queries") for v in truth[kind]}
    except (KeyError, TypeError) as exc:
        raise VcopyError(
            f"{gt_path}: not a readable ground-truth file ({exc.__class__.__name__}: {exc})"
        ) from exc
    if TRAIN_SPLIT not in splits:
        raise VcopyError(
            f"{gt_path}: no {TRAIN_SPLIT!r} split to train on (splits: {', '.join(sorted(splits))})"
        )
    return truth


def encode_dataset(
    gt_path: Path,
    truth: dict[str, Any],
    cache_dir: Path,
    descriptor: Descriptor,
    views: tuple[str, ...] = (),
    on_video: Callable[[str], None] | None = None,
    split: str = TRAIN_SPLIT,
    kinds: tuple[str, ...] = ("references", "queries"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(frame vectors [1 + V, N, dim] with ``views``, timestamps in s) of every ``split`` video of
    ``kinds`` by dataset path, cached per file (by sha256, descriptor and views)."""
    entries = [v for kind in kinds for v in truth[kind] if v["split"] == split]
    cache_dir.mkdir(parents=True, exist_ok=True)
    tag = "-".join([descriptor.name.replace("/", "_"), *views])

    def cache(entry: dict[str, Any]) -> Path:
        return cache_dir / f"{entry['sha256']}-{tag}.npz"

    missing = {Path(gt_path).parent / e["path"]: e for e in entries if not cache(e).is_file()}
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    for item in encode_videos(list(missing), descriptor, sampling, views=views):
        entry = missing[item.path]
        if isinstance(item, FailedVideo):
            raise VcopyError(f"{item.path}: {item.reason}")
        with atomic_path(cache(entry)) as tmp:
            np.savez(tmp, vectors=item.all_views, times_s=item.timestamps_s)
        if on_video is not None:
            on_video(entry["path"])
    loaded = {}
    for e in entries:
        with np.load(cache(e)) as arrays:
            loaded[e["path"]] = (arrays["vectors"].astype(np.float32), arrays["times_s"])
    return loaded


def load_training_data(
    gt_path: Path,
    truth: dict[str, Any],
    cache_dir: Path,
    descriptor: Descriptor,
    config: TrainConfig,
    on_video: Callable[[str], None] | None = None,
) -> TrainingData:
    """Encode (or load) the train split and hold out ``validation_fraction`` of its queries."""
    encoded = encode_dataset(gt_path, truth, cache_dir, descriptor, config.views, on_video)
    background_set = descriptor.background
    videos = {}
    for key, (vectors, times_s) in encoded.items():
        videos[key] = Piece(
            key, vectors, times_s, background_similarity(vectors, background_set, BACKGROUND_RANK)
        )
    references = [v["path"] for v in truth["references"] if v["split"] == TRAIN_SPLIT]
    queries = [v["path"] for v in truth["queries"] if v["split"] == TRAIN_SPLIT]
    copies = {
        q["path"]: [
            CopyTruth(
                c["reference"], c["query_start"], c["query_end"], c["reference_start"], c["reference_end"]
            )
            for c in q["copies"]
        ]
        for q in truth["queries"]
        if q["split"] == TRAIN_SPLIT
    }
    order = np.random.default_rng(config.seed).permutation(len(queries))
    n_val = max(1, round(len(queries) * config.validation_fraction))
    data = TrainingData(
        videos=videos,
        sha256={v["path"]: v["sha256"] for kind in ("references", "queries") for v in truth[kind]},
        references=references,
        train_queries=[queries[i] for i in order[n_val:]],
        validation_queries=[queries[i] for i in order[:n_val]],
        copies=copies,
    )
    data.candidates = {q: rank_references(data, q)[: config.candidates] for q in queries}
    return data


def contrast(query: list[Piece], reference: list[Piece]) -> np.ndarray:
    """The contrast map of two sequences of pieces (as ``vcopy.similarity.similarity_map``: the
    query side with its views, the reference side as the library stores it)."""
    return similarity_map(
        np.concatenate([p.vectors for p in query], axis=1),
        np.concatenate([p.vectors[0] for p in reference]),
        np.concatenate([p.background for p in query], axis=1),
    )


def rank_references(data: TrainingData, query: str) -> list[str]:
    """References by retrieval score: the sum over query frames of their best positive contrast."""
    q = data.videos[query]
    scores = [
        float(np.maximum(contrast([q], [data.videos[r]]).max(axis=1), 0).sum()) for r in data.references
    ]
    return [data.references[i] for i in np.argsort(scores)[::-1]]


def copy_boxes(query: list[Piece], reference: list[Piece], copies: dict[str, list[CopyTruth]]) -> np.ndarray:
    """Ground-truth boxes on the map of two sequences: [n, 4] first/last row, first/last column."""
    boxes = []
    row0 = 0
    for qp in query:
        col0 = 0
        for rp in reference:
            for c in copies.get(qp.key, []):
                if c.reference != rp.key:
                    continue
                rows = np.flatnonzero((qp.times_s >= c.query_start_s) & (qp.times_s <= c.query_end_s))
                cols = np.flatnonzero((rp.times_s >= c.reference_start_s) & (rp.times_s <= c.reference_end_s))
                if len(rows) and len(cols):
                    boxes.append((row0 + rows[0], row0 + rows[-1], col0 + cols[0], col0 + cols[-1]))
            col0 += len(rp.times_s)
        row0 += len(qp.times_s)
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def _resampled(piece: Piece, rng: np.random.Generator) -> Piece:
    """The piece played at another rate: frames repeated (slower) or skipped (faster)."""
    rate = float(rng.choice([0.5, 0.75, 1.5, 2.0]))
    idx = np.floor(np.arange(0, len(piece.times_s), rate)).astype(int)
    return Piece(piece.key, piece.vectors[:, idx], piece.times_s[idx], piece.background[:, idx])


def _log_uniform(rng: np.random.Generator, high: int) -> int:
    """A whole number in 1..``high``, small ones as likely as large ones in log scale."""
    return int(np.exp(rng.uniform(0, np.log(high + 1))))


def _part(piece: Piece, frames: np.ndarray) -> Piece:
    """The ``frames`` (a mask or rows) of a piece, under a key that no ground truth names."""
    return Piece("chained", piece.vectors[:, frames], piece.times_s[frames], piece.background[:, frames])


def _static(source: Piece, rng: np.random.Generator) -> Piece:
    """A run of one repeated frame (a still image, a title card): matches nothing as a copy."""
    i, n = int(rng.integers(len(source.times_s))), int(rng.integers(5, 40))
    return Piece(
        "static",
        np.repeat(source.vectors[:, i : i + 1], n, 1),
        np.zeros(n),
        np.repeat(source.background[:, i : i + 1], n, 1),
    )


class MapSampler:
    """Random training maps with their boxes (normalised xywh), as described in the module doc."""

    def __init__(self, data: TrainingData, config: TrainConfig, rng: np.random.Generator) -> None:
        self.data, self.config, self.rng = data, config, rng

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """A contrast map and its ground-truth boxes (inclusive first/last row, first/last column)."""
        similarity, boxes, _, _ = self.sample_with_frames()
        return similarity, boxes

    def sample_with_frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``sample()``, and the frame vectors along each axis (query [n, dim], reference [m, dim]:
        each frame's own vector, as a key-frame network reads them)."""
        kind, cfg = self.rng.random(), self.config
        chained = np.zeros((0, 4))
        if kind < cfg.chain_fraction:
            query, reference, chained = self._chain()
        elif kind < cfg.chain_fraction + cfg.composite_fraction:
            query, reference = self._composite()
        else:
            query, reference = self._pair()
        similarity = contrast(query, reference)
        boxes = np.concatenate([copy_boxes(query, reference, self.data.copies), chained])
        if self.rng.random() < cfg.faint_fraction:
            _fade(similarity, boxes, float(self.rng.uniform(0.35, 1.0)))
        frames = [np.concatenate([p.vectors[0] for p in side]) for side in (query, reference)]
        return self._augment(similarity), boxes, frames[0], frames[1]

    def _pair(self) -> tuple[list[Piece], list[Piece]]:
        d, rng = self.data, self.rng
        q = d.train_queries[rng.integers(len(d.train_queries))]
        copied = [c.reference for c in d.copies[q]]
        if copied and rng.random() < 0.6:
            r = copied[rng.integers(len(copied))]
        elif (hard := [r for r in d.candidates[q] if r not in copied]) and rng.random() < 0.8:
            r = hard[rng.integers(len(hard))]
        else:
            r = d.references[rng.integers(len(d.references))]
        query = [d.videos[q]] if rng.random() < 0.7 else [_resampled(d.videos[q], rng)]
        return query, [d.videos[r]]

    def _composite(self) -> tuple[list[Piece], list[Piece]]:
        d, rng, cfg = self.data, self.rng, self.config
        n_q = min(len(d.train_queries), _log_uniform(rng, cfg.max_composite_queries))
        n_r = min(len(d.references), _log_uniform(rng, cfg.max_composite_references))
        queries = [d.videos[d.train_queries[i]] for i in rng.choice(len(d.train_queries), n_q, replace=False)]
        queries = [_resampled(p, rng) if rng.random() < 0.2 else p for p in queries]
        refs = [d.references[i] for i in rng.choice(len(d.references), n_r, replace=False)]
        copied = [c.reference for q in queries for c in d.copies.get(q.key, [])]
        if copied and rng.random() < 0.8:  # make sure a copy is on the map
            refs[rng.integers(n_r)] = copied[rng.integers(len(copied))]
        if rng.random() < 0.15:  # repeated content: one reference twice
            refs.insert(int(rng.integers(n_r + 1)), refs[rng.integers(n_r)])
        reference = [d.videos[r] for r in refs]
        for seq in (queries, reference):
            if rng.random() < 0.3:
                seq.insert(int(rng.integers(len(seq) + 1)), _static(seq[rng.integers(len(seq))], rng))
        return queries, reference

    def _chain(self) -> tuple[list[Piece], list[Piece], np.ndarray]:
        """One long copy: the copied parts of several queries laid end to end against their source
        parts in the same order (a band as long as all of them), between unrelated videos."""
        d, rng, cfg = self.data, self.rng, self.config
        with_copies = [q for q in d.train_queries if d.copies[q]]
        n = min(len(with_copies), int(rng.integers(2, cfg.max_chain + 1)))
        query_parts, reference_parts, sources = [], [], set()
        for i in rng.choice(len(with_copies), n, replace=False):
            c = d.copies[with_copies[i]][rng.integers(len(d.copies[with_copies[i]]))]
            q, r = d.videos[with_copies[i]], d.videos[c.reference]
            rows = (q.times_s >= c.query_start_s) & (q.times_s <= c.query_end_s)
            cols = (r.times_s >= c.reference_start_s) & (r.times_s <= c.reference_end_s)
            if c.reference not in sources and rows.any() and cols.any():
                query_parts.append(_part(q, rows))
                reference_parts.append(_part(r, cols))
                sources.add(c.reference)
        unrelated_queries = [q for q in d.train_queries if not {c.reference for c in d.copies[q]} & sources]
        unrelated_references = [r for r in d.references if r not in sources]
        n_q = min(len(unrelated_queries), _log_uniform(rng, cfg.max_composite_queries + 1) - 1)
        n_r = min(len(unrelated_references), _log_uniform(rng, cfg.max_composite_references + 1) - 1)
        query_pad = [d.videos[unrelated_queries[i]] for i in rng.choice(len(unrelated_queries), n_q, False)]
        reference_pad = [
            d.videos[unrelated_references[i]] for i in rng.choice(len(unrelated_references), n_r, False)
        ]
        q_cut, r_cut = int(rng.integers(n_q + 1)), int(rng.integers(n_r + 1))
        query = query_pad[:q_cut] + query_parts + query_pad[q_cut:]
        reference = reference_pad[:r_cut] + reference_parts + reference_pad[r_cut:]
        row0 = sum(len(p.times_s) for p in query_pad[:q_cut])
        col0 = sum(len(p.times_s) for p in reference_pad[:r_cut])
        rows_total = sum(len(p.times_s) for p in query_parts)
        cols_total = sum(len(p.times_s) for p in reference_parts)
        box = np.array([[row0, row0 + rows_total - 1, col0, col0 + cols_total - 1]], dtype=np.float64)
        return query, reference, box if query_parts else np.zeros((0, 4))

    def _augment(self, similarity: np.ndarray) -> np.ndarray:
        rng = self.rng
        out = similarity + rng.normal(0, rng.uniform(0, 0.05), similarity.shape).astype(np.float32)
        if rng.random() < 0.3:  # band dropout: rows or columns lose their signal
            axis = int(rng.integers(2))
            n = out.shape[axis]
            width = int(rng.integers(1, max(2, n // 8)))
            start = int(rng.integers(0, max(1, n - width)))
            band = (
                (slice(start, start + width), slice(None))
                if axis == 0
                else (slice(None), slice(start, start + width))
            )
            out[band] = BACKGROUND_CONTRAST + rng.normal(0, 0.05, out[band].shape)
        return out


def _fade(similarity: np.ndarray, boxes: np.ndarray, strength: float) -> None:
    """Move the contrast inside each box towards the background, in place: heavily re-encoded or
    cropped copies give faint bands (a 2-minute copy in a 20 x 30-minute map is then a few dim
    pixels)."""
    for r0, r1, c0, c1 in boxes.astype(int):
        region = similarity[r0 : r1 + 1, c0 : c1 + 1]
        region -= BACKGROUND_CONTRAST
        region *= strength
        region += BACKGROUND_CONTRAST


def canvas_plans(shapes: list[tuple[int, int]], config: TrainConfig) -> list[Rendering]:
    """How a batch of maps is drawn: on one canvas, the width their median map would get."""
    widths = sorted(canvas_width(shape, config.input_size, config.max_aspect) for shape in shapes)
    return [Rendering.plan(shape, config.input_size, widths[len(widths) // 2]) for shape in shapes]


def box_targets(
    plans: list[Rendering], frame_boxes: list[np.ndarray], device: str
) -> dict[str, torch.Tensor]:
    """The detector's targets: each map's boxes (inclusive frame ranges) on its canvas."""
    boxes = [
        np.array([plan.box_xywh((b[0], b[1]), (b[2], b[3])) for b in found], dtype=np.float32).reshape(-1, 4)
        for plan, found in zip(plans, frame_boxes, strict=True)
    ]
    batch_idx = torch.cat([torch.full((len(b),), float(i)) for i, b in enumerate(boxes)])
    return {
        "batch_idx": batch_idx.to(device),
        "cls": torch.zeros(len(batch_idx), 1, device=device),
        "bboxes": torch.from_numpy(np.concatenate(boxes)).to(device),
    }


def _batch(sampler: MapSampler, config: TrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sampled maps drawn on one canvas and their boxes."""
    samples = [sampler.sample() for _ in range(config.batch_size)]
    plans = canvas_plans([m.shape for m, _ in samples], config)
    images = torch.from_numpy(render_maps([m for m, _ in samples], plans)).to(config.device)
    return images, box_targets(plans, [b for _, b in samples], config.device)


def validation_truth(gt_path: Path, data: TrainingData) -> dict[str, TrueQuery]:
    """Ground truth of the held-out queries, keyed by sha256, for ``vcopy.evaluate.score``."""
    held_out = {data.sha256[q] for q in data.validation_queries}
    return {sha: t for sha, t in load_ground_truth(gt_path, TRAIN_SPLIT).items() if sha in held_out}


def validate(
    detector: SimilarityPatternDetector,
    data: TrainingData,
    truth: dict[str, TrueQuery],
    thresholds: np.ndarray,
    keyframes: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, Scores]:
    """Localize held-out queries against their top candidates; (best threshold, its scores). With
    ``keyframes`` (frame vectors [n, dim] -> rows kept) references keep only their key frames and
    the maps are drawn on the full grid, as ``vcopy query`` draws them."""
    detector.score_threshold = float(thresholds.min())  # filtering later = thresholding first
    found: list[tuple[str, str, list[Segment]]] = []
    for q in data.validation_queries:
        qp = data.videos[q]
        maps = [_validation_map(qp, data.videos[r], keyframes) for r in data.candidates[q]]
        for r, segments in zip(data.candidates[q], detector.localize_batch(maps), strict=True):
            found.append((data.sha256[q], data.sha256[r], segments))
    best: tuple[float, Scores] | None = None
    for t in thresholds:
        predictions = {}
        for q, r, segments in found:
            kept = [s for s in segments if s.score >= t]
            if kept:
                boxes = [
                    (s.query_start_s, s.query_end_s, s.reference_start_s, s.reference_end_s) for s in kept
                ]
                predictions[(q, r)] = Prediction(max(s.score for s in kept), boxes)
        result = score(truth, predictions)
        if best is None or result.segment_f1 > best[1].segment_f1:
            best = (float(t), result)
    assert best is not None
    return best


def _validation_map(
    query: Piece, reference: Piece, keyframes: Callable[[np.ndarray], np.ndarray] | None
) -> MapInput:
    if keyframes is None:
        return contrast([query], [reference]), query.times_s, reference.times_s
    rows = keyframes(reference.vectors[0])
    kept = contrast([query], [_part(reference, rows)])
    return grid_map(kept, query.times_s, reference.times_s[rows], SamplingConfig().sample_fps)


def spd_weights(
    model: torch.nn.Module, config: TrainConfig, descriptor: str, threshold: float, extra: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format": WEIGHTS_FORMAT,
        "model_config": model_config(config.widths),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input_size": config.input_size,
        "max_aspect": config.max_aspect,
        "contrast_range": list(CONTRAST_RANGE),
        "score_threshold": threshold,
        "descriptor": descriptor,
        **extra,
    }


def save_torch(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def train_spd(
    gt_path: Path,
    out_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    command: str = "",
    on_video: Callable[[str], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> Path:
    """Train SPD on the train split of the dataset at ``gt_path``; returns the path of the best
    weights (``out_dir/spd.pt``; ``spd.onnx`` beside it is the same network as inference runs it).
    ``out_dir`` also gets ``last.pt`` (checkpoint, for ``resume``), ``train-log.jsonl`` (one line
    per epoch) and the feature cache."""
    last, best, log_path = out_dir / "last.pt", out_dir / "spd.pt", out_dir / "train-log.jsonl"
    resumed = load_weights(last) if resume and last.is_file() else None  # checked before any work
    if resumed is not None and _same_run(resumed.get("train_config")) != _same_run(_config_record(config)):
        raise VcopyError(f"{last}: made with other training settings; start a new run (drop --resume)")
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = read_dataset(gt_path)
    descriptor = create_descriptor(config.descriptor, device=config.device)
    data = load_training_data(gt_path, truth, out_dir / "features", descriptor, config, on_video)
    held_out_truth = validation_truth(gt_path, data)
    dataset = {"generator": truth.get("generator"), "split": TRAIN_SPLIT}
    model = build_model(model_config(config.widths)).to(config.device)
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)  # type: ignore[assignment]  # gains (dfl: the side loss)
    from ultralytics.utils.loss import v8DetectionLoss

    criterion = v8DetectionLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=5e-4)
    total = config.epochs * config.steps_per_epoch
    warmup = min(200, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)),
    )
    start_epoch, best_f1 = 0, -1.0

    def provenance(epoch: int) -> dict[str, Any]:
        return {
            "train_config": _config_record(config),
            "command": command,
            "dataset": dataset,
            "epoch": epoch,
        }

    def checkpoint(epoch: int, threshold: float) -> None:
        state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "best_f1": best_f1}
        save_torch(
            {**spd_weights(model, config, descriptor.name, threshold, provenance(epoch)), **state}, last
        )

    if resumed is not None:
        try:
            model.load_state_dict(resumed["state_dict"])
            load_training_state(optimizer, schedule, resumed["optimizer"], resumed["schedule"])
            start_epoch = bounded_int(resumed["epoch"], "epoch", 0, config.epochs)
            best_f1 = bounded_float(resumed["best_f1"], "best_f1", -1, 1)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise VcopyError(f"{last}: not a usable SPD training checkpoint ({exc})") from None
    else:
        log_path.unlink(missing_ok=True)
        checkpoint(0, 0.5)  # the untrained start: a valid checkpoint to resume from
    detector = SimilarityPatternDetector(weights_path=last)  # validates each epoch, with the live model:
    detector.network = TorchNetwork(model, config.device)
    thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        sampler = MapSampler(data, config, np.random.default_rng([config.seed, epoch]))
        torch.manual_seed(config.seed * 1000 + epoch)
        model.train()
        sums = np.zeros(3)
        for step in range(config.steps_per_epoch):
            images, targets = _batch(sampler, config)
            loss, items = criterion(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            schedule.step()
            sums += np.array([float(v) for v in items.values()])
            if on_step is not None:
                on_step(epoch * config.steps_per_epoch + step + 1, total)
        threshold, val = validate(detector, data, held_out_truth, thresholds)
        validation = {k: v for k, v in asdict(val).items() if isinstance(v, float)}
        if val.segment_f1 > best_f1:
            best_f1 = val.segment_f1
            record = {**provenance(epoch + 1), "validation": validation}
            save_torch(spd_weights(model, config, descriptor.name, threshold, record), best)
            write_atomically(best.with_suffix(".onnx"), export_onnx(best))
        checkpoint(epoch + 1, threshold)
        entry = EpochLog(
            epoch + 1,
            (epoch + 1) * config.steps_per_epoch,
            time.perf_counter() - started,
            dict(zip(criterion.loss_names, (sums / config.steps_per_epoch).round(4).tolist(), strict=True)),
            validation,
            threshold,
        )
        with log_path.open("a") as log:
            log.write(json.dumps(asdict(entry)) + "\n")
        if on_epoch is not None:
            on_epoch(entry)
    return best


def _same_run(record: Any) -> dict[str, Any] | None:
    """The settings a resumed run must share with its checkpoint (more epochs may be asked for)."""
    return {k: v for k, v in record.items() if k != "epochs"} if isinstance(record, dict) else None


def _config_record(config: TrainConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items() if k != "device"}
