"""The copy dataset as training reads it: ``vcopy.synth.benchmark``'s train split, every video
encoded once with the production descriptor (cached per file), its copies, held-out queries and
each query's top retrieval candidates; and the contrast maps of sequences of videos laid end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcopy.config import QueryConfig
from vcopy.errors import VcopyError
from vcopy.features import Descriptor, FailedVideo, encode_videos
from vcopy.files import atomic_path
from vcopy.groundtruth import TrueQuery, load_ground_truth, vcopy_record
from vcopy.similarity import background_similarity, similarity_map
from vcopy.train.config import DataSplit
from vcopy.video import SamplingConfig

TRAIN_SPLIT = "train"
BACKGROUND_RANK = QueryConfig.background_rank


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
    generator: Any = None  # how the dataset was made, as its ground truth records it
    candidates: dict[str, list[str]] = field(default_factory=dict)  # query -> top-ranked references


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
    sample_fps: float = SamplingConfig.sample_fps,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(frame vectors [1 + V, N, dim] with ``views``, timestamps in s) of every ``split`` video of
    ``kinds`` by dataset path, sampled at ``sample_fps``, cached per file (by sha256, descriptor,
    views and a rate other than the default)."""
    entries = [v for kind in kinds for v in truth[kind] if v["split"] == split]
    cache_dir.mkdir(parents=True, exist_ok=True)
    rate = [] if sample_fps == SamplingConfig.sample_fps else [f"{sample_fps:g}fps"]
    tag = "-".join([descriptor.name.replace("/", "_"), *views, *rate])

    def cache(entry: dict[str, Any]) -> Path:
        return cache_dir / f"{entry['sha256']}-{tag}.npz"

    missing = {Path(gt_path).parent / e["path"]: e for e in entries if not cache(e).is_file()}
    sampling = SamplingConfig(sample_fps=sample_fps, frame_size=descriptor.frame_size)
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
    cache_dir: Path,
    descriptor: Descriptor,
    split: DataSplit,
    on_video: Callable[[str], None] | None,
) -> TrainingData:
    """Read the dataset, encode (or load) its train split and hold out ``split.validation_fraction``
    of its queries."""
    truth = read_dataset(gt_path)
    encoded = encode_dataset(gt_path, truth, cache_dir, descriptor, split.views, on_video)
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
    order = np.random.default_rng(split.seed).permutation(len(queries))
    n_val = max(1, round(len(queries) * split.validation_fraction))
    data = TrainingData(
        videos=videos,
        sha256={v["path"]: v["sha256"] for kind in ("references", "queries") for v in truth[kind]},
        references=references,
        train_queries=[queries[i] for i in order[n_val:]],
        validation_queries=[queries[i] for i in order[:n_val]],
        copies=copies,
        generator=truth.get("generator"),
    )
    data.candidates = {q: rank_references(data, q)[: split.candidates] for q in queries}
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


def part(piece: Piece, frames: np.ndarray) -> Piece:
    """The ``frames`` (a mask or rows) of a piece, under a key that no ground truth names."""
    return Piece("chained", piece.vectors[:, frames], piece.times_s[frames], piece.background[:, frames])


def validation_truth(gt_path: Path, data: TrainingData) -> dict[str, TrueQuery]:
    """Ground truth of the held-out queries, keyed by sha256, for ``vcopy.evaluate.score``."""
    held_out = {data.sha256[q] for q in data.validation_queries}
    return {sha: t for sha, t in load_ground_truth(gt_path, TRAIN_SPLIT).items() if sha in held_out}
