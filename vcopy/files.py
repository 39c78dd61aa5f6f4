"""Writing files so that a reader (or a kill) never sees half of one."""

from __future__ import annotations

import contextlib
import os
import stat
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


def output_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot take a report or page (None: it can): it must be a new name or a regular
    file (not a symbolic link, device, FIFO or folder) in a folder where a file can be made. The
    folder is tried by making and removing a file there, as the write will (``os.access`` says yes
    to root for ``/proc``)."""
    path = Path(path)
    kind = _kind(path)
    if kind not in (None, "regular file"):
        return f"is a {kind}, not a regular file; give a regular file name"
    if not path.parent.is_dir():
        return f"folder {path.parent} does not exist"
    probe = path.with_name(f".{path.name}.{os.getpid()}.probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except OSError as exc:
        return f"folder {path.parent} cannot be written ({exc.strerror or exc})"
    probe.unlink(missing_ok=True)
    return None


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, once its size is known to be at most ``max_bytes`` (checked before
    anything is read: a sparse file of gigabytes costs nothing); ``OSError`` saying why not."""
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise OSError("not a regular file")
    if info.st_size > max_bytes:
        raise OSError(f"{info.st_size} bytes; at most {max_bytes} are read")
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew meanwhile
        raise OSError(f"over {max_bytes} bytes")
    return data


def write_output_file(path: Path, data: bytes) -> None:
    """Replace ``path`` (a regular file or a new name; ``output_file_problem`` otherwise, as an
    ``OSError``) with ``data`` in one rename: a symbolic link is never followed or replaced, a
    device node never replaced."""
    problem = output_file_problem(path)
    if problem:
        raise OSError(problem)
    write_atomically(path, data)


def _kind(path: Path) -> str | None:
    """What is at ``path`` without following a symbolic link (None: nothing)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"path that cannot be looked at ({exc.strerror or exc})"
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"
