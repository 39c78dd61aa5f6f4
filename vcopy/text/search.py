"""Ranking library videos for a text query.

Each library video has one vector in a text space: the mean of its frames' vectors, which come from
what the library stores (``ZeroShotSpace``: the frames' ImageNet classes; ``TrainedSpace``: a model
made by ``vcopy train text`` over the frames' descriptors and classes); they live in a second FAISS
index, ``LIB/text/<space>.faiss`` (ids are library video ids). ``sync_text_index`` brings it up to
date with the library from what the library stores, never decoding a video again: ``vcopy index``
calls it after indexing, and a search calls it first
(so a library indexed before text search gets its vectors on first use). A query is embedded by the
text encoder, the index gives the best videos, and each one's best moment is the run of frames
around its best-matching frame.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from vcopy.errors import VcopyError
from vcopy.files import write_atomically
from vcopy.library import Library, LibraryVideo
from vcopy.text.encoder import TextEncoder
from vcopy.text.zeroshot import TEXT_DIR, video_vector, zero_shot_space
from vcopy.video import frame_span_s

MOMENT_FRACTION = 0.9  # frames next to the best one stay in the moment while they score this much of it


@dataclass(frozen=True)
class Moment:
    """Where in a video the query matches best: a span and its best frame, in seconds."""

    start_s: float
    end_s: float
    best_s: float


@dataclass(frozen=True)
class TextHit:
    path: str
    sha256: str
    score: float  # cosine similarity of the query and the video in the text space
    moment: Moment


@dataclass(frozen=True)
class TextQueryResult:
    text: str
    hits: list[TextHit]


@dataclass(frozen=True)
class TextIndexSync:
    """What ``sync_text_index`` did."""

    added: int
    removed: int
    not_searchable: list[str]  # indexed by an older vcopy without what this space reads: index them again


class TextSpace(Protocol):
    """Where texts and library frames meet: L2-normalised vectors of one dimension."""

    name: str
    encoder: TextEncoder

    @property
    def models(self) -> list[dict[str, str]]: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def library_frames(self, library: Library, video_id: int) -> np.ndarray | None: ...


def _paths(library: Library, space: TextSpace) -> tuple[Path, Path]:
    folder = library.root / TEXT_DIR
    stem = space.name.replace("/", "-")
    return folder / f"{stem}.faiss", folder / f"{stem}.json"


def _load(
    index_path: Path, info_path: Path, dim: int, library: Library, videos: dict[int, LibraryVideo]
) -> Any:
    """The saved text index, or an empty one (``sync_text_index`` then rebuilds it from the
    library: it is derived data) where it is missing, damaged, not what vcopy writes, or not built
    from this library's videos as they are now (its info file records the library's identity, the
    index file's SHA-256 and each video's SHA-256: another library's index is never used)."""
    empty = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        data = np.fromfile(index_path, dtype=np.uint8)
        if not isinstance(info, dict) or not isinstance(info.get("videos"), dict):
            return empty
        if info.get("library_id") != library.meta.get("library_id"):
            return empty
        if info.get("index_sha256") != hashlib.sha256(data.data).hexdigest():
            return empty
        index = faiss.deserialize_index(data)
    except (OSError, ValueError, RuntimeError):
        return empty
    if not isinstance(index, faiss.IndexIDMap2) or index.d != dim:
        return empty
    built_from = info["videos"]
    for video_id in faiss.vector_to_array(index.id_map).tolist() if index.ntotal else []:
        video = videos.get(int(video_id))
        if video is not None and built_from.get(str(video_id)) != _short(video.sha256):
            return empty
    return index


def _short(sha256: str) -> str:
    return sha256[:16]


def sync_text_index(library: Library, space: TextSpace) -> tuple[Any, TextIndexSync]:
    """The text index of ``library`` in ``space``, updated (and saved, when the library folder is
    writable) for videos added or removed since it was last written."""
    index_path, info_path = _paths(library, space)
    videos = {v.id: v for v in library.videos()}
    index = _load(index_path, info_path, space.encoder.dim, library, videos)
    stored = faiss.vector_to_array(index.id_map).astype(np.int64) if index.ntotal else np.zeros(0, np.int64)
    gone = np.setdiff1d(stored, np.array(list(videos), dtype=np.int64))
    if len(gone):
        index.remove_ids(gone)
    new_ids, new_vectors, without = [], [], []
    for video_id in sorted(set(videos) - set(stored.tolist())):
        frames = space.library_frames(library, video_id)
        if frames is None:
            without.append(videos[video_id].path)
            continue
        new_ids.append(video_id)
        new_vectors.append(video_vector(frames))
    if new_ids:
        index.add_with_ids(np.stack(new_vectors).astype(np.float32), np.array(new_ids, dtype=np.int64))
    if (len(gone) or new_ids or not info_path.is_file()) and os.access(library.root, os.W_OK):
        index_path.parent.mkdir(exist_ok=True)
        data = faiss.serialize_index(index)
        held = faiss.vector_to_array(index.id_map).tolist() if index.ntotal else []
        info = {
            "space": space.name,
            "videos": {str(i): _short(videos[i].sha256) for i in held},
            "library_id": library.meta.get("library_id"),
            "library_state": library.state_id,
            "index_sha256": hashlib.sha256(data.data).hexdigest(),
        }
        write_atomically(index_path, data.tobytes())
        write_atomically(info_path, (json.dumps(info, indent=1) + "\n").encode())
    return index, TextIndexSync(len(new_ids), len(gone), without)


def open_text_space(
    library: Library, encoder: TextEncoder | None = None, model_path: Path | None = None
) -> TextSpace:
    """The zero-shot text space (class embeddings cached in the library's text folder), or the
    space of the model at ``model_path``."""
    if model_path is not None:
        from vcopy.text.trained import TrainedSpace  # torch, only for a trained model

        return TrainedSpace(model_path, library, encoder)
    return zero_shot_space(library, encoder)


class TextSearcher:
    """Ranks the videos of a library for text queries; models are loaded once, for many queries."""

    def __init__(
        self, library: Library, encoder: TextEncoder | None = None, model_path: Path | None = None
    ) -> None:
        if not library.pipeline_spec.text_features:
            raise VcopyError(
                f"{library.root}: indexed with --no-text (no text features to search); index the videos "
                "into a library without --no-text to search them by text"
            )
        self.library = library
        self.space = open_text_space(library, encoder, model_path)
        self.encoder = self.space.encoder
        self.index, self.sync = sync_text_index(library, self.space)
        self.frame_step_s = library.sampling.step_s

    @property
    def models(self) -> list[dict[str, str]]:
        return [*self.encoder.models, *self.space.models]

    def search(self, texts: Sequence[str], top: int = 10) -> list[TextQueryResult]:
        """The ``top`` videos for each text, best first."""
        queries = self.space.embed_texts(list(texts))
        k = min(top, int(self.index.ntotal))
        if k == 0:
            return [TextQueryResult(t, []) for t in texts]
        scores, ids = self.index.search(queries, k)
        return [
            TextQueryResult(
                text,
                [self._hit(int(i), float(s), q) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0],
            )
            for text, q, row_ids, row_scores in zip(texts, queries, ids, scores, strict=True)
        ]

    def _hit(self, video_id: int, score: float, query: np.ndarray) -> TextHit:
        video = self.library.video(video_id)
        frames = self.space.library_frames(self.library, video_id)
        times = self.library.timestamps_of(video_id)
        assert frames is not None  # only videos with classes are in the index
        return TextHit(video.path, video.sha256, score, self._moment(frames @ query, times))

    def _moment(self, frame_scores: np.ndarray, times_s: np.ndarray) -> Moment:
        """The run of adjacent frames around the best one that score at least ``MOMENT_FRACTION``
        of it."""
        best = int(np.argmax(frame_scores))
        keep = frame_scores >= frame_scores[best] * MOMENT_FRACTION
        first, last = best, best
        while first > 0 and keep[first - 1]:
            first -= 1
        while last < len(keep) - 1 and keep[last + 1]:
            last += 1
        start_s, end_s = frame_span_s(times_s, first, last, self.frame_step_s)
        return Moment(start_s, end_s, float(times_s[best]))


def search_report(
    searcher: TextSearcher, results: Sequence[TextQueryResult], started_utc: str
) -> dict[str, Any]:
    """Text-search results as JSON (schema ``vcopy.text-search/1``): every video by path and
    SHA-256, its score and best moment, and the models that ranked it."""
    import vcopy

    library = searcher.library
    return {
        "schema": "vcopy.text-search/1",
        "vcopy_version": vcopy.__version__,
        "created_utc": started_utc,
        "models": searcher.models,
        "library": {
            "path": str(library.root.resolve()),
            "videos": len(library),
            "state_id": library.state_id,
        },
        "queries": [
            {
                "text": r.text,
                "results": [
                    {
                        "rank": rank,
                        "path": hit.path,
                        "sha256": hit.sha256,
                        "score": round(hit.score, 6),
                        "moment": {
                            "start": round(hit.moment.start_s, 3),
                            "end": round(hit.moment.end_s, 3),
                            "best_frame": round(hit.moment.best_s, 3),
                        },
                    }
                    for rank, hit in enumerate(r.hits, 1)
                ],
            }
            for r in results
        ],
    }
