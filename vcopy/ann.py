"""The library's approximate-nearest-neighbour index: a FAISS index built from an ``index_factory``
string, behind a small protocol (``add``, ``remove``, ``search``, ``serialize``).

It is never the only copy of a vector: the exact vectors live in the library's vector files
(``vcopy.library``), so this index can always be rebuilt from them (``vcopy library rebuild-index``)
and candidates it finds are re-ranked on exact vectors (``vcopy.similarity``).

Specs (``AnnSpec``, recorded in the library):

- ``auto`` (the default): ``Flat`` (exact inner product) until the library holds
  ``AUTO_IVF_VECTORS`` vectors, then ``IVF<n>,PQ<m>`` trained on the library's own vectors
  (``n`` about ``4 * sqrt(vectors)``, a power of two; ``m`` = dim / 8: 64 bytes a 512-d vector),
  searched with ``nprobe`` = ``AUTO_NPROBE``;
- any other FAISS ``index_factory`` string that FAISS can add ids to and remove ids from: ``Flat``,
  ``IVF<n>,Flat``, ``IVF<n>,PQ<m>``, ``IVF<n>,SQ8``, ...; ``nprobe`` after a semicolon
  (``IVF4096,PQ64;nprobe=32``).

Vector ids are ``video_id << ROW_BITS | row``: a hit names its video and frame without a lookup.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

ROW_BITS = 24  # frames per video < 2**24 (16.7 M: 155 h at 30 sampled frames/s)
ROW_MASK = (1 << ROW_BITS) - 1
AUTO_IVF_VECTORS = 300_000  # an "auto" library moves from Flat to IVF-PQ here (about 83 h at 1 frame/s)
AUTO_NPROBE = 48
TRAINING_SAMPLES_PER_LIST = 40  # FAISS warns below 39 training vectors per inverted list
MAX_TRAINING_VECTORS = 200_000
# exact (flat) distances by matrix product from this many query vectors up: FAISS 1.15 ships 128,000,
# which leaves a query's few hundred vectors to a loop 3-4x slower than BLAS here (README, Library scale)
faiss.cvar.distance_compute_blas_threshold = 20


def vector_ids(video_id: int, n: int) -> np.ndarray:
    """The ids of a video's ``n`` frames."""
    return (np.int64(video_id) << ROW_BITS) | np.arange(n, dtype=np.int64)


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(video id, frame row) of vector ids; -1 ids (no hit) give video -1."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.where(ids >= 0, ids >> ROW_BITS, -1), np.where(ids >= 0, ids & ROW_MASK, -1)


@dataclass(frozen=True)
class AnnSpec:
    """How the index is built: a FAISS factory string (or ``auto``) and its ``nprobe``."""

    factory: str = "auto"
    nprobe: int | None = None

    @classmethod
    def parse(cls, text: str) -> AnnSpec:
        """``FACTORY[;nprobe=N]``; a ValueError names what is wrong."""
        factory, _, options = text.strip().partition(";")
        factory = factory.strip()
        nprobe = None
        if options.strip():
            match = re.fullmatch(r"\s*nprobe\s*=\s*(\d+)\s*", options)
            if match is None:
                raise ValueError(f"{options.strip()!r}: the only option is nprobe=N")
            nprobe = int(match[1])
            if not 1 <= nprobe <= 65536:
                raise ValueError(f"nprobe {nprobe} is not in 1..65536")
        if not factory:
            raise ValueError("an empty index spec")
        spec = cls(factory, nprobe)
        if factory != "auto":
            spec.build(8 * max(1, _pq_subquantizers(factory)))  # FAISS refuses what it cannot build
        return spec

    @property
    def lists(self) -> int:
        """Inverted lists of an IVF spec (0 for others)."""
        match = re.match(r"IVF(\d+)", self.factory)
        return int(match[1]) if match else 0

    def __str__(self) -> str:
        return self.factory + (f";nprobe={self.nprobe}" if self.nprobe is not None else "")

    def resolved(self, dim: int, n_vectors: int) -> AnnSpec:
        """The concrete spec for a library of ``n_vectors`` (``auto`` decided)."""
        if self.factory != "auto":
            return self
        if n_vectors < AUTO_IVF_VECTORS:
            return AnnSpec("Flat")
        lists = 2 ** round(math.log2(4 * math.sqrt(n_vectors)))
        return AnnSpec(f"IVF{lists},PQ{max(1, dim // 8)}", self.nprobe or AUTO_NPROBE)

    def build(self, dim: int) -> Any:
        """An empty index of this (concrete) spec: inner product, ids added with the vectors."""
        try:
            index = faiss.index_factory(dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"{self.factory!r} is not a FAISS index_factory string FAISS can build") from exc
        if isinstance(index, faiss.IndexFlat):
            return faiss.IndexIDMap2(index)
        if not isinstance(faiss.try_extract_index_ivf(index), faiss.IndexIVF):
            raise ValueError(
                f"{self.factory!r}: vcopy keeps Flat or IVF indexes (FAISS can remove ids from those)"
            )
        return index


def _pq_subquantizers(factory: str) -> int:
    match = re.search(r"PQ(\d+)", factory)
    return int(match[1]) if match else 1


def gpus() -> int:
    """GPUs FAISS can use here (0 with faiss-cpu, or with faiss-gpu and no GPU visible)."""
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


class AnnIndex:
    """An index of library vectors (``add`` / ``remove`` / ``search`` / ``serialize``). With
    faiss-gpu and a visible GPU (``vcopy[gpu]``), training and search run on the GPUs (the index
    itself, what is written and what ids are removed from, stays on the CPU)."""

    def __init__(self, index: Any, spec: AnnSpec) -> None:
        self.index = index
        self.spec = spec
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None and spec.nprobe is not None:
            ivf.nprobe = spec.nprobe
        self._on_gpus: Any = None  # a GPU copy for search, made on first search, dropped on change

    @classmethod
    def trained(cls, spec: AnnSpec, dim: int, sample: np.ndarray) -> AnnIndex:
        """An empty index of concrete ``spec``, trained on ``sample`` where it needs training."""
        index = spec.build(dim)
        if not index.is_trained:
            sample = np.ascontiguousarray(sample, dtype=np.float32)
            if gpus():
                trained = faiss.index_cpu_to_all_gpus(index)
                trained.train(sample)
                index = faiss.index_gpu_to_cpu(trained)
            else:
                index.train(sample)
        return cls(index, spec)

    @classmethod
    def deserialize(cls, data: np.ndarray, spec: AnnSpec, dim: int) -> AnnIndex:
        """An index from its bytes; a RuntimeError or ValueError says why it is unusable."""
        index = faiss.deserialize_index(data)
        if index.d != dim:
            raise ValueError(f"dimension {index.d}, the library's is {dim}")
        return cls(index, spec)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def needs_training(self) -> bool:
        return not bool(self.index.is_trained)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
            self._on_gpus = None

    def remove_video(self, video_id: int, n: int) -> int:
        """Remove a video's ``n`` vectors; returns how many were there."""
        first = int(vector_ids(video_id, 1)[0])
        self._on_gpus = None
        return int(self.index.remove_ids(faiss.IDSelectorRange(first, first + n)))

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of each vector's ``k`` nearest; ids -1 where there are fewer."""
        if self.ntotal == 0:
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        searcher = self.index
        if gpus() and k <= 2048:  # FAISS's GPU k-NN limit
            if self._on_gpus is None:
                self._on_gpus = faiss.index_cpu_to_all_gpus(self.index)
            searcher = self._on_gpus
        sims, ids = searcher.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, self.ntotal))
        return sims, ids

    def serialize(self) -> np.ndarray:
        return faiss.serialize_index(self.index)


def training_sample(n_vectors: int, spec: AnnSpec) -> int:
    """How many library vectors train an index of ``spec`` (0: it needs none)."""
    need = max(spec.lists * TRAINING_SAMPLES_PER_LIST, 256 * 40 if "PQ" in spec.factory else 0)
    return min(n_vectors, MAX_TRAINING_VECTORS, need) if need else 0
