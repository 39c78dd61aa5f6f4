"""The feature library: a folder with a FAISS index of frame vectors and a SQLite metadata database.

Layout of ``LIB/``::

    library.sqlite   videos (path, sha256, size, mtime, duration, fps, ...), vectors (id -> video,
                     timestamp_s), frame_classes (each frame's top ImageNet classes, for zero-shot
                     text search), frame_layouts (each frame's layout, for trained text search),
                     failures, meta (descriptor, sampling, state generation)
    index.faiss      IndexIDMap2 over an inner-product index; ids are rows of ``vectors``
    write.lock       held (flock) by the one process allowed to write

Crash safety: vectors are written first (index to a temp file, fsync, atomic rename), then their
rows are committed in one SQLite transaction. A kill between the two leaves vectors no row points
to; readers ignore them and the next writer removes them. Deletions go the other way (rows, then
vectors). So a library opens after a kill at any moment and a re-run of ``index`` completes it.

Integrity: the library knows its own shape. Every write of ``index.faiss`` records the file's
SHA-256 and vector count in ``meta`` (``index_sha256``, ``index_vectors``; the checksum of a file
about to be written goes first into ``pending_index_sha256``, so a kill between the file and its
record is told apart from damage). Opening checks the file against them, its type and dimension,
and that every vector a row lists is in it: a missing, damaged, replaced or inconsistent index is
a ``LibraryError`` naming the file, and nothing is ever dropped from the library because of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from vcopy.checks import bounded_float, bounded_int
from vcopy.errors import LibraryError

if TYPE_CHECKING:  # the descriptor (torch) loads only where videos are described: opening is light
    from vcopy.features import Descriptor, EncodedVideo, FailedVideo, FrameClasses, TextFeatures
from vcopy.video import SamplingConfig, file_stamp, find_videos

# 2 added frame_classes, 3 frame_layouts (float16), 4 holds them as int8, 5 records the index file's
# checksum and vector count; older libraries are upgraded when opened to write (a version-3 library's
# float16 layouts are dropped, so its videos are indexed again)
SCHEMA_VERSION = 5
_INT8_LAYOUTS_SCHEMA = 4
_DB, _INDEX, _LOCK = "library.sqlite", "index.faiss", "write.lock"
LAYOUT_STEPS = 127  # layouts (parts of unit vectors, so within -1..1) are stored as int8 in these steps
_VIDEO_COLUMNS = "id, path, sha256, size, mtime_ns, duration_s, fps, width, height, decoder"  # LibraryVideo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    fps REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    rotation_deg INTEGER NOT NULL,
    decoder TEXT NOT NULL,
    indexed_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    timestamp_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS vectors_by_video ON vectors(video_id);
CREATE TABLE IF NOT EXISTS frame_classes (
    video_id INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
    class_ids BLOB NOT NULL,  -- uint16 [frames, top_k], frames in time order
    probabilities BLOB NOT NULL,  -- float16 [frames, top_k]
    top_k INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS frame_layouts (
    video_id INTEGER PRIMARY KEY REFERENCES videos(id) ON DELETE CASCADE,
    layouts BLOB NOT NULL,  -- int8 [frames, dim] = round(layout * LAYOUT_STEPS), frames in time order
    dim INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    failed_utc TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LibraryVideo:
    """One indexed video as the library records it."""

    id: int
    path: str
    sha256: str
    size: int
    mtime_ns: int
    duration_s: float
    fps: float
    width: int
    height: int
    decoder: str


@dataclass
class IndexSummary:
    """What one ``index`` run did."""

    indexed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, warning) of indexed videos
    video_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Video seconds indexed per wall-clock second."""
        return self.video_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _new_index(dim: int) -> faiss.IndexIDMap2:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


class Library:
    """A feature library on disk. ``Library.open(path)`` to read, ``Library.open(path, write=True)``
    (a context manager) to add or remove videos."""

    def __init__(
        self, root: Path, db: sqlite3.Connection, index: Any, lock_fd: int | None, schema: int
    ) -> None:
        self.root = root
        self._db = db
        self.index = index  # faiss.IndexIDMap2 (the SWIG stubs type it loosely)
        self._tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self._layouts_readable = "frame_layouts" in self._tables and schema >= _INT8_LAYOUTS_SCHEMA
        self._lock_fd = lock_fd

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        write: bool = False,
        descriptor: Descriptor | None = None,
        sampling: SamplingConfig | None = None,
    ) -> Library:
        """Open a library; with ``write=True`` take its write lock, creating it if needed (which
        needs the ``descriptor`` and ``sampling`` it will be built with)."""
        root = Path(root)
        lock_fd = None
        if write:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LibraryError(f"{root}: cannot be a library folder ({exc.strerror or exc})") from None
            lock_fd = _take_lock(root)
        elif not (root / _DB).is_file():
            raise LibraryError(f"{root}: not a vcopy library (no {_DB}); create one with `vcopy index`")
        db: sqlite3.Connection | None = None
        try:
            db = _connect(root / _DB, write)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                if not write or descriptor is None or sampling is None:
                    raise LibraryError(f"{root}: library is empty and has no settings yet")
                meta = {
                    "schema_version": str(SCHEMA_VERSION),
                    "descriptor": descriptor.name,
                    "dim": str(descriptor.dim),
                    "sample_fps": repr(sampling.sample_fps),
                    "frame_size": str(sampling.frame_size),
                    "generation": "0",
                    "created_utc": _utc_now(),
                }
                with _transaction(db):
                    db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            schema = _checked_settings(root / _DB, meta)
            if write and schema < SCHEMA_VERSION:  # its tables were just created
                with _transaction(db):
                    if schema < _INT8_LAYOUTS_SCHEMA:
                        db.execute("DELETE FROM frame_layouts")
                    _set_meta(db, schema_version=str(SCHEMA_VERSION))
                schema = SCHEMA_VERSION
            if descriptor is not None and meta["descriptor"] != descriptor.name:
                raise LibraryError(
                    f"{root}: built with descriptor {meta['descriptor']}, not {descriptor.name}"
                )
            index, index_sha256 = _read_index(root / _INDEX, meta, _row_count(db))
            library = cls(root, db, index, lock_fd, schema)
            if write:
                library._reconcile(index_sha256)
        except sqlite3.DatabaseError as exc:
            _close(db, lock_fd)
            raise LibraryError(f"{root / _DB}: unreadable library database ({exc})") from None
        except BaseException:
            _close(db, lock_fd)
            raise
        return library

    def close(self) -> None:
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    @property
    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    @property
    def sampling(self) -> SamplingConfig:
        meta = self.meta
        return SamplingConfig(sample_fps=float(meta["sample_fps"]), frame_size=int(meta["frame_size"]))

    @property
    def state_id(self) -> str:
        """Changes with every committed write: ``g<generation>-v<videos>-n<vectors>``."""
        generation = self.meta["generation"]
        n_videos, n_vectors = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM videos), (SELECT COUNT(*) FROM vectors)"
        ).fetchone()
        return f"g{generation}-v{n_videos}-n{n_vectors}"

    def videos(self) -> list[LibraryVideo]:
        rows = self._db.execute(f"SELECT {_VIDEO_COLUMNS} FROM videos ORDER BY id").fetchall()
        return [LibraryVideo(*row) for row in rows]

    def video(self, video_id: int) -> LibraryVideo:
        row = self._db.execute(
            f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE id = ?",
            (video_id,),
        ).fetchone()
        if row is None:
            raise LibraryError(f"{self.root}: no video with id {video_id}")
        return LibraryVideo(*row)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM videos").fetchone()[0])

    def vector_owners(self, vector_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For FAISS ids: (video id, timestamp s); -1 / nan where an id has no row (an orphan)."""
        flat = np.unique(vector_ids[vector_ids >= 0])
        owner = np.full(vector_ids.shape, -1, dtype=np.int64)
        times = np.full(vector_ids.shape, np.nan)
        if len(flat) == 0:
            return owner, times
        lookup_video: dict[int, int] = {}
        lookup_time: dict[int, float] = {}
        for lo in range(0, len(flat), 900):
            part = flat[lo : lo + 900].tolist()
            marks = ",".join("?" * len(part))
            for vid, video_id, ts in self._db.execute(
                f"SELECT id, video_id, timestamp_s FROM vectors WHERE id IN ({marks})", part
            ):
                lookup_video[vid] = video_id
                lookup_time[vid] = ts
        for pos, vid in np.ndenumerate(vector_ids):
            if int(vid) in lookup_video:
                owner[pos] = lookup_video[int(vid)]
                times[pos] = lookup_time[int(vid)]
        return owner, times

    def frames_of(self, video_id: int) -> tuple[np.ndarray, np.ndarray]:
        """A video's stored vectors [N, dim] and their timestamps in seconds, in time order."""
        rows = self._db.execute(
            "SELECT id, timestamp_s FROM vectors WHERE video_id = ? ORDER BY timestamp_s", (video_id,)
        ).fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        vectors = (
            np.stack([self.index.reconstruct(int(i)) for i in ids])
            if len(ids)
            else np.zeros((0, self.index.d))
        )
        return vectors.astype(np.float32), np.array([r[1] for r in rows], dtype=np.float64)

    def timestamps_of(self, video_id: int) -> np.ndarray:
        """The times (s) of a video's stored frames, in order."""
        rows = self._db.execute(
            "SELECT timestamp_s FROM vectors WHERE video_id = ? ORDER BY timestamp_s", (video_id,)
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.float64)

    def frame_classes(self, video_id: int) -> FrameClasses | None:
        """A video's frames' top ImageNet classes, in time order; None when it was indexed without
        them (by a vcopy older than text search)."""
        row = (
            self._db.execute(
                "SELECT class_ids, probabilities, top_k FROM frame_classes WHERE video_id = ?", (video_id,)
            ).fetchone()
            if "frame_classes" in self._tables  # absent from a version-1 library opened read-only
            else None
        )
        if row is None:
            return None
        k = int(row[2])
        ids = np.frombuffer(row[0], dtype=np.uint16).reshape(-1, k).astype(np.int64)
        probabilities = np.frombuffer(row[1], dtype=np.float16).reshape(-1, k).astype(np.float32)
        from vcopy.features import FrameClasses

        return FrameClasses(ids, probabilities)

    def frame_layouts(self, video_id: int) -> np.ndarray | None:
        """A video's frames' layouts [N, dim] (float32), in time order; None when it was indexed
        without them (by a vcopy older than layouts)."""
        row = (
            self._db.execute(
                "SELECT layouts, dim FROM frame_layouts WHERE video_id = ?", (video_id,)
            ).fetchone()
            if self._layouts_readable  # not from an older library opened read-only
            else None
        )
        if row is None:
            return None
        return np.frombuffer(row[0], dtype=np.int8).reshape(-1, int(row[1])).astype(np.float32) / LAYOUT_STEPS

    # -- writing -------------------------------------------------------------------------------

    def add(
        self,
        paths: Iterable[Path],
        descriptor: Descriptor,
        prune: bool = False,
        commit_every_s: float = 30.0,
        stall_timeout_s: float = 120.0,
        on_video: Callable[[str, str], None] | None = None,
    ) -> IndexSummary:
        """Index the videos in ``paths`` (files or folders): new and changed files are (re)indexed,
        unchanged ones skipped, and with ``prune`` library videos under ``paths`` whose files are gone
        are removed. ``on_video(path, outcome)`` is told about each file as it is handled
        (``indexed``, ``skipped`` or ``failed: REASON``), and before that of anything a reader must
        know about it (``warning: TEXT``). Work done before an exception is committed."""
        from vcopy.features import FailedVideo, encode_videos, video_duration_s

        self._require_writer()
        started = time.monotonic()
        roots = [_absolute(Path(p)) for p in paths]
        summary = IndexSummary()
        report = on_video or (lambda path, outcome: None)
        todo = []
        for path in find_videos(roots):
            if not _storable(path):
                reason = "its name is not valid UTF-8 (rename the file to index it)"
                summary.failed.append((str(path), reason))
                report(str(path), f"failed: {reason}")
            elif self._unchanged(path):
                summary.skipped.append(str(path))
                report(str(path), "skipped")
            else:
                todo.append(path)
        if prune:
            summary.pruned = self._prune(roots)
        batch: list[EncodedVideo] = []
        last_commit = time.monotonic()
        sampling = replace(self.sampling, stall_timeout_s=stall_timeout_s)
        try:
            for result in encode_videos(todo, descriptor, sampling, text=True):
                if isinstance(result, FailedVideo):
                    summary.failed.append((str(result.path), result.reason))
                    self._record_failure(result)
                    report(str(result.path), f"failed: {result.reason}")
                    continue
                batch.append(result)
                summary.indexed.append(str(result.path))
                summary.video_seconds += video_duration_s(result, self.sampling)
                for warning in result.warnings:
                    summary.warnings.append((str(result.path), warning))
                    report(str(result.path), f"warning: {warning}")
                report(str(result.path), "indexed")
                if time.monotonic() - last_commit >= commit_every_s:
                    done, batch = batch, []
                    self._commit(done)
                    last_commit = time.monotonic()
        finally:
            self._commit(batch)
        summary.wall_seconds = time.monotonic() - started
        return summary

    def _require_writer(self) -> None:
        if self._lock_fd is None:
            raise LibraryError(f"{self.root}: opened read-only")

    def _unchanged(self, path: Path) -> bool:
        """The file is indexed as it is now, with everything this vcopy stores of it (a video
        indexed by an older vcopy, without what text search reads, is indexed again)."""
        row = self._db.execute(
            "SELECT id, size, mtime_ns, sha256 FROM videos WHERE path = ?", (str(path),)
        ).fetchone()
        if row is None or not self._has_text_features(row[0]):
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) == (row[1], row[2]):
            return True
        if st.st_size != row[1]:
            return False
        try:  # same size, new mtime: the content decides
            stamp = file_stamp(path)
        except OSError:
            return False
        if stamp.sha256 != row[3]:
            return False
        with _transaction(self._db):
            self._db.execute("UPDATE videos SET mtime_ns = ? WHERE id = ?", (stamp.mtime_ns, row[0]))
        return True

    def _has_text_features(self, video_id: int) -> bool:
        return all(
            self._db.execute(f"SELECT 1 FROM {table} WHERE video_id = ?", (video_id,)).fetchone() is not None
            for table in ("frame_classes", "frame_layouts")
        )

    def _prune(self, roots: list[Path]) -> list[str]:
        gone = []
        for video in self.videos():
            path = Path(video.path)
            under = any(path == root or root in path.parents for root in roots)
            if under and not path.exists():
                gone.append(video)
        self._remove([v.id for v in gone])
        return [v.path for v in gone]

    def _record_failure(self, failed: FailedVideo) -> None:
        with _transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)",
                (str(failed.path), failed.reason, _utc_now()),
            )

    def _commit(self, batch: list[EncodedVideo]) -> None:
        """New vectors (atomic file replace), then in one transaction the new rows replacing any old
        version of the same files, then the old vectors; see the module docstring."""
        from vcopy.features import video_duration_s

        if not batch:
            return
        next_id = 1 + max(self._max_row_vector_id(), int(self._index_ids().max(initial=-1)))
        ids_per_video = []
        for video in batch:
            ids = np.arange(next_id, next_id + len(video.vectors), dtype=np.int64)
            self.index.add_with_ids(np.ascontiguousarray(video.vectors, dtype=np.float32), ids)
            ids_per_video.append(ids)
            next_id += len(ids)
        index_sha256 = self._save_index()
        old_vectors: list[int] = []
        with _transaction(self._db):
            for video, ids in zip(batch, ids_per_video, strict=True):
                old = self._db.execute("SELECT id FROM videos WHERE path = ?", (str(video.path),)).fetchone()
                if old is not None:
                    old_vectors += self._delete_rows(old[0])
                cur = self._db.execute(
                    "INSERT INTO videos (path, sha256, size, mtime_ns, duration_s, fps, width, height,"
                    " rotation_deg, decoder, indexed_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(video.path), video.stamp.sha256, video.stamp.size, video.stamp.mtime_ns,
                        video_duration_s(video, self.sampling), video.info.fps, video.info.width,
                        video.info.height, video.info.rotation_deg, video.decoder, _utc_now(),
                    ),
                )  # fmt: skip
                self._db.executemany(
                    "INSERT INTO vectors (id, video_id, timestamp_s) VALUES (?, ?, ?)",
                    zip(ids.tolist(), [cur.lastrowid] * len(ids), video.timestamps_s.tolist(), strict=True),
                )
                if video.text is not None:
                    self._insert_text(cur.lastrowid, video.text)
                self._db.execute("DELETE FROM failures WHERE path = ?", (str(video.path),))
            self._record_index(index_sha256)
            self._bump_generation()
        self._drop_vectors(old_vectors)

    def _insert_text(self, video_id: int | None, text: TextFeatures) -> None:
        classes = text.classes
        self._db.execute(
            "INSERT INTO frame_classes VALUES (?, ?, ?, ?)",
            (
                video_id,
                classes.ids.astype(np.uint16).tobytes(),
                classes.probabilities.astype(np.float16).tobytes(),
                classes.ids.shape[1],
            ),
        )
        self._db.execute(
            "INSERT INTO frame_layouts VALUES (?, ?, ?)",
            (video_id, _quantized_layouts(text.layouts).tobytes(), text.layouts.shape[1]),
        )

    def _remove(self, video_ids: list[int]) -> None:
        """Delete rows (committed), then the vectors they pointed to."""
        if not video_ids:
            return
        vector_ids: list[int] = []
        with _transaction(self._db):
            for video_id in video_ids:
                vector_ids += self._delete_rows(video_id)
            self._bump_generation()
        self._drop_vectors(vector_ids)

    def _delete_rows(self, video_id: int) -> list[int]:
        """Delete a video's rows (inside a transaction); returns its vector ids."""
        vector_ids = [
            r[0] for r in self._db.execute("SELECT id FROM vectors WHERE video_id = ?", (video_id,))
        ]
        self._db.execute("DELETE FROM vectors WHERE video_id = ?", (video_id,))
        self._db.execute("DELETE FROM frame_classes WHERE video_id = ?", (video_id,))
        self._db.execute("DELETE FROM frame_layouts WHERE video_id = ?", (video_id,))
        self._db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return vector_ids

    def _drop_vectors(self, vector_ids: list[int] | np.ndarray) -> None:
        if len(vector_ids):
            self.index.remove_ids(np.asarray(vector_ids, dtype=np.int64))
            index_sha256 = self._save_index()
            with _transaction(self._db):
                self._record_index(index_sha256)

    def _index_ids(self) -> np.ndarray:
        if self.index.ntotal == 0:
            return np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def _max_row_vector_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), -1) FROM vectors").fetchone()[0])

    def _bump_generation(self) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def _reconcile(self, index_sha256: str) -> None:
        """Repair what a kill can leave: drop orphan vectors (written, their rows never committed)
        and record an index file whose record a kill cut short. Vectors that rows list but the
        index lacks are damage, never repaired by forgetting their videos: an error."""
        valid = np.array([r[0] for r in self._db.execute("SELECT id FROM vectors")], dtype=np.int64)
        stored = self._index_ids()
        missing = np.setdiff1d(valid, stored)
        if len(missing):
            raise LibraryError(
                f"{self.root / _INDEX}: {len(missing)} vectors that the library lists are missing from it; "
                f"{_REPAIR}"
            )
        orphans = np.setdiff1d(stored, valid)
        if len(orphans):
            self._drop_vectors(orphans)
        elif self.meta.get("index_sha256") != index_sha256:  # upgraded, or a kill before the record
            with _transaction(self._db):
                self._record_index(index_sha256)

    def _save_index(self) -> str:
        """Write the index file (its checksum recorded as pending first); returns its SHA-256."""
        data = faiss.serialize_index(self.index)
        sha256 = hashlib.sha256(data.data).hexdigest()
        with _transaction(self._db):
            _set_meta(self._db, pending_index_sha256=sha256)
        _write_atomically(data, self.root / _INDEX)
        return sha256

    def _record_index(self, sha256: str) -> None:
        """Record the index file's checksum and vector count (inside a transaction)."""
        _set_meta(
            self._db, index_sha256=sha256, index_vectors=str(self.index.ntotal), pending_index_sha256=""
        )


_REPAIR = (
    "restore the library folder from a backup, or index the videos again into a new library "
    "(`vcopy index VIDEOS --library NEW`)"
)


def recorded_descriptor(root: Path) -> str | None:
    """The descriptor a library at ``root`` records, read from its database alone (no index is
    loaded); None where there is no library yet."""
    path = Path(root) / _DB
    if not path.is_file():
        return None
    db = None
    try:
        db = _connect(path, write=False)
        row = db.execute("SELECT value FROM meta WHERE key = 'descriptor'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise LibraryError(f"{path}: unreadable library database ({exc})") from None
    finally:
        _close(db, None)
    return None if row is None else str(row[0])


def _connect(path: Path, write: bool) -> sqlite3.Connection:
    """The library database. Readers open it read-only; where its folder cannot be written (a
    read-only mount, where WAL mode cannot make its shared-memory file) as immutable, which is
    safe when no journal is left to apply."""
    if write:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(_SCHEMA)
    else:
        uri = path.absolute().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=30)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            wal = path.with_name(f"{path.name}-wal")
            if wal.is_file() and wal.stat().st_size > 0:
                raise LibraryError(
                    f"{wal}: the library is read-only and holds writes not yet merged into {path.name}; "
                    "open it once where it can be written (e.g. `vcopy library` or `vcopy index` there)"
                ) from None
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, timeout=30)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _close(db: sqlite3.Connection | None, lock_fd: int | None) -> None:
    if db is not None:
        db.close()
    if lock_fd is not None:
        os.close(lock_fd)


def _checked_settings(db_path: Path, meta: dict[str, str]) -> int:
    """The library's schema version, once its settings are checked as the CLI checks its options
    (a setting that no vcopy writes, such as a NaN rate, is an error, not a poisoned library)."""
    try:
        schema = bounded_int(int(meta["schema_version"]), "schema_version", 1, 1 << 30)
        bounded_float(float(meta["sample_fps"]), "sample_fps", 0.05, 30)
        bounded_int(int(meta["frame_size"]), "frame_size", 16, 4096)
        bounded_int(int(meta["dim"]), "dim", 1, 1 << 16)
        bounded_int(int(meta["generation"]), "generation", 0, 1 << 62)
    except KeyError as exc:
        raise LibraryError(f"{db_path}: the library has no setting {exc}") from None
    except ValueError as exc:
        raise LibraryError(f"{db_path}: unusable library setting ({exc})") from None
    if schema > SCHEMA_VERSION:
        raise LibraryError(f"{db_path}: library schema {schema} is not supported (made by a newer vcopy)")
    return schema


def _row_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


def _set_meta(db: sqlite3.Connection, **values: str) -> None:
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())


def _absolute(path: Path) -> Path:
    """``path`` resolved, or only made absolute where it cannot be (a symlink loop: the file is
    then named and skipped when it is read)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()


def _storable(path: Path) -> bool:
    """Whether the library database can hold the path (SQLite text is UTF-8)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _quantized_layouts(layouts: np.ndarray) -> np.ndarray:
    """Layouts as int8 steps of 1 / ``LAYOUT_STEPS`` (on the ablation set, no worse than float16)."""
    return np.clip(np.round(layouts * LAYOUT_STEPS), -LAYOUT_STEPS, LAYOUT_STEPS).astype(np.int8)


def _take_lock(root: Path) -> int:
    try:
        fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LibraryError(f"{root}: cannot be written ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise LibraryError(
            f"{root}: another process (pid {holder}) is writing this library; try again later"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _read_index(path: Path, meta: dict[str, str], rows: int) -> tuple[Any, str]:
    """The index file and its SHA-256, checked against what the library recorded of it (its
    checksum, or the one of a write a kill cut short), its type and dimension, and the ``rows``
    vectors the library lists. A library with no index file yet gets an empty index ("")."""
    dim, recorded = int(meta["dim"]), meta.get("index_sha256")
    if not path.exists():
        if recorded or rows:
            raise LibraryError(
                f"{path}: missing (the library lists {max(rows, int(meta.get('index_vectors', 0)))} "
                f"vectors in it); {_REPAIR}"
            )
        return _new_index(dim), ""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise LibraryError(f"{path}: unreadable ({exc.strerror or exc})") from None
    sha256 = hashlib.sha256(data.data).hexdigest()
    if recorded is not None and sha256 not in (recorded, meta.get("pending_index_sha256")):
        raise LibraryError(
            f"{path}: damaged or replaced (its SHA-256 is not the one the library recorded); {_REPAIR}"
        )
    try:
        index = faiss.deserialize_index(data)  # SWIG hands back the concrete type
    except RuntimeError as exc:
        raise LibraryError(f"{path}: unreadable FAISS index ({faiss_reason(exc)})") from None
    if not isinstance(index, faiss.IndexIDMap2) or not isinstance(
        faiss.downcast_index(index.index), faiss.IndexFlatIP
    ):
        raise LibraryError(f"{path}: not the kind of index a vcopy library keeps ({type(index).__name__})")
    if index.d != dim:
        raise LibraryError(f"{path}: index has dimension {index.d}, library says {dim}")
    if index.ntotal < rows:
        raise LibraryError(f"{path}: holds {index.ntotal} vectors, the library lists {rows}; {_REPAIR}")
    return index, sha256


def faiss_reason(exc: BaseException) -> str:
    """A FAISS error's message without the C++ function signature and source line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = re.match(r"Error in .*? at \S+:\d+: (.*)", text)
    return (match[1] if match else text)[:200]


def _write_atomically(data: np.ndarray, path: Path) -> None:
    """Replace a file atomically: temp file, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
