"""Errors that vcopy reports to the user as one line, never as a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class VcopyError(Exception):
    """An expected failure whose message is fit to show a user as is."""


class DecodeError(VcopyError):
    """A file could not be decoded as a video (the message says why)."""


class LibraryError(VcopyError):
    """A feature library is missing, locked, incompatible or unreadable."""


def read_torch_file(path: Path, what: str, map_location: str = "cpu") -> Any:
    """``torch.load`` of tensors and plain values (``weights_only``); a file that is missing,
    truncated or not such a torch file is a one-line VcopyError saying it is not ``what``."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError) as exc:
        reason = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        raise VcopyError(f"{path}: not readable {what} ({reason})") from exc
    except Exception as exc:  # unpickling a file that is not a torch file fails in several ways
        raise VcopyError(f"{path}: not {what} ({exc.__class__.__name__})") from exc
