"""Candidate retrieval (k-NN votes over the library's approximate index, re-ranked on exact
vectors) and query x reference similarity maps.

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
    """Each frame's similarity to its ``rank``-th nearest (0 = nearest) frame of ``background_set``:
    [N] for vectors [N, dim], [V, N] for the views of frames [V, N, dim]."""
    vectors = np.asarray(vectors, dtype=np.float32)
    sims = vectors.reshape(-1, vectors.shape[-1]) @ np.asarray(background_set, dtype=np.float32).T
    rank = min(rank, sims.shape[1] - 1)
    return (-np.partition(-sims, rank, axis=1)[:, rank]).reshape(vectors.shape[:-1])


def retrieve(
    library: Library, query_vectors: np.ndarray, background: np.ndarray, knn: int, top: int
) -> list[Candidate]:
    """Search each query frame's ``knn`` nearest library frames in the library's approximate index;
    a video scores the sum, over query frames, of its best contrast (similarity minus the frame's
    ``background``) among them, and the ``top`` best-scoring videos are returned, best first. Views
    of frames ([V, N, dim], background [V, N]) count as their frame: its best view counts."""
    query_vectors = np.asarray(query_vectors, dtype=np.float32)
    n_frames = query_vectors.shape[-2]
    if n_frames == 0:
        return []
    flat = np.ascontiguousarray(query_vectors.reshape(-1, query_vectors.shape[-1]))
    sims, owners, _ = library.search(flat, knn)
    if sims.shape[1] == 0:
        return []
    sims = sims - np.asarray(background).reshape(-1)[:, None]
    valid = (owners >= 0) & (sims > 0)
    frame_of_row = np.arange(len(flat)) % n_frames
    frames = np.broadcast_to(frame_of_row[:, None], owners.shape)[valid]
    return _ranked(owners[valid], frames, sims[valid], top)


def exact_score(contrast: np.ndarray) -> float:
    """A candidate's score on its exact contrast map: the sum over query frames of their best
    positive contrast to the reference (what ``retrieve`` estimates from the index's hits)."""
    if contrast.size == 0:
        return 0.0
    return float(np.maximum(contrast.max(axis=1), 0).sum())


def _ranked(videos: np.ndarray, frames: np.ndarray, frame_sims: np.ndarray, top: int) -> list[Candidate]:
    """Best similarity per (video, query frame), summed per video; the ``top`` videos, best first."""
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
    """S[i, j] = <q_i, r_j> - background[i]: query frames along rows, reference frames along columns.
    For the views of query frames ([V, N, dim], background [V, N]) a cell is the best view's."""
    views = np.asarray(query_vectors, dtype=np.float32).reshape(-1, *np.shape(query_vectors)[-2:])
    backgrounds = np.asarray(background).reshape(len(views), -1)
    reference_vectors = np.asarray(reference_vectors, dtype=np.float32)
    contrast = views[0] @ reference_vectors.T - backgrounds[0][:, None]
    for view, view_background in zip(views[1:], backgrounds[1:], strict=True):
        np.maximum(contrast, view @ reference_vectors.T - view_background[:, None], out=contrast)
    return contrast
