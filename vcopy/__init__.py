"""vcopy: find copies of videos, and which seconds of each were copied."""

__version__ = "0.3.0"
