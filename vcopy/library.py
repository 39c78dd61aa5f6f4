"""The feature library: where frame vectors are kept. It only stores; what is computed (decoding,
the descriptor, text features) is ``vcopy.indexing``'s, and the settings it was computed with are
recorded here so that ``index`` and ``query`` cannot drift apart.

Layout of ``LIB/``::

    library.sqlite      videos (path, sha256, size, mtime, duration, fps, ..., the times of their
                        frames, their vector file and its SHA-256), failures, meta (descriptor,
                        sampling, index spec, generation), ann_removed (videos deleted since the
                        index file was written), and the tables other modules register for each
                        video (``register_tables``: text search's frame_classes, frame_layouts)
    vectors/<id>.npy    one file per video: its exact frame vectors, float32 [frames, dim], written
                        once and never rewritten (a re-indexed video gets a new file)
    ann-<n>.faiss       the approximate-nearest-neighbour index (``vcopy.ann``) as last written: derived
                        data, rebuilt from the vector files by ``vcopy library rebuild-index``
    ann-<n>-disk.faiss  with an ``ondisk`` index spec: its on-disk tier (the index with its training)
    ann-<n>.ivfdata     ... and that tier's inverted lists, memory-mapped read-only
    library.id          the library's identity (also in its meta): a database that is not this
                        library's own is refused before anything is read or removed
    write.lock          held (flock) by the one process allowed to write

Commits: a batch's vector files are written and synced first, then its rows committed in one
SQLite transaction (the commit point). The index file is not rewritten at every commit: videos
committed since it was written (``in_ann = 0``) are added to it when a library is opened, and
videos removed since (``ann_removed``) are taken out; it is written again, under a new name, once
those pending changes pass ``SNAPSHOT_FRACTION`` of it (at most ``SNAPSHOT_MAX_PENDING`` vectors),
so a commit costs about the same in a small library and a large one. With on-disk inverted lists
the index file holds what came since the on-disk tier was written (``in_ann = 1``; ``2``: in the
on-disk tier, and ``ann_disk_removed`` the videos removed from it since, hidden at search time); a
new on-disk tier is written, again under new names, once that part passes ``DISK_MERGE_FRACTION``
of it. A kill at any moment leaves either the old state or the new one. A file is
listed in ``loose_files`` (committed) before it is written and after the commit that stops naming it,
and those are the only files a writer removes unasked (the next writer, after a kill): a file the
database does not list is never removed, so a lost, emptied or foreign database cannot make a writer
delete vectors.

Integrity: every vector file's SHA-256 is recorded with its video and checked whenever it is read;
the index file's SHA-256 and vector count are recorded and checked when it is opened (an on-disk
tier's lists file: its size and the SHA-256 of eight 1 MiB samples then, a cost that stays flat with
its size; its whole SHA-256 by ``verify``, which also runs SQLite's integrity check). A missing,
damaged or inconsistent part is a ``LibraryError`` naming the file and the command that repairs it,
and nothing is ever dropped from the library because of it. ``verify`` checks every file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcopy.ann import AnnIndex, AnnSpec, read_disk_tier, split_ids, training_sample, vector_ids
from vcopy.checks import bounded_float, bounded_int
from vcopy.errors import LibraryError
from vcopy.files import write_atomically
from vcopy.pipeline import PipelineSpec
from vcopy.video import SamplingConfig, file_stamp, sha256_file

if TYPE_CHECKING:  # the descriptor (torch) loads only where videos are described: opening is light
    from vcopy.features import Descriptor, EncodedVideo
    from vcopy.keyframes import KeyFramer

# 2 added frame_classes, 3 frame_layouts (float16), 4 holds them as int8, 5 records the index file's
# checksum, 6 keeps exact vectors in per-video files apart from an approximate index. Libraries of
# schema 4 and 5 are upgraded in place by a writer (`vcopy library upgrade`, or `vcopy index`).
SCHEMA_VERSION = 6
_OLDEST_UPGRADABLE = 4
_DB, _LOCK, _VECTORS, _ID = "library.sqlite", "write.lock", "vectors", "library.id"
_OLD_INDEX = "index.faiss"  # schema <= 5: the only copy of the vectors
SNAPSHOT_FRACTION = 0.1  # pending changes that make a writer write the index file again ...
SNAPSHOT_MAX_PENDING = 50_000  # ... or this many vectors, whichever is fewer
AUTO_REBUILD_GROWTH = 4  # an auto library's IVF index is trained again when its size calls for 4x the lists
DISK_MERGE_FRACTION = 0.1  # in-memory vectors (of the on-disk tier's) that make a writer write a new tier
MAX_FRAMES = 1 << 24  # frames per video (the row part of a vector id)
_VIDEO_COLUMNS = "id, path, sha256, size, mtime_ns, duration_s, fps, width, height, decoder, frames"

_LOOSE_TABLE = """CREATE TABLE IF NOT EXISTS loose_files (
    name TEXT PRIMARY KEY  -- a file written before the commit that names it, or no longer named
);"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY,  -- never reused (meta next_video_id): ids name vectors in the index file
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
    indexed_utc TEXT NOT NULL,
    frames INTEGER NOT NULL,
    timestamps_s BLOB NOT NULL,  -- float64 [frames], in time order
    vectors_file TEXT NOT NULL,  -- under vectors/
    vectors_sha256 TEXT NOT NULL,
    in_ann INTEGER NOT NULL DEFAULT 0  -- 1: its vectors are in the index file, 2: in its on-disk tier
);
-- what the index holds, summed without reading the rows (a commit's cost must not grow with them)
CREATE INDEX IF NOT EXISTS videos_in_ann ON videos (in_ann, frames);
CREATE TABLE IF NOT EXISTS ann_removed (
    video_id INTEGER PRIMARY KEY,  -- deleted, its vectors still in the index file
    frames INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ann_disk_removed (
    video_id INTEGER PRIMARY KEY,  -- deleted, its vectors still in the on-disk tier
    frames INTEGER NOT NULL
);
{loose}
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    failed_utc TEXT NOT NULL
);
""".replace("{loose}", _LOOSE_TABLE)


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
    frames: int


@dataclass(frozen=True)
class LibraryInfo:
    """What ``vcopy library info`` shows."""

    path: str
    videos: int
    hours: float
    vectors: int
    bytes_on_disk: int
    descriptor: str
    sample_fps: float
    keyframes: str  # the key-framer's full name (``vcopy.keyframes``): ``uniform`` keeps every sampled frame
    index_spec: str  # as asked for (``auto`` or a FAISS factory string)
    index_built: str  # what the index file is
    index_pending: int  # vectors added or removed since the index file was written
    state_id: str
    schema_version: int


@dataclass(frozen=True)
class VideoTables:
    """Tables another part of vcopy keeps for each library video (text search's, for one):
    created with the library's own, written in the transaction that commits a video, deleted with
    it. Each table has a ``video_id INTEGER PRIMARY KEY REFERENCES videos(id)`` column."""

    name: str
    schema: str  # CREATE TABLE IF NOT EXISTS ...
    tables: tuple[str, ...]
    insert: Callable[[sqlite3.Connection, int, EncodedVideo], None]  # rows of a video being committed


_VIDEO_TABLES: dict[str, VideoTables] = {}


def register_tables(tables: VideoTables) -> None:
    """Keep ``tables`` in every library opened to write from now on."""
    _VIDEO_TABLES[tables.name] = tables


def _create_tables(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA + "".join(t.schema for t in _VIDEO_TABLES.values()))


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Library:
    """A feature library on disk. ``Library.open(path)`` to read, ``Library.open(path, write=True)``
    (a context manager) to add or remove videos."""

    def __init__(self, root: Path, db: sqlite3.Connection, lock_fd: int | None) -> None:
        self.root = root
        self._db = db
        self._lock_fd = lock_fd
        self.dim = int(self.meta["dim"])
        self._ann: AnnIndex | None = None
        self._verified: set[str] = set()  # vector files whose checksum this process has checked

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        root: Path,
        write: bool = False,
        descriptor: Descriptor | None = None,
        sampling: SamplingConfig | None = None,
        keyframer: KeyFramer | None = None,
    ) -> Library:
        """Open a library; with ``write=True`` take its write lock, creating it if needed (which
        needs the ``descriptor`` and ``sampling`` it will be built with, and its ``keyframer``,
        default ``uniform``) and upgrading one made by an older vcopy."""
        root = Path(root)
        lock_fd = None
        if not (root / _DB).is_file():
            _refuse_stored_files(root)
        if write and descriptor is None and not (root / _DB).is_file():  # nothing to create it with
            raise LibraryError(f"{root}: not a vcopy library (no {_DB}); create one with `vcopy index`")
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
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if _has_meta(db) else {}
            if not meta:
                _refuse_stored_files(root)
                if not write or descriptor is None or sampling is None:
                    raise LibraryError(f"{root}: library is empty and has no settings yet")
                _create(db, descriptor, sampling, keyframer)
                _write_identity(root, db)
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            _check_identity(root, db, meta, write)
            schema = _checked_settings(root / _DB, meta)
            if schema < SCHEMA_VERSION:
                if not write:
                    raise LibraryError(
                        f"{root}: made by an older vcopy (library schema {schema}); upgrade it in place "
                        f"with `vcopy library upgrade {root}` (or any `vcopy index` into it)"
                    )
                _upgrade(root, db, meta, schema)
            elif write:
                _create_tables(db)
            if descriptor is not None and meta["descriptor"] != descriptor.name:
                raise LibraryError(
                    f"{root}: built with descriptor {meta['descriptor']}, not {descriptor.name}"
                )
            if keyframer is not None and meta.get("keyframes", "uniform") != keyframer.name:
                raise LibraryError(
                    f"{root}: built with key frames {meta.get('keyframes', 'uniform')}, not {keyframer.name}"
                )
            library = cls(root, db, lock_fd)
            if write:
                library._remove_orphan_files()
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
    def pipeline_spec(self) -> PipelineSpec:
        """What this library's frames are computed with (``vcopy.pipeline``)."""
        meta = self.meta
        return PipelineSpec(
            descriptor=meta["descriptor"],
            sample_fps=float(meta["sample_fps"]),
            frame_size=int(meta["frame_size"]),
            text_features=meta.get("text_features", "1") == "1",
            keyframes=meta.get("keyframes", "uniform"),
        )

    @property
    def sampling(self) -> SamplingConfig:
        return self.pipeline_spec.sampling

    @property
    def state_id(self) -> str:
        """Changes with every committed write: ``g<generation>-v<videos>-n<vectors>``."""
        return f"g{self.meta['generation']}-v{len(self)}-n{self.vector_count}"

    @property
    def vector_count(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(frames), 0) FROM videos").fetchone()[0])

    def videos(self) -> list[LibraryVideo]:
        rows = self._db.execute(f"SELECT {_VIDEO_COLUMNS} FROM videos ORDER BY id").fetchall()
        return [LibraryVideo(*row) for row in rows]

    def video(self, video_id: int) -> LibraryVideo:
        row = self._db.execute(f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE id = ?", (video_id,)).fetchone()
        if row is None:
            raise LibraryError(f"{self.root}: no video with id {video_id}")
        return LibraryVideo(*row)

    def video_by_path(self, path: str) -> LibraryVideo | None:
        row = self._db.execute(f"SELECT {_VIDEO_COLUMNS} FROM videos WHERE path = ?", (path,)).fetchone()
        return None if row is None else LibraryVideo(*row)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM videos").fetchone()[0])

    @property
    def ann(self) -> AnnIndex:
        """The approximate index, loaded (and checked) on first use."""
        return self.load_index()

    def load_index(self) -> AnnIndex:
        """The approximate index, loaded and checked now if it is not yet: a missing or damaged
        index file is a ``LibraryError`` here, before any work that needs it."""
        if self._ann is None:
            self._ann = self._open_ann()
        return self._ann

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The approximate ``k`` nearest library frames of each vector: (similarities, video ids,
        frame rows), video -1 where there is no hit."""
        sims, ids = self.ann.search(vectors, k)
        videos, rows = split_ids(ids)
        return sims, videos, rows

    def frames_of(self, video_id: int) -> tuple[np.ndarray, np.ndarray]:
        """A video's exact vectors [N, dim] and their timestamps in seconds, in time order (its
        vector file checked against its recorded SHA-256)."""
        row = self._db.execute(
            "SELECT vectors_file, vectors_sha256, frames, timestamps_s, path FROM videos WHERE id = ?",
            (video_id,),
        ).fetchone()
        if row is None:
            raise LibraryError(f"{self.root}: no video with id {video_id}")
        vectors = self._read_vectors(row[0], row[1], int(row[2]), row[4])
        return vectors, np.frombuffer(row[3], dtype=np.float64).copy()

    def timestamps_of(self, video_id: int) -> np.ndarray:
        """The times (s) of a video's stored frames, in order."""
        row = self._db.execute("SELECT timestamps_s FROM videos WHERE id = ?", (video_id,)).fetchone()
        return np.zeros(0) if row is None else np.frombuffer(row[0], dtype=np.float64).copy()

    def video_row(self, table: str, columns: str, video_id: int) -> tuple | None:
        """A video's row in a registered table (``register_tables``); None when it has none, or
        when this library has no such table yet (made before the table was registered)."""
        if table not in {t for tables in _VIDEO_TABLES.values() for t in tables.tables}:
            raise ValueError(f"{table} is not a registered table")
        try:
            row = self._db.execute(
                f"SELECT {columns} FROM {table} WHERE video_id = ?", (video_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # no such table in a library opened read-only
            return None
        return None if row is None else tuple(row)

    def complete(self, video_id: int) -> bool:
        """Whether the video has its rows in every registered table (one indexed by a vcopy that did
        not keep them is indexed again)."""
        return all(
            self.video_row(table, "1", video_id) is not None
            for tables in _VIDEO_TABLES.values()
            for table in tables.tables
        )

    def info(self) -> LibraryInfo:
        meta = self.meta
        hours = (
            float(self._db.execute("SELECT COALESCE(SUM(duration_s), 0) FROM videos").fetchone()[0]) / 3600
        )
        files = [self.root / _DB, *(self.root / _VECTORS).glob("*.npy"), *self.root.glob("ann-*")]
        return LibraryInfo(
            path=str(self.root.resolve()),
            videos=len(self),
            hours=hours,
            vectors=self.vector_count,
            bytes_on_disk=sum(p.stat().st_size for p in files if p.is_file()),
            descriptor=meta["descriptor"],
            sample_fps=float(meta["sample_fps"]),
            keyframes=meta.get("keyframes", "uniform"),
            index_spec=meta["ann_spec"],
            index_built=meta.get("ann_built") or "none yet",
            index_pending=self._pending_vectors(),
            state_id=self.state_id,
            schema_version=int(meta["schema_version"]),
        )

    def verify(self) -> list[str]:
        """Every stored file checked against its recorded SHA-256 and size: one line per problem
        (none: the library is whole)."""
        self._verified.clear()  # every file hashed again
        problems = [
            f"{self.root / _DB}: damaged ({row[0]}); restore it from a backup"
            for row in self._db.execute("PRAGMA integrity_check").fetchall()
            if row[0] != "ok"
        ]
        for file, sha256, frames, path in self._db.execute(
            "SELECT vectors_file, vectors_sha256, frames, path FROM videos"
        ):
            try:
                self._read_vectors(file, sha256, int(frames), path)
            except LibraryError as exc:
                problems.append(str(exc))
        meta = self.meta
        if meta.get("ann_file"):
            try:
                self._read_ann_file(meta)
            except LibraryError as exc:
                problems.append(str(exc))
        if meta.get("ann_disk_file"):
            path = self.root / meta["ann_disk_lists"]
            try:
                self._read_disk_tier(meta)
                if sha256_file(path) != meta["ann_disk_lists_sha256"]:
                    problems.append(
                        f"{path}: damaged (its SHA-256 is not the one the library recorded); {_REBUILD}"
                    )
            except LibraryError as exc:
                problems.append(str(exc))
        return list(dict.fromkeys(problems))  # a problem met twice (the tier via the index) once

    # -- writing -------------------------------------------------------------------------------

    def commit(self, batch: list[EncodedVideo], durations_s: list[float]) -> None:
        """Store encoded videos (replacing any older version of the same files) in one commit: their
        vector files first (synced), then their rows; see the module docstring. A file that cannot
        be written (a full disk) is a ``LibraryError`` naming it; nothing of the batch is stored."""
        if not batch:
            return
        self._require_writer()
        with _write_errors(self.root, f"{len(batch)} videos not stored"):
            replaced = self._commit(batch, durations_s)
        with _write_errors(self.root, "the videos are stored; the next writer finishes the rest"):
            self._unlink(replaced)
            self._maybe_snapshot()

    def _commit(self, batch: list[EncodedVideo], durations_s: list[float]) -> list[str]:
        """The vector files and rows of a commit; returns the files of the videos it replaced."""
        ann = self.ann  # loaded before the rows change
        folder = self.root / _VECTORS
        folder.mkdir(exist_ok=True)
        for video in batch:
            if len(video.vectors) >= MAX_FRAMES:
                raise LibraryError(
                    f"{video.path}: {len(video.vectors)} frames; a library video holds fewer than "
                    f"{MAX_FRAMES}"
                )
        names = [f"{uuid.uuid4().hex}.npy" for _ in batch]
        self._loosen(names)
        files = [
            (name, _write_vector_file(folder / name, video.vectors))
            for name, video in zip(names, batch, strict=True)
        ]
        old_files: list[str] = []
        removed: list[tuple[int, int, int]] = []
        new_ids: list[int] = []
        with _transaction(self._db):
            next_id = int(self.meta["next_video_id"])
            for video, (name, sha256), duration_s in zip(batch, files, durations_s, strict=True):
                old = self.video_by_path(str(video.path))
                if old is not None:
                    gone, held = self._delete_rows([old.id])
                    old_files += gone
                    removed += held
                self._db.execute(
                    "INSERT INTO videos (id, path, sha256, size, mtime_ns, duration_s, fps, width, height,"
                    " rotation_deg, decoder, indexed_utc, frames, timestamps_s, vectors_file, vectors_sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        next_id, str(video.path), video.stamp.sha256, video.stamp.size, video.stamp.mtime_ns,
                        duration_s, video.info.fps, video.info.width, video.info.height,
                        video.info.rotation_deg, video.decoder, _utc_now(), len(video.vectors),
                        np.ascontiguousarray(video.timestamps_s, dtype=np.float64).tobytes(), name, sha256,
                    ),
                )  # fmt: skip
                for tables in _VIDEO_TABLES.values():
                    tables.insert(self._db, next_id, video)
                self._db.execute("DELETE FROM failures WHERE path = ?", (str(video.path),))
                new_ids.append(next_id)
                next_id += 1
            _set_meta(self._db, next_video_id=str(next_id))
            self._tighten(names, loosened=old_files)
            self._bump_generation()
        _forget(ann, removed)  # the in-memory index changes only once the rows have
        for video_id, video in zip(new_ids, batch, strict=True):
            ann.add(vector_ids(video_id, len(video.vectors)), video.vectors)
        return old_files

    def remove(self, video_ids: list[int]) -> None:
        """Delete videos: their rows (committed), then their vector files."""
        if not video_ids:
            return
        self._require_writer()
        ann = self.load_index()  # before the rows change
        with _write_errors(self.root, "nothing removed"):
            with _transaction(self._db):
                files, removed = self._delete_rows(video_ids)
                self._tighten([], loosened=files)
                self._bump_generation()
            _forget(ann, removed)
        with _write_errors(self.root, "the videos are removed; the next writer finishes the rest"):
            self._unlink(files)
            self._maybe_snapshot()

    def record_failure(self, path: Path, reason: str) -> None:
        self._require_writer()
        with _transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (str(path), reason, _utc_now())
            )

    def unchanged(self, path: Path) -> bool:
        """The file is indexed as it is now, with everything this vcopy stores of it (a video
        indexed without what text search reads is indexed again)."""
        video = self.video_by_path(str(path))
        if video is None or not self.complete(video.id):
            return False
        try:
            st = path.stat()
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) == (video.size, video.mtime_ns):
            return True
        if st.st_size != video.size:
            return False
        try:  # same size, new mtime: the content decides
            stamp = file_stamp(path)
        except OSError:
            return False
        if stamp.sha256 != video.sha256:
            return False
        if self._lock_fd is not None:
            with _transaction(self._db):
                self._db.execute("UPDATE videos SET mtime_ns = ? WHERE id = ?", (stamp.mtime_ns, video.id))
        return True

    def rebuild_index(self, spec: AnnSpec | None = None) -> AnnIndex:
        """Build the index again from the vector files (trained again where it needs training),
        with ``spec`` or the library's own, and write it; ``spec`` is recorded with the new index
        file (a build that fails changes nothing)."""
        self._require_writer()
        requested = spec if spec is not None else AnnSpec.parse(self.meta["ann_spec"])
        with _write_errors(self.root, "the index was not rebuilt"):
            self._ann = self._build_ann(requested.resolved(self.dim, self.vector_count))
            self._snapshot(ann_spec=str(requested))
        return self.ann

    # -- internals -----------------------------------------------------------------------------

    def _require_writer(self) -> None:
        if self._lock_fd is None:
            raise LibraryError(f"{self.root}: opened read-only")

    def _read_vectors(self, name: str, sha256: str, frames: int, video_path: str) -> np.ndarray:
        """A vector file (of the library video ``video_path``, which errors name), checked against
        its recorded SHA-256 the first time this process reads it (vector files are written once and
        never changed: a query batch that reads the same reference again does not hash it again;
        ``verify`` always does)."""
        path = self.root / _VECTORS / name
        what = f"{path} (the vectors of {video_path})"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LibraryError(f"{what}: missing; {_reindex(video_path)}") from None
        except OSError as exc:
            raise LibraryError(f"{what}: unreadable ({exc.strerror or exc})") from None
        if name not in self._verified:
            if hashlib.sha256(data).hexdigest() != sha256:
                raise LibraryError(
                    f"{what}: damaged (its SHA-256 is not the one the library recorded); "
                    f"{_reindex(video_path)}"
                )
            self._verified.add(name)
        try:
            vectors = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise LibraryError(f"{what}: not a vector file ({exc})") from None
        if vectors.shape != (frames, self.dim) or vectors.dtype != np.float32:
            raise LibraryError(
                f"{what}: holds {vectors.shape} {vectors.dtype}, not {frames} x {self.dim} float32"
            )
        return vectors

    def _delete_rows(self, video_ids: list[int]) -> tuple[list[str], list[tuple[int, int, int]]]:
        """Delete videos' rows (inside a transaction); returns their vector files and what the
        in-memory index must forget once the transaction is committed (``_forget``)."""
        files, removed = [], []
        for video_id in video_ids:
            row = self._db.execute(
                "SELECT vectors_file, frames, in_ann FROM videos WHERE id = ?", (video_id,)
            ).fetchone()
            if row is None:
                continue
            files.append(row[0])
            if row[2]:
                table = "ann_disk_removed" if row[2] == 2 else "ann_removed"
                self._db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", (video_id, row[1]))
            for table in (t for tables in _VIDEO_TABLES.values() for t in tables.tables):
                self._db.execute(f"DELETE FROM {table} WHERE video_id = ?", (video_id,))
            self._db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            removed.append((video_id, int(row[1]), int(row[2])))
        return files, removed

    def _unlink(self, files: Iterable[str], folder: str = _VECTORS) -> None:
        """Remove files a commit stopped naming, then their ``loose_files`` entries."""
        names = list(files)
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.root / folder / name).unlink()
        if names:
            with _transaction(self._db):
                self._db.executemany("DELETE FROM loose_files WHERE name = ?", [(n,) for n in names])

    def _loosen(self, names: list[str]) -> None:
        """List files about to be written (committed before they are), so that the next writer may
        remove them if the commit that would name them never comes."""
        with _transaction(self._db):
            self._db.executemany("INSERT OR IGNORE INTO loose_files VALUES (?)", [(n,) for n in names])

    def _tighten(self, named: list[str], loosened: list[str]) -> None:
        """Inside a commit: files it names are no longer loose, files it stops naming are."""
        self._db.executemany("DELETE FROM loose_files WHERE name = ?", [(n,) for n in named])
        self._db.executemany("INSERT OR IGNORE INTO loose_files VALUES (?)", [(n,) for n in loosened])

    def _bump_generation(self) -> None:
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")

    def _remove_orphan_files(self) -> None:
        """What a kill left: files listed as loose that no row or setting names (written before a
        commit that never came, or no longer named after one), and half-written temporary files.
        A file the database does not list is never removed."""
        for folder in (self.root, self.root / _VECTORS):
            for path in folder.glob(".*.tmp*"):
                path.unlink(missing_ok=True)
        loose = [r[0] for r in self._db.execute("SELECT name FROM loose_files")]
        if not loose:
            return
        named = {r[0] for r in self._db.execute("SELECT vectors_file FROM videos")}
        meta = self.meta
        named |= {meta.get(key) or "" for key in ("ann_file", *_DISK_TIER_FILES)}
        orphans = [name for name in loose if name not in named and _LOOSE_NAME.fullmatch(name)]
        self._unlink(n for n in orphans if n.endswith(".npy"))
        self._unlink((n for n in orphans if not n.endswith(".npy")), folder=".")
        with _transaction(self._db):  # listed, then named by a commit: not loose
            listed = [(n,) for n in loose if n in named]
            self._db.executemany("DELETE FROM loose_files WHERE name = ?", listed)

    def _pending_vectors(self) -> int:
        added = self._db.execute("SELECT COALESCE(SUM(frames), 0) FROM videos WHERE in_ann = 0").fetchone()[0]
        removed = self._db.execute("SELECT COALESCE(SUM(frames), 0) FROM ann_removed").fetchone()[0]
        if self.meta.get("ann_disk_file"):  # (the table exists: a writer made the tier)
            hidden = self._db.execute("SELECT COALESCE(SUM(frames), 0) FROM ann_disk_removed").fetchone()[0]
            removed += int(hidden)
        return int(added) + int(removed)

    def _open_ann(self) -> AnnIndex:
        """The index file with what was committed since it was written applied: removed videos out,
        added ones in (from their vector files), all read in one snapshot of the database; read
        again when a writer replaced the index file meanwhile."""
        for _ in range(3):
            try:
                with _read_snapshot(self._db):
                    meta = self.meta
                    return self._open_ann_as_of(meta)
            except LibraryError:
                fresh = self.meta  # a writer may have replaced the files since the snapshot
                if all(fresh.get(key) == meta.get(key) for key in ("ann_file", *_DISK_TIER_FILES)):
                    raise
        raise LibraryError(f"{self.root}: its index kept changing while it was read; try again")

    def _open_ann_as_of(self, meta: dict[str, str]) -> AnnIndex:
        if not meta.get("ann_file"):
            if int(self._db.execute("SELECT COUNT(*) FROM videos WHERE in_ann = 1").fetchone()[0]):
                raise LibraryError(
                    f"{self.root}: the library has no index file but lists videos in one; {_REBUILD}"
                )
            ann = AnnIndex.trained(AnnSpec("Flat"), self.dim, np.zeros((0, self.dim), np.float32))
        else:
            ann = self._read_ann_file(meta)
        for video_id, frames in self._db.execute("SELECT video_id, frames FROM ann_removed").fetchall():
            ann.remove_video(int(video_id), int(frames))
        if ann.disk is not None:
            for video_id, frames in self._db.execute("SELECT video_id, frames FROM ann_disk_removed"):
                ann.remove_video(int(video_id), int(frames), on_disk=True)
        pending = self._db.execute(
            "SELECT id, vectors_file, vectors_sha256, frames, path FROM videos WHERE in_ann = 0 ORDER BY id"
        ).fetchall()
        for video_id, name, sha256, frames, video_path in pending:
            ann.add(vector_ids(video_id, frames), self._read_vectors(name, sha256, frames, video_path))
        return ann

    def _read_ann_file(self, meta: dict[str, str]) -> AnnIndex:
        path = self.root / meta["ann_file"]
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except FileNotFoundError:
            raise LibraryError(f"{path}: missing (the library's index file); {_REBUILD}") from None
        except OSError as exc:
            raise LibraryError(f"{path}: unreadable ({exc.strerror or exc})") from None
        if hashlib.sha256(data.data).hexdigest() != meta.get("ann_sha256"):
            raise LibraryError(
                f"{path}: damaged or replaced (its SHA-256 is not the one the library recorded); {_REBUILD}"
            )
        spec = AnnSpec.parse(meta["ann_built"])
        disk = None
        if meta.get("ann_disk_file"):
            disk = self._read_disk_tier(meta)
        try:
            ann = AnnIndex.deserialize(data, spec, self.dim, disk)
        except (RuntimeError, ValueError) as exc:
            raise LibraryError(f"{path}: unusable index file ({faiss_reason(exc)}); {_REBUILD}") from None
        if ann.memory_vectors != int(meta.get("ann_vectors", -1)):
            raise LibraryError(
                f"{path}: holds {ann.memory_vectors} vectors, the library recorded "
                f"{meta.get('ann_vectors')}; {_REBUILD}"
            )
        return ann

    def _read_disk_tier(self, meta: dict[str, str]) -> object:
        """The on-disk tier: its header checked against its SHA-256, its lists file's size."""
        header, lists = self.root / meta["ann_disk_file"], self.root / meta["ann_disk_lists"]
        for path in (header, lists):
            if not path.is_file():
                raise LibraryError(f"{path}: missing (the library's on-disk index); {_REBUILD}")
        if sha256_file(header) != meta["ann_disk_sha256"]:
            raise LibraryError(
                f"{header}: damaged or replaced (its SHA-256 is not the one the library recorded); {_REBUILD}"
            )
        if lists.stat().st_size != int(meta["ann_disk_lists_bytes"]):
            raise LibraryError(
                f"{lists}: {lists.stat().st_size} bytes, the library recorded "
                f"{meta['ann_disk_lists_bytes']}; {_REBUILD}"
            )
        if meta.get("ann_disk_lists_samples") != _samples(lists, meta.get("ann_disk_lists_samples")):
            raise LibraryError(
                f"{lists}: damaged or replaced (its sampled SHA-256s are not the ones the library "
                f"recorded); {_REBUILD}"
            )
        try:
            disk = read_disk_tier(header, AnnSpec.parse(meta["ann_built"]))
        except RuntimeError as exc:
            raise LibraryError(f"{header}: unusable index file ({faiss_reason(exc)}); {_REBUILD}") from None
        if int(disk.ntotal) != int(meta["ann_disk_vectors"]):
            raise LibraryError(
                f"{header}: holds {disk.ntotal} vectors, the library recorded {meta['ann_disk_vectors']}; "
                f"{_REBUILD}"
            )
        return disk

    def _build_ann(self, spec: AnnSpec) -> AnnIndex:
        """A new index of concrete ``spec`` over every stored vector (trained on a sample of them)."""
        rows = self._db.execute(
            "SELECT id, vectors_file, vectors_sha256, frames, path FROM videos ORDER BY id"
        ).fetchall()
        need = training_sample(self.vector_count, spec)
        sample = np.zeros((0, self.dim), np.float32)
        rng = np.random.default_rng(0)
        picked, have = [], 0
        for i in rng.permutation(len(rows)) if need else ():
            video_id, name, sha256, frames, video_path = rows[i]
            picked.append(self._read_vectors(name, sha256, frames, video_path))
            have += frames
            if have >= need:
                break
        sample = np.concatenate(picked)[:need] if picked else sample
        least = max(spec.lists, 256 if "PQ" in spec.factory else 0)  # a PQ code book has 256 entries
        if len(sample) < least:
            raise LibraryError(
                f"{self.root}: index {spec} needs at least {least} vectors to train; the library "
                f"has {self.vector_count}"
            )
        ann = AnnIndex.trained(spec, self.dim, sample)
        for video_id, name, sha256, frames, video_path in rows:
            ann.add(vector_ids(video_id, frames), self._read_vectors(name, sha256, frames, video_path))
        return ann

    def _maybe_snapshot(self) -> None:
        """Write the index file again once the changes since it was written are many enough (and
        move an ``auto`` library to the index its size calls for)."""
        meta = self.meta
        total = self.vector_count
        concrete = AnnSpec.parse(meta["ann_spec"]).resolved(self.dim, total)
        if _outgrown(self.ann.spec, concrete):
            self._ann = self._build_ann(concrete)
            self._snapshot()
            return
        pending = self._pending_vectors()
        if pending and pending >= min(SNAPSHOT_FRACTION * max(total, 1), SNAPSHOT_MAX_PENDING):
            self._snapshot()

    def _snapshot(self, **settings: str) -> None:
        """Write the in-memory index under a new name (and, with on-disk lists, a new on-disk tier
        when the in-memory part has grown enough), then record them (and which videos they hold,
        and any ``settings`` that go with them) in one transaction, then remove the old files."""
        ann, old = self.ann, self.meta
        stem = f"ann-{int(old['generation'])}-{uuid.uuid4().hex[:8]}"
        merge = ann.spec.ondisk and (
            ann.disk is None or ann.memory_vectors >= DISK_MERGE_FRACTION * ann.disk_vectors
        )
        tier: dict[str, str] = {}
        name = f"{stem}.faiss"
        written = [name, f"{stem}-disk.faiss", f"{stem}.ivfdata"] if merge else [name]
        self._loosen(written)
        if merge:
            header, lists = self.root / f"{stem}-disk.faiss", self.root / f"{stem}.ivfdata"
            ann.merged_to_disk(header, lists)
            tier = {
                "ann_disk_file": header.name,
                "ann_disk_sha256": sha256_file(header),
                "ann_disk_lists": lists.name,
                "ann_disk_lists_bytes": str(lists.stat().st_size),
                "ann_disk_lists_sha256": sha256_file(lists),
                "ann_disk_lists_samples": _samples(lists) or "",
                "ann_disk_vectors": str(ann.disk_vectors),
            }
        elif ann.disk is None:
            tier = dict.fromkeys(_DISK_TIER_KEYS, "")
        data = ann.serialize()
        write_atomically(self.root / name, data.tobytes(), durable=True)
        replaced = [old[key] for key in ("ann_file", *(_DISK_TIER_FILES if tier else ())) if old.get(key)]
        with _transaction(self._db):
            self._tighten(written, loosened=replaced)
            _set_meta(
                self._db,
                ann_file=name,
                ann_sha256=hashlib.sha256(data.data).hexdigest(),
                ann_vectors=str(ann.memory_vectors),
                ann_built=str(ann.spec),
                **tier,
                **settings,
            )
            if merge:
                self._db.execute("UPDATE videos SET in_ann = 2")
            elif ann.disk is None:
                self._db.execute("UPDATE videos SET in_ann = 1")
            else:
                self._db.execute("UPDATE videos SET in_ann = 1 WHERE in_ann = 0")
            self._db.execute("DELETE FROM ann_removed")
            if tier:
                self._db.execute("DELETE FROM ann_disk_removed")
        self._unlink(replaced, folder=".")


def _reindex(video_path: str) -> str:
    """How a video with damaged vectors is repaired."""
    return (
        f"remove the video (`vcopy library rm LIB {video_path}`) and index it again, or restore the "
        "library from a backup"
    )


_REBUILD = "rebuild it from the vector files with `vcopy library rebuild-index LIB`"


def _outgrown(built: AnnSpec, concrete: AnnSpec) -> bool:
    """Whether an ``auto`` library has outgrown the index it has: Flat where IVF is due, lists in
    memory where they go on disk, or a quarter of the inverted lists its size calls for (each list
    would then be scanned at four times the length ``auto`` plans for)."""
    return (
        (built.factory == "Flat" and concrete.factory != "Flat")
        or (concrete.ondisk and not built.ondisk)
        or (built.lists > 0 and concrete.lists >= AUTO_REBUILD_GROWTH * built.lists)
    )


_DISK_TIER_FILES = ("ann_disk_file", "ann_disk_lists")
_DISK_TIER_KEYS = (
    *_DISK_TIER_FILES,
    "ann_disk_sha256",
    "ann_disk_lists_bytes",
    "ann_disk_lists_sha256",
    "ann_disk_lists_samples",
    "ann_disk_vectors",
)


def _write_vector_file(path: Path, vectors: np.ndarray) -> str:
    """A new vector file (synced to disk); its SHA-256."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    write_atomically(path, buffer.getvalue(), durable=True)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def _forget(ann: AnnIndex, removed: list[tuple[int, int, int]]) -> None:
    """Take deleted videos (id, frames, in_ann) out of the in-memory index."""
    for video_id, frames, in_ann in removed:
        ann.remove_video(video_id, frames, on_disk=in_ann == 2)


LISTS_SAMPLES = 8  # 1 MiB blocks of an on-disk lists file hashed when it is opened
_SAMPLE_BYTES = 1 << 20


def _samples(path: Path, recorded: str | None = "") -> str | None:
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


_LOOSE_NAME = re.compile(r"([0-9a-f]{32}\.npy|ann-\d+-[0-9a-f]{8}(-disk\.faiss|\.faiss|\.ivfdata))")


def _refuse_stored_files(root: Path) -> None:
    """A folder that holds a library's files but no usable database is not made a new library (its
    vectors would be orphaned) nor opened: the database must be restored."""
    stored = [root / _ID, *root.glob("ann-*")]
    if any(p.exists() for p in stored) or any((root / _VECTORS).glob("*.npy")):
        raise LibraryError(
            f"{root}: holds a library's vectors but no usable {_DB} (lost or emptied); restore "
            f"{root / _DB} from a backup, or move the folder away to start a new library"
        )


def _write_identity(root: Path, db: sqlite3.Connection) -> None:
    """Give a library its identity: in its meta, then in ``library.id`` beside it."""
    identity = uuid.uuid4().hex
    with _transaction(db):
        _set_meta(db, library_id=identity)
    write_atomically(root / _ID, f"{identity}\n".encode(), durable=True)


def _check_identity(root: Path, db: sqlite3.Connection, meta: dict[str, str], write: bool) -> None:
    """The database must be this folder's own (``library.id``); a library made before vcopy
    recorded identities gets one from its first writer."""
    try:
        on_disk = (root / _ID).read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        on_disk = None
    except OSError as exc:
        raise LibraryError(f"{root / _ID}: unreadable ({exc.strerror or exc})") from None
    recorded = meta.get("library_id")
    if recorded and on_disk and recorded != on_disk:
        raise LibraryError(
            f"{root / _DB}: the database of another library (its identity is not {root / _ID}'s); "
            f"restore this library's own {_DB} from a backup"
        )
    if not recorded and on_disk:
        raise LibraryError(
            f"{root / _DB}: a database with no identity in a library that has one ({root / _ID}); "
            f"restore this library's own {_DB} from a backup (if this is its own, from before vcopy "
            f"recorded identities, remove {root / _ID})"
        )
    if write and on_disk is None:
        if recorded and any((root / _VECTORS).glob("*.npy")) and not _names_every_vector_file(root, db):
            raise LibraryError(
                f"{root / _ID}: missing, and {root / _VECTORS} holds files the database does not name; "
                f"restore {root / _ID} (or this library's own {_DB}) from a backup"
            )
        if recorded:
            write_atomically(root / _ID, f"{recorded}\n".encode(), durable=True)
        else:
            _write_identity(root, db)
        meta.update(dict(db.execute("SELECT key, value FROM meta").fetchall()))


def _names_every_vector_file(root: Path, db: sqlite3.Connection) -> bool:
    named = {r[0] for r in db.execute("SELECT vectors_file FROM videos")}
    return all(p.name in named for p in (root / _VECTORS).glob("*.npy"))


@contextlib.contextmanager
def _write_errors(root: Path, outcome: str) -> Iterator[None]:
    """A file or the database that cannot be written (a full disk) as a ``LibraryError`` naming it
    and what became of the work."""
    try:
        yield
    except OSError as exc:
        raise LibraryError(
            f"{exc.filename or root}: cannot be written ({exc.strerror or exc}); {outcome}"
        ) from None
    except sqlite3.OperationalError as exc:
        raise LibraryError(f"{root / _DB}: cannot be written ({exc}); {outcome}") from None


@contextlib.contextmanager
def _read_snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """Reads inside the block see one state of the database (none in a writer's transaction)."""
    if db.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def recorded_descriptor(root: Path) -> str | None:
    """The descriptor a library at ``root`` records (``recorded_settings``); None where there is no
    library yet."""
    settings = recorded_settings(root)
    return None if settings is None else settings.get("descriptor")


def recorded_settings(root: Path) -> dict[str, str] | None:
    """The settings a library at ``root`` records, read from its database alone (no index is
    loaded); None where there is no library yet."""
    path = Path(root) / _DB
    if not path.is_file():
        return None
    db = None
    try:
        db = _connect(path, write=False)
        rows = db.execute("SELECT key, value FROM meta").fetchall() if _has_meta(db) else []
    except sqlite3.DatabaseError as exc:
        raise LibraryError(f"{path}: unreadable library database ({exc})") from None
    finally:
        _close(db, None)
    return {str(k): str(v) for k, v in rows} or None


def _has_meta(db: sqlite3.Connection) -> bool:
    return (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        is not None
    )


def _create(
    db: sqlite3.Connection, descriptor: Descriptor, sampling: SamplingConfig, keyframer: KeyFramer | None
) -> None:
    models = keyframer.models if keyframer is not None else []
    _create_tables(db)
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "descriptor": descriptor.name,
        "dim": str(descriptor.dim),
        "sample_fps": repr(sampling.sample_fps),
        "frame_size": str(sampling.frame_size),
        "text_features": "1",
        "keyframes": keyframer.name if keyframer is not None else "uniform",
        "keyframes_sha256": models[0]["sha256"] if models else "",
        "generation": "0",
        "next_video_id": "1",
        "ann_spec": "auto",
        "created_utc": _utc_now(),
    }
    with _transaction(db):
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())


def _upgrade(root: Path, db: sqlite3.Connection, meta: dict[str, str], schema: int) -> None:
    """Convert a schema 4/5 library in place: its FAISS file (the only copy of its vectors, checked
    against its record) becomes one vector file per video, its per-vector rows a column of frame
    times; the old index file is removed once the new rows are committed."""
    import faiss

    if schema < _OLDEST_UPGRADABLE:
        raise LibraryError(
            f"{root}: library schema {schema} is too old to upgrade; index the videos again into a new "
            "library"
        )
    old_index = root / _OLD_INDEX
    videos = db.execute("SELECT id, path FROM videos ORDER BY id").fetchall()
    index = None
    if videos:
        try:
            data = np.fromfile(old_index, dtype=np.uint8)
        except OSError as exc:
            raise LibraryError(
                f"{old_index}: unreadable ({exc.strerror or exc}); the library cannot be upgraded"
            ) from None
        recorded = meta.get("index_sha256")
        if recorded and hashlib.sha256(data.data).hexdigest() not in (
            recorded,
            meta.get("pending_index_sha256"),
        ):
            raise LibraryError(f"{old_index}: damaged (its SHA-256 is not the one the library recorded)")
        try:
            index = faiss.deserialize_index(data)
        except RuntimeError as exc:
            raise LibraryError(f"{old_index}: unreadable FAISS index ({faiss_reason(exc)})") from None
    folder = root / _VECTORS
    folder.mkdir(exist_ok=True)
    db.execute(_LOOSE_TABLE)
    converted = []
    for video_id, path in videos:
        rows = db.execute(
            "SELECT id, timestamp_s FROM vectors WHERE video_id = ? ORDER BY timestamp_s", (video_id,)
        ).fetchall()
        assert index is not None  # there are videos
        try:
            vectors = np.stack([index.reconstruct(int(r[0])) for r in rows]).astype(np.float32)
        except (RuntimeError, ValueError) as exc:
            raise LibraryError(
                f"{old_index}: vectors of {path} are missing from it ({faiss_reason(exc)})"
            ) from None
        name = f"{uuid.uuid4().hex}.npy"
        db.execute("INSERT OR IGNORE INTO loose_files VALUES (?)", (name,))
        sha256 = _write_vector_file(folder / name, vectors)
        times = np.array([r[1] for r in rows], dtype=np.float64)
        converted.append((video_id, len(rows), times.tobytes(), name, sha256))
    with _transaction(db):
        for column, kind in (
            ("frames", "INTEGER NOT NULL DEFAULT 0"),
            ("timestamps_s", "BLOB NOT NULL DEFAULT x''"),
            ("vectors_file", "TEXT NOT NULL DEFAULT ''"),
            ("vectors_sha256", "TEXT NOT NULL DEFAULT ''"),
            ("in_ann", "INTEGER NOT NULL DEFAULT 0"),
        ):
            db.execute(f"ALTER TABLE videos ADD COLUMN {column} {kind}")
        db.executemany(
            "UPDATE videos SET frames = ?, timestamps_s = ?, vectors_file = ?, vectors_sha256 = ?"
            " WHERE id = ?",
            [(n, t, f, s, v) for v, n, t, f, s in converted],
        )
        db.execute("DROP TABLE IF EXISTS vectors")
        db.executemany("DELETE FROM loose_files WHERE name = ?", [(c[3],) for c in converted])
        db.execute("DELETE FROM meta WHERE key IN ('index_sha256', 'index_vectors', 'pending_index_sha256')")
        next_id = int(db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM videos").fetchone()[0])
        _set_meta(db, schema_version=str(SCHEMA_VERSION), next_video_id=str(next_id), ann_spec="auto")
    _create_tables(db)  # the tables this schema added
    old_index.unlink(missing_ok=True)
    meta.update(dict(db.execute("SELECT key, value FROM meta").fetchall()))


def _connect(path: Path, write: bool) -> sqlite3.Connection:
    """The library database. Readers open it read-only; where its folder cannot be written (a
    read-only mount, where WAL mode cannot make its shared-memory file) as immutable, which is
    safe when no journal is left to apply."""
    if write:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode = WAL")
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
                    "open it once where it can be written (e.g. `vcopy library info` or `vcopy index` there)"
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
        if schema >= SCHEMA_VERSION:
            bounded_int(int(meta["next_video_id"]), "next_video_id", 1, 1 << 38)
            AnnSpec.parse(meta["ann_spec"])
            if meta.get("ann_built"):
                AnnSpec.parse(meta["ann_built"])
    except KeyError as exc:
        raise LibraryError(f"{db_path}: the library has no setting {exc}") from None
    except ValueError as exc:
        raise LibraryError(f"{db_path}: unusable library setting ({exc})") from None
    if schema > SCHEMA_VERSION:
        raise LibraryError(f"{db_path}: library schema {schema} is not supported (made by a newer vcopy)")
    return schema


def _set_meta(db: sqlite3.Connection, **values: str) -> None:
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())


def _busy(root: Path, lock_fd: int) -> LibraryError:
    """The error of a library whose write lock another process holds (its pid is in the file)."""
    holder = os.pread(lock_fd, 64, 0).decode(errors="replace").strip() or "unknown"
    return LibraryError(f"{root}: another process (pid {holder}) is writing this library; try again later")


def check_no_writer(root: Path) -> None:
    """A ``LibraryError`` now if another process is writing the library at ``root``: an ``index``
    that would wait for it is refused before it loads any model."""
    try:
        fd = os.open(Path(root) / _LOCK, os.O_RDONLY)
    except OSError:
        return  # no lock file: no writer (opening for write checks again)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(root, fd) from None
    finally:
        os.close(fd)


def _take_lock(root: Path) -> int:
    try:
        fd = os.open(root / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LibraryError(f"{root}: cannot be written ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        error = _busy(root, fd)
        os.close(fd)
        raise error from None
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


def faiss_reason(exc: BaseException) -> str:
    """A FAISS error's message without the C++ function signature and source line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = re.match(r"Error in .*? at \S+:\d+: (.*)", text)
    return (match[1] if match else text)[:200]
