"""Writing files so that a reader (or a kill) never sees half of one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, durable: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error it
    replaces ``path`` in one rename, otherwise it is removed. The temporary name keeps the suffix
    (``np.save`` and ``np.savez`` add theirs otherwise). With ``durable`` the file and then its
    folder are synced to disk, so the rename survives a power cut."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        if durable:
            sync(tmp)
        os.replace(tmp, path)
        if durable:
            sync(path.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def sync(path: Path) -> None:
    """Sync a file (or a folder: the names in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, durable: bool = False) -> None:
    """Replace ``path``'s content with ``data`` in one rename (``atomic_path``)."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)
