"""Candidate retrieval (k-NN votes over the library) and query x reference similarity maps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcopy.library import Library


@dataclass(frozen=True)
class Candidate:
    """A library video worth localizing against, with its retrieval score."""

    video_id: int
    score: float  # sum over query frames of the best similarity to this video's frames


def rank_candidates(library: Library, query_vectors: np.ndarray, knn: int, top: int) -> list[Candidate]:
    """Search each query frame's ``knn`` nearest library frames; a video scores the sum, over query
    frames, of its best similarity among them. The ``top`` best-scoring videos are returned."""
    if library.index.ntotal == 0 or len(query_vectors) == 0:
        return []
    sims, ids = library.index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), min(knn, library.index.ntotal))
    owners, _ = library.vector_owners(ids)
    valid = owners >= 0
    frames = np.broadcast_to(np.arange(len(query_vectors))[:, None], owners.shape)[valid]
    videos, frame_sims = owners[valid], sims[valid]
    # best similarity per (video, query frame), then summed per video
    order = np.lexsort((-frame_sims, frames, videos))
    pairs = np.stack([videos[order], frames[order]], axis=1)
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
    video_ids, inverse = np.unique(pairs[first, 0], return_inverse=True)
    scores = np.bincount(inverse, weights=frame_sims[order][first])
    ranked = np.argsort(-scores, kind="stable")[:top]
    return [Candidate(int(video_ids[i]), float(scores[i])) for i in ranked]


def similarity_map(query_vectors: np.ndarray, reference_vectors: np.ndarray) -> np.ndarray:
    """S[i, j] = <q_i, r_j>: query frames along rows, reference frames along columns."""
    return np.asarray(query_vectors, dtype=np.float32) @ np.asarray(reference_vectors, dtype=np.float32).T
