"""Text-to-video retrieval metrics: R@1/5/10 (percent of queries whose video ranks in the top K),
R@sum, median and mean rank (1-indexed). A rank counts the videos that score strictly higher than
the right one, so ties never help."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RetrievalMetrics:
    r1: float
    r5: float
    r10: float
    median_rank: float
    mean_rank: float
    queries: int

    @property
    def rsum(self) -> float:
        return self.r1 + self.r5 + self.r10


def ranks(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """1-indexed rank of each query's right video: ``scores`` [queries, videos], ``positive``
    [queries] the right video's column."""
    right = scores[np.arange(len(scores)), positive]
    return 1 + (scores > right[:, None]).sum(axis=1)


def retrieval_metrics(scores: np.ndarray, positive: np.ndarray) -> RetrievalMetrics:
    r = ranks(scores, positive)
    return RetrievalMetrics(
        r1=float((r <= 1).mean() * 100),
        r5=float((r <= 5).mean() * 100),
        r10=float((r <= 10).mean() * 100),
        median_rank=float(np.median(r)),
        mean_rank=float(r.mean()),
        queries=len(r),
    )
