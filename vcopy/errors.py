"""Errors that vcopy reports to the user as one line, never as a traceback."""


class VcopyError(Exception):
    """An expected failure whose message is fit to show a user as is."""


class DecodeError(VcopyError):
    """A file could not be decoded as a video (the message says why)."""


class LibraryError(VcopyError):
    """A feature library is missing, locked, incompatible or unreadable."""
