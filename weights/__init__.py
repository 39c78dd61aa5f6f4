"""Weights trained for vcopy and shipped with it (installed as ``vcopy.weights``); see README.md."""

from importlib import resources
from pathlib import Path


def shipped(name: str) -> Path:
    """The path of the shipped file ``name``."""
    return Path(str(resources.files(__name__).joinpath(name)))
