"""Errors that vcopy reports to the user as one line, never as a traceback."""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import Any


class VcopyError(Exception):
    """An expected failure whose message is fit to show a user as is."""


class DecodeError(VcopyError):
    """A file could not be decoded as a video (the message says why)."""


class LibraryError(VcopyError):
    """A feature library is missing, locked, incompatible or unreadable."""


MAX_WEIGHTS_BYTES = 64 << 20  # unpacked size of a weights file (vcopy's SPD and SKE are < 1 MB)
MAX_CHECKPOINT_BYTES = 1 << 30  # ... and of a training checkpoint or a text model


def read_torch_file(
    path: Path,
    what: str,
    map_location: str = "cpu",
    max_bytes: int = MAX_WEIGHTS_BYTES,
    keys: Collection[str] | None = None,
) -> Any:
    """``torch.load`` of tensors and plain values (``weights_only``), once the file is known to be
    a torch archive (a zip) whose members unpack to at most ``max_bytes``: nothing is loaded before
    that (a small file may hold gigabytes of compressed zeros). With ``keys``, a dict holding any
    other top-level key is refused. A file that is missing, truncated, too large or not such a
    torch file is a one-line VcopyError saying it is not ``what``."""
    import torch

    check_torch_archive(path, what, max_bytes)
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        reason = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        raise VcopyError(f"{path}: not readable {what} ({reason[:300]})") from exc
    except Exception as exc:  # unpickling a file that is not a torch file fails in several ways
        raise VcopyError(f"{path}: not {what} ({exc.__class__.__name__})") from exc
    if keys is not None and isinstance(loaded, dict):
        unknown = sorted(str(k)[:40] for k in loaded if k not in keys)
        if unknown:
            raise VcopyError(f"{path}: not {what} made by vcopy (unknown key {unknown[0]!r})")
    return loaded


def check_torch_archive(path: Path, what: str, max_bytes: int = MAX_WEIGHTS_BYTES) -> None:
    """A VcopyError unless ``path`` is a torch archive (a zip) whose members unpack to at most
    ``max_bytes`` (read from its directory alone; torch is not imported)."""
    import zipfile

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise VcopyError(f"{path}: not {what} (not a regular file)")
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except OSError as exc:
        raise VcopyError(f"{path}: not readable {what} ({exc.strerror or exc})") from None
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise VcopyError(f"{path}: not {what} (not a torch archive)") from None
    unpacked = sum(member.file_size for member in members)
    if unpacked > max_bytes:
        raise VcopyError(f"{path}: not {what} ({unpacked} bytes unpacked; at most {max_bytes} are read)")
