"""The library's approximate-nearest-neighbour index: a FAISS index built from an ``index_factory``
string, behind a small protocol (``add``, ``remove_video``, ``search``, ``serialize``).

It is never the only copy of a vector: the exact vectors live in the library's vector files
(``vcopy.library``), so this index can always be rebuilt from them (``vcopy library rebuild-index``)
and candidates it finds are re-ranked on exact vectors (``vcopy.similarity``).

Specs (``AnnSpec``, recorded in the library):

- ``auto`` (the default): ``Flat`` (exact inner product) until the library holds
  ``AUTO_IVF_VECTORS`` vectors, then ``IVF<n>,PQ<m>`` trained on the library's own vectors
  (``n`` about ``4 * sqrt(vectors)``, a power of two; ``m`` = dim / 8: 64 bytes a 512-d vector),
  searched with ``nprobe`` = ``AUTO_NPROBE``, its inverted lists on disk from
  ``AUTO_ONDISK_VECTORS`` on;
- any other FAISS ``index_factory`` string that FAISS can add ids to and remove ids from: ``Flat``,
  ``IVF<n>,Flat``, ``IVF<n>,PQ<m>``, ``IVF<n>,SQ8``, ...; options after semicolons: ``nprobe=N``,
  and ``ondisk`` for an IVF index whose inverted lists are a memory-mapped file
  (``IVF4096,PQ64;nprobe=32;ondisk``).

Tiers. An IVF index takes new vectors in a small exact ``delta`` first (an add is then as cheap in
a large library as in a small one) and encodes them into its lists ``DELTA_MAX_VECTORS`` at a time.
With ``ondisk`` the lists that were last merged are a read-only file (FAISS's
``OnDiskInvertedLists``); what came since sits in an in-memory IVF index of the same training,
removals from the file are hidden at search time, and ``merged_to_disk`` writes a new file with
everything (``vcopy.library`` does it when the in-memory part has grown enough). A search asks
every tier and keeps the best hits.

Vector ids are ``video_id << ROW_BITS | row``: a hit names its video and frame without a lookup.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from vcopy.files import sync

ROW_BITS = 24  # frames per video < 2**24 (16.7 M: 155 h at 30 sampled frames/s)
ROW_MASK = (1 << ROW_BITS) - 1
AUTO_IVF_VECTORS = 300_000  # an "auto" library moves from Flat to IVF-PQ here (about 83 h at 1 frame/s)
AUTO_ONDISK_VECTORS = 20_000_000  # ... and to on-disk lists here (5,600 h; 1.4 GB of PQ codes in RAM)
AUTO_NPROBE = 48
DELTA_MAX_VECTORS = 10_000  # new vectors an IVF index holds exactly before it encodes them
TRAINING_SAMPLES_PER_LIST = 40  # FAISS warns below 39 training vectors per inverted list
MAX_TRAINING_VECTORS = 200_000
# exact (flat) distances by matrix product from this many query vectors up: FAISS 1.15 ships 128,000,
# which leaves a query's few hundred vectors to a loop 3-4x slower than BLAS here
# (docs/benchmarks.md, Library scale)
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
    """How the index is built: a FAISS factory string (or ``auto``), its ``nprobe``, and whether its
    inverted lists are kept on disk."""

    factory: str = "auto"
    nprobe: int | None = None
    ondisk: bool = False

    @classmethod
    def parse(cls, text: str) -> AnnSpec:
        """``FACTORY[;nprobe=N][;ondisk]``; a ValueError names what is wrong."""
        factory, *options = (part.strip() for part in text.strip().split(";"))
        nprobe, ondisk = None, False
        for option in filter(None, options):
            match = re.fullmatch(r"nprobe\s*=\s*(\d+)", option)
            if option == "ondisk":
                ondisk = True
            elif match is None:
                raise ValueError(f"{option!r}: the options are nprobe=N and ondisk")
            else:
                nprobe = int(match[1])
                if not 1 <= nprobe <= 65536:
                    raise ValueError(f"nprobe {nprobe} is not in 1..65536")
        if not factory:
            raise ValueError("an empty index spec")
        _check_sizes(factory)
        spec = cls(factory, nprobe, ondisk)
        if factory != "auto":
            spec.build(8 * max(1, _pq_subquantizers(factory)))  # FAISS refuses what it cannot build
            if ondisk and not spec.lists:
                raise ValueError(f"{factory!r}: only an IVF index keeps its inverted lists on disk")
        return spec

    @property
    def lists(self) -> int:
        """Inverted lists of an IVF spec (0 for others)."""
        match = re.match(r"IVF(\d+)", self.factory)
        return int(match[1]) if match else 0

    def __str__(self) -> str:
        nprobe = f";nprobe={self.nprobe}" if self.nprobe is not None else ""
        return self.factory + nprobe + (";ondisk" if self.ondisk else "")

    def resolved(self, dim: int, n_vectors: int) -> AnnSpec:
        """The concrete spec for a library of ``n_vectors`` (``auto`` decided)."""
        if self.factory != "auto":
            return self
        if n_vectors < AUTO_IVF_VECTORS:
            return AnnSpec("Flat")
        lists = 2 ** round(math.log2(4 * math.sqrt(n_vectors)))
        return AnnSpec(
            f"IVF{lists},PQ{max(1, dim // 8)}",
            self.nprobe or AUTO_NPROBE,
            ondisk=self.ondisk or n_vectors >= AUTO_ONDISK_VECTORS,
        )

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


MAX_LISTS = 1 << 20  # inverted lists of an IVF spec
MAX_PQ_SUBQUANTIZERS = 256  # sub-quantizers (bytes per vector) of a PQ spec


def _check_sizes(factory: str) -> None:
    """Numbers of a factory string FAISS would take but cannot use (IVF0: every search fails) or
    would allocate without bound (PQ100000: a code book of gigabytes) are refused before FAISS
    builds anything."""
    lists = re.search(r"IVF(\d+)", factory)
    if lists and not 1 <= int(lists[1]) <= MAX_LISTS:
        raise ValueError(f"{factory!r}: IVF needs 1..{MAX_LISTS} inverted lists")
    pq = re.search(r"PQ(\d+)", factory)
    if pq and not 1 <= int(pq[1]) <= MAX_PQ_SUBQUANTIZERS:
        raise ValueError(f"{factory!r}: PQ needs 1..{MAX_PQ_SUBQUANTIZERS} sub-quantizers")
    if any(len(number) > 7 for number in re.findall(r"\d+", factory)):
        raise ValueError(f"{factory!r}: a number too large for an index spec")


def _pq_subquantizers(factory: str) -> int:
    match = re.search(r"PQ(\d+)", factory)
    return int(match[1]) if match else 1


def gpus() -> int:
    """GPUs FAISS can use here (0 with faiss-cpu, or with faiss-gpu and no GPU visible)."""
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """FAISS's on-disk lists print progress to the C stdout; keep it off ours (reports go there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def read_disk_tier(path: Path, spec: AnnSpec) -> Any:
    """An index whose inverted lists are on disk (read-only; the lists file beside ``path``)."""
    with _quiet_stdout():
        index = faiss.read_index(str(path), faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY)
    if spec.nprobe is not None:
        faiss.extract_index_ivf(index).nprobe = spec.nprobe
    return index


class AnnIndex:
    """An index of library vectors (``add`` / ``remove_video`` / ``search`` / ``serialize``): an
    in-memory FAISS index, for IVF specs with an exact delta of recent adds, and for ``ondisk``
    specs a read-only tier on disk (module docstring). With faiss-gpu and a visible GPU
    (``vcopy[gpu]``), training and search of the in-memory index run on the GPUs (what is written
    and what ids are removed from stays on the CPU)."""

    def __init__(self, index: Any, spec: AnnSpec, disk: Any = None) -> None:
        self.index = index  # in memory: takes adds and removals
        self.disk = disk  # the on-disk tier (read-only), or None
        self.spec = spec
        for tier in (index, disk):
            ivf = faiss.try_extract_index_ivf(tier) if tier is not None else None
            if ivf is not None and spec.nprobe is not None:
                ivf.nprobe = spec.nprobe
        self._delta = (
            None if isinstance(index, faiss.IndexIDMap2) else faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
        )
        self._hidden: dict[int, int] = {}  # video id -> frames: removed, still in the on-disk tier
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
    def deserialize(cls, data: np.ndarray, spec: AnnSpec, dim: int, disk: Any = None) -> AnnIndex:
        """An index from the bytes of its in-memory part (and its on-disk tier, already read); a
        RuntimeError or ValueError says why it is unusable."""
        index = faiss.deserialize_index(data)
        for tier in (index, disk):
            if tier is not None and tier.d != dim:
                raise ValueError(f"dimension {tier.d}, the library's is {dim}")
        return cls(index, spec, disk)

    @property
    def ntotal(self) -> int:
        """Vectors a search can find (hidden ones not counted)."""
        held = int(self.index.ntotal) + (int(self._delta.ntotal) if self._delta is not None else 0)
        return held + self.disk_vectors - sum(self._hidden.values())

    @property
    def memory_vectors(self) -> int:
        """Vectors in the in-memory part, the delta encoded (what ``serialize`` writes)."""
        return int(self.index.ntotal) + (int(self._delta.ntotal) if self._delta is not None else 0)

    @property
    def disk_vectors(self) -> int:
        return int(self.disk.ntotal) if self.disk is not None else 0

    @property
    def needs_training(self) -> bool:
        return not bool(self.index.is_trained)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not len(ids):
            return
        vectors, ids = np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64)
        target = self._delta if self._delta is not None else self.index
        target.add_with_ids(vectors, ids)
        self._on_gpus = None
        if self._delta is not None and self._delta.ntotal >= DELTA_MAX_VECTORS:
            self._encode_delta()

    def remove_video(self, video_id: int, n: int, on_disk: bool = False) -> int:
        """Remove a video's ``n`` vectors (``on_disk``: it is in the on-disk tier, where it is
        hidden); returns how many were there."""
        first = int(vector_ids(video_id, 1)[0])
        self._on_gpus = None
        if on_disk and self.disk is not None:
            self._hidden[video_id] = n
            return n
        removed = int(self.index.remove_ids(faiss.IDSelectorRange(first, first + n)))
        if self._delta is not None and self._delta.ntotal:
            removed += int(self._delta.remove_ids(faiss.IDSelectorRange(first, first + n)))
        return removed

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of each vector's ``k`` nearest; ids -1 where there are fewer."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        k = min(k, self.ntotal)
        if k == 0:
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        parts = []
        if self.index.ntotal:
            parts.append(self._memory_searcher(k).search(vectors, min(k, int(self.index.ntotal))))
        if self._delta is not None and self._delta.ntotal:
            parts.append(self._delta.search(vectors, min(k, int(self._delta.ntotal))))
        if self.disk is not None and self.disk.ntotal:
            extra = min(k, sum(self._hidden.values()))  # hits of hidden videos make room for others
            sims, ids = self.disk.search(vectors, min(k + extra, int(self.disk.ntotal)))
            if self._hidden:
                hidden = np.isin(split_ids(ids)[0], np.fromiter(self._hidden, np.int64))
                sims, ids = np.where(hidden, -np.inf, sims), np.where(hidden, -1, ids)
            parts.append((sims, ids))
        if len(parts) == 1 and parts[0][0].shape[1] == k:
            return parts[0]
        sims = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        sims = np.where(ids < 0, -np.inf, sims)
        best = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(sims, best, axis=1), np.take_along_axis(ids, best, axis=1)

    def serialize(self) -> np.ndarray:
        """The in-memory part's bytes (the delta encoded first)."""
        self._encode_delta()
        return faiss.serialize_index(self.index)

    def merged_to_disk(self, header: Path, lists: Path) -> None:
        """Write every searchable vector as a new on-disk tier (``header``: the index with its
        training; ``lists``: its inverted lists, in the same folder), which this index then
        searches; the in-memory part is left empty. Nothing is changed until both files are
        written and synced."""
        self._encode_delta()
        ivf = faiss.extract_index_ivf(self.index)
        merged = faiss.clone_index(self.index)  # the training, and the in-memory lists' codes
        on_disk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(lists))
        sources = faiss.InvertedListsPtrVector()  # type: ignore[attr-defined]
        for tier in (self.disk, self.index):
            if tier is not None and tier.ntotal:
                sources.push_back(faiss.extract_index_ivf(tier).invlists)
        with _quiet_stdout():
            total = on_disk.merge_from_multiple(sources.data(), sources.size(), False, False)
            merged_ivf = faiss.extract_index_ivf(merged)
            merged_ivf.replace_invlists(on_disk, True)
            on_disk.this.disown()  # type: ignore[attr-defined]
            merged.ntotal = merged_ivf.ntotal = total
            if self._hidden:
                ids = np.concatenate([vector_ids(v, n) for v, n in self._hidden.items()])
                merged.remove_ids(faiss.IDSelectorBatch(ids))
            faiss.write_index(merged, str(header))
        del merged, merged_ivf
        for path in (lists, header, header.parent):  # the files, then their names
            sync(path)
        self.disk = read_disk_tier(header, self.spec)
        self.index.reset()
        self._hidden.clear()
        self._on_gpus = None

    def _encode_delta(self) -> None:
        """Move the exact delta's vectors into the IVF lists."""
        if self._delta is None or not self._delta.ntotal:
            return
        n = int(self._delta.ntotal)
        vectors = self._delta.index.reconstruct_n(0, n)
        self.index.add_with_ids(vectors, faiss.vector_to_array(self._delta.id_map).astype(np.int64))
        self._delta.reset()
        self._on_gpus = None

    def _memory_searcher(self, k: int) -> Any:
        if gpus() and k <= 2048:  # FAISS's GPU k-NN limit
            if self._on_gpus is None:
                self._on_gpus = faiss.index_cpu_to_all_gpus(self.index)
            return self._on_gpus
        return self.index


def training_sample(n_vectors: int, spec: AnnSpec) -> int:
    """How many library vectors train an index of ``spec`` (0: it needs none)."""
    need = max(spec.lists * TRAINING_SAMPLES_PER_LIST, 256 * 40 if "PQ" in spec.factory else 0)
    return min(n_vectors, MAX_TRAINING_VECTORS, need) if need else 0
