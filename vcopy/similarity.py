"""Candidate retrieval (k-NN votes over the library) and query x reference similarity maps.

Maps are contrast maps: each query frame's similarities minus its background similarity, the
similarity of its ``rank``-th nearest frame in a fixed background set of unrelated footage (shipped
with the descriptor, so the normalisation does not drift as a library grows). A frame that
resembles everything (a generic scene, a plain colour) then stands out only where it resembles one
reference much more than it resembles unrelated footage, which is what a copy looks like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcopy.library import Library


@dataclass(frozen=True)
class Candidate:
    """A library video worth localizing against, with its retrieval score."""

    video_id: int
    score: float  # sum over query frames of the best contrast to this video's frames


def background_similarity(vectors: np.ndarray, background_set: np.ndarray, rank: int) -> np.ndarray:
    """Each frame's similarity to its ``rank``-th nearest (0 = nearest) frame of ``background_set``."""
    sims = np.asarray(vectors, dtype=np.float32) @ np.asarray(background_set, dtype=np.float32).T
    rank = min(rank, sims.shape[1] - 1)
    return -np.partition(-sims, rank, axis=1)[:, rank]


def retrieve(
    library: Library, query_vectors: np.ndarray, background: np.ndarray, knn: int, top: int
) -> list[Candidate]:
    """Search each query frame's ``knn`` nearest library frames; a video scores the sum, over query
    frames, of its best contrast (similarity minus the frame's ``background``) among them, and the
    ``top`` best-scoring videos are returned, best first."""
    if library.index.ntotal == 0 or len(query_vectors) == 0:
        return []
    k = min(knn, library.index.ntotal)
    sims, ids = library.index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)
    sims = sims - background[:, None]
    owners, _ = library.vector_owners(ids)
    valid = (owners >= 0) & (sims > 0)
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


def similarity_map(
    query_vectors: np.ndarray, reference_vectors: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """S[i, j] = <q_i, r_j> - background[i]: query frames along rows, reference frames along columns."""
    raw = np.asarray(query_vectors, dtype=np.float32) @ np.asarray(reference_vectors, dtype=np.float32).T
    return raw - background[:, None]
