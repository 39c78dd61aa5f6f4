"""Learned whitening of frame descriptors (Radenović et al., 2018), fitted on known copy pairs.

Matching pairs (a frame and the same frame after a copy transformation) give the covariance of
what a copy changes; whitening with its inverse square root suppresses those directions. The
whitened descriptors of many frames are then rotated onto their principal axes and the ``dim``
strongest are kept, so that what distinguishes one picture from another is what remains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class LearnedWhitening:
    """``apply(x)`` = L2-normalise(projection @ (x - mean)).

    ``background`` holds whitened frames of unrelated videos: a fixed set against which a frame's
    similarities are normalised (what a frame typically scores against footage it is not a copy
    of), so that thresholds do not drift as a library grows."""

    mean: np.ndarray  # float32 [raw_dim]
    projection: np.ndarray  # float32 [dim, raw_dim]
    background: np.ndarray  # float32 [n_frames, dim]
    provenance: dict[str, object]  # how it was made

    @property
    def dim(self) -> int:
        return int(self.projection.shape[0])

    def apply(self, x: np.ndarray) -> np.ndarray:
        return l2_normalize((np.asarray(x, dtype=np.float32) - self.mean) @ self.projection.T)

    def save(self, path: Path) -> None:
        tmp = Path(path).with_suffix(".tmp.npz")
        np.savez(
            tmp,
            mean=self.mean,
            projection=self.projection,
            background=self.background,
            provenance=json.dumps(self.provenance),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LearnedWhitening:
        with np.load(path) as data:
            return cls(
                data["mean"].astype(np.float32),
                data["projection"].astype(np.float32),
                data["background"].astype(np.float32),
                json.loads(str(data["provenance"])),
            )


def fit_learned_whitening(
    anchors: np.ndarray,
    positives: np.ndarray,
    frames: np.ndarray,
    dim: int,
    shrinkage: float = 0.1,
    provenance: dict[str, object] | None = None,
) -> LearnedWhitening:
    """Fit on matching pairs (``anchors[i]`` is a copy of ``positives[i]``) and on ``frames``, a
    sample of unrelated frames (which, whitened, become the background set). ``shrinkage`` pulls
    the pair covariance towards a multiple of the identity, which keeps the inverse stable when
    pairs are few."""
    diff = np.asarray(anchors, dtype=np.float64) - np.asarray(positives, dtype=np.float64)
    pair_cov = diff.T @ diff / len(diff)
    isotropic = np.trace(pair_cov) / len(pair_cov) * np.eye(len(pair_cov))
    pair_cov = (1 - shrinkage) * pair_cov + shrinkage * isotropic
    values, vectors = np.linalg.eigh(pair_cov)
    whiten = vectors @ np.diag(values**-0.5) @ vectors.T
    mean = np.asarray(frames, dtype=np.float64).mean(axis=0)
    whitened = (frames - mean) @ whiten.T
    spread, axes = np.linalg.eigh(whitened.T @ whitened / len(whitened))
    keep = np.argsort(-spread)[:dim]
    projection = axes[:, keep].T @ whiten
    whitening = LearnedWhitening(
        mean.astype(np.float32),
        projection.astype(np.float32),
        np.zeros((0, dim), dtype=np.float32),
        {**(provenance or {}), "pairs": len(diff), "frames": len(frames), "dim": dim, "shrinkage": shrinkage},
    )
    return replace(whitening, background=whitening.apply(frames))
