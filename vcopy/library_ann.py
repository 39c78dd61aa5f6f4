"""The library's approximate index on disk: reading its files back checked against what the
library recorded (the index file and, with on-disk lists, its on-disk tier), and when an ``auto``
library has outgrown the index it has."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vcopy.ann import AnnIndex, AnnSpec, read_disk_tier
from vcopy.errors import LibraryError
from vcopy.library_db import faiss_reason
from vcopy.video import sha256_file

REBUILD_ADVICE = "rebuild it from the vector files with `vcopy library rebuild-index LIB`"


AUTO_REBUILD_GROWTH = 4  # an auto library's IVF index is trained again when its size calls for 4x the lists


def outgrown(built: AnnSpec, concrete: AnnSpec) -> bool:
    """Whether an ``auto`` library has outgrown the index it has: Flat where IVF is due, lists in
    memory where they go on disk, or a quarter of the inverted lists its size calls for (each list
    would then be scanned at four times the length ``auto`` plans for)."""
    return (
        (built.factory == "Flat" and concrete.factory != "Flat")
        or (concrete.ondisk and not built.ondisk)
        or (built.lists > 0 and concrete.lists >= AUTO_REBUILD_GROWTH * built.lists)
    )


DISK_TIER_FILES = ("ann_disk_file", "ann_disk_lists")


DISK_TIER_KEYS = (
    *DISK_TIER_FILES,
    "ann_disk_sha256",
    "ann_disk_lists_bytes",
    "ann_disk_lists_sha256",
    "ann_disk_lists_samples",
    "ann_disk_vectors",
)


def forget_videos(ann: AnnIndex, removed: list[tuple[int, int, int]]) -> None:
    """Take deleted videos (id, frames, in_ann) out of the in-memory index."""
    for video_id, frames, in_ann in removed:
        ann.remove_video(video_id, frames, on_disk=in_ann == 2)


LISTS_SAMPLES = 8  # 1 MiB blocks of an on-disk lists file hashed when it is opened


_SAMPLE_BYTES = 1 << 20


def lists_samples(path: Path, recorded: str | None = "") -> str | None:
    """``offset:sha256`` of ``LISTS_SAMPLES`` blocks spread over a file (its first and last among
    them), at the offsets ``recorded`` names when given (None when nothing was recorded: a tier
    written before vcopy recorded samples)."""
    if recorded is None:
        return None
    size = path.stat().st_size
    if recorded:
        offsets = [int(item.split(":")[0]) for item in recorded.split(",")]
    else:
        last = max(size - _SAMPLE_BYTES, 0)
        offsets = sorted({round(last * i / (LISTS_SAMPLES - 1)) for i in range(LISTS_SAMPLES)})
    with open(path, "rb") as file:
        parts = []
        for offset in offsets:
            file.seek(offset)
            parts.append(f"{offset}:{hashlib.sha256(file.read(_SAMPLE_BYTES)).hexdigest()}")
    return ",".join(parts)


def read_index_file(root: Path, meta: dict[str, str], dim: int) -> AnnIndex:
    """The index file the library's ``meta`` records (and its on-disk tier), checked against what
    was recorded when it was written."""
    path = root / meta["ann_file"]
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise LibraryError(f"{path}: missing (the library's index file); {REBUILD_ADVICE}") from None
    except OSError as exc:
        raise LibraryError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if hashlib.sha256(data.data).hexdigest() != meta.get("ann_sha256"):
        raise LibraryError(
            f"{path}: damaged or replaced (its SHA-256 is not the one the library recorded); {REBUILD_ADVICE}"
        )
    spec = AnnSpec.parse(meta["ann_built"])
    disk = None
    if meta.get("ann_disk_file"):
        disk = read_disk_tier_files(root, meta)
    try:
        ann = AnnIndex.deserialize(data, spec, dim, disk)
    except (RuntimeError, ValueError) as exc:
        raise LibraryError(f"{path}: unusable index file ({faiss_reason(exc)}); {REBUILD_ADVICE}") from None
    if ann.memory_vectors != int(meta.get("ann_vectors", -1)):
        raise LibraryError(
            f"{path}: holds {ann.memory_vectors} vectors, the library recorded "
            f"{meta.get('ann_vectors')}; {REBUILD_ADVICE}"
        )
    return ann


def read_disk_tier_files(root: Path, meta: dict[str, str]) -> object:
    """The on-disk tier: its header checked against its SHA-256, its lists file's size."""
    header, lists = root / meta["ann_disk_file"], root / meta["ann_disk_lists"]
    for path in (header, lists):
        if not path.is_file():
            raise LibraryError(f"{path}: missing (the library's on-disk index); {REBUILD_ADVICE}")
    if sha256_file(header) != meta["ann_disk_sha256"]:
        raise LibraryError(
            f"{header}: damaged or replaced (its SHA-256 is not the one the library recorded); "
            f"{REBUILD_ADVICE}"
        )
    if lists.stat().st_size != int(meta["ann_disk_lists_bytes"]):
        raise LibraryError(
            f"{lists}: {lists.stat().st_size} bytes, the library recorded "
            f"{meta['ann_disk_lists_bytes']}; {REBUILD_ADVICE}"
        )
    if meta.get("ann_disk_lists_samples") != lists_samples(lists, meta.get("ann_disk_lists_samples")):
        raise LibraryError(
            f"{lists}: damaged or replaced (its sampled SHA-256s are not the ones the library "
            f"recorded); {REBUILD_ADVICE}"
        )
    try:
        disk = read_disk_tier(header, AnnSpec.parse(meta["ann_built"]))
    except RuntimeError as exc:
        raise LibraryError(f"{header}: unusable index file ({faiss_reason(exc)}); {REBUILD_ADVICE}") from None
    if int(disk.ntotal) != int(meta["ann_disk_vectors"]):
        raise LibraryError(
            f"{header}: holds {disk.ntotal} vectors, the library recorded {meta['ann_disk_vectors']}; "
            f"{REBUILD_ADVICE}"
        )
    return disk


def write_disk_tier(ann: AnnIndex, header: Path, lists: Path) -> dict[str, str]:
    """Write ``ann`` merged into a new on-disk tier (``header`` and its ``lists``); what the library
    records of it."""
    ann.merged_to_disk(header, lists)
    return {
        "ann_disk_file": header.name,
        "ann_disk_sha256": sha256_file(header),
        "ann_disk_lists": lists.name,
        "ann_disk_lists_bytes": str(lists.stat().st_size),
        "ann_disk_lists_sha256": sha256_file(lists),
        "ann_disk_lists_samples": lists_samples(lists) or "",
        "ann_disk_vectors": str(ann.disk_vectors),
    }
