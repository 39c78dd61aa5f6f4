"""The feature library: where frame vectors are kept. It only stores; what is computed (decoding,
the descriptor, text features) is ``vcopy.indexing``'s, and the settings it was computed with are
recorded here so that ``index`` and ``query`` cannot drift apart.

Layout of ``LIB/``::

    library.sqlite      videos (path, sha256, size, mtime, duration, fps, ..., the times of their
                        frames, their vector file and its SHA-256), failures, meta (descriptor,
                        sampling, index spec, generation), ann_removed (videos deleted since the
                        index file was written), and the tables other modules register for each
                        video (``register_tables``: text search's frame_classes, frame_layouts)
    vectors/<id>.npy    one file per video: its exact frame vectors, float16 [frames, dim], written
                        once and never rewritten (a re-indexed video gets a new file)
    ann-<n>.faiss       the approximate-nearest-neighbour index (``vcopy.ann``) as last written: derived
                        data, rebuilt from the vector files by ``vcopy library rebuild-index``; an
                        exact (``Flat``) index is never written (it would be a second copy of the
                        vector files): it is filled from them when the library is opened
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
import hashlib
import os
import sqlite3
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcopy.ann import AnnIndex, AnnSpec, split_ids, training_sample, vector_ids
from vcopy.errors import LibraryError
from vcopy.files import write_atomically
from vcopy.library_ann import (
    DISK_TIER_FILES,
    DISK_TIER_KEYS,
    REBUILD_ADVICE,
    forget_videos,
    outgrown,
    read_disk_tier_files,
    read_index_file,
    write_disk_tier,
)
from vcopy.library_db import (
    DB_FILE,
    LOOSE_NAME,
    VECTORS_FOLDER,
    VIDEO_TABLES,
    as_stored,
    float64_blob,
    open_database,
    read_snapshot,
    read_span_ends,
    read_vector_file,
    set_meta,
    transaction,
    utc_now,
    write_errors,
    write_vector_file,
)
from vcopy.pipeline import PipelineSpec
from vcopy.video import SamplingConfig, file_stamp, sha256_file

if TYPE_CHECKING:  # the descriptor (torch) loads only where videos are described: opening is light
    from vcopy.features import EncodedVideo

SNAPSHOT_FRACTION = 0.1  # pending changes that make a writer write the index file again ...
SNAPSHOT_MAX_PENDING = 50_000  # ... or this many vectors, whichever is fewer
DISK_MERGE_FRACTION = 0.1  # in-memory vectors (of the on-disk tier's) that make a writer write a new tier
MAX_FRAMES = 1 << 24  # frames per video (the row part of a vector id)
_VIDEO_COLUMNS = "id, path, sha256, size, mtime_ns, duration_s, fps, width, height, decoder, frames"


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
        spec: PipelineSpec | None = None,
    ) -> Library:
        """Open a library; with ``write=True`` take its write lock, creating it if needed (which
        needs the ``spec`` of what its frames are computed with: ``PipelineSpec.of(descriptor,
        sampling, keyframer)``) and upgrading one made by an older vcopy. A ``spec`` of another
        descriptor or key frames than an existing library's is a ``LibraryError``."""
        root = Path(root)

        def library(db: sqlite3.Connection, lock_fd: int | None) -> Library:
            opened = cls(root, db, lock_fd)
            if write:
                opened._remove_orphan_files()
            return opened

        return open_database(root, write, spec, library)

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
            dim=int(meta["dim"]),
            sample_fps=float(meta["sample_fps"]),
            frame_size=int(meta["frame_size"]),
            text_features=meta.get("text_features", "1") == "1",
            keyframes=meta.get("keyframes", "uniform"),
            keyframes_sha256=meta.get("keyframes_sha256", ""),
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

    def span_ends_of(self, video_id: int) -> np.ndarray:
        """Where the span each of a video's stored frames stands for ends (s): a key frame's as its
        key-framer recorded it (``vcopy.keyframes.span_ends``), one sampling step otherwise."""
        return read_span_ends(self._db, self.root / DB_FILE, video_id, self.sampling.sample_fps)

    def video_row(self, table: str, columns: str, video_id: int) -> tuple | None:
        """A video's row in a registered table (``register_tables``); None when it has none, or
        when this library has no such table yet (made before the table was registered)."""
        if table not in {t for tables in VIDEO_TABLES.values() for t in tables.tables}:
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
            for tables in VIDEO_TABLES.values()
            for table in tables.tables
        )

    def info(self) -> LibraryInfo:
        meta = self.meta
        hours = (
            float(self._db.execute("SELECT COALESCE(SUM(duration_s), 0) FROM videos").fetchone()[0]) / 3600
        )
        files = [self.root / DB_FILE, *(self.root / VECTORS_FOLDER).glob("*.npy"), *self.root.glob("ann-*")]
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
            index_built=meta.get("ann_built") or "Flat",  # (filled from the vector files)
            index_pending=self._pending_vectors(),
            state_id=self.state_id,
            schema_version=int(meta["schema_version"]),
        )

    def verify(self) -> list[str]:
        """Every stored file checked against its recorded SHA-256 and size: one line per problem
        (none: the library is whole)."""
        self._verified.clear()  # every file hashed again
        problems = [
            f"{self.root / DB_FILE}: damaged ({row[0]}); restore it from a backup"
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
                read_index_file(self.root, meta, self.dim)
            except LibraryError as exc:
                problems.append(str(exc))
        if meta.get("ann_disk_file"):
            path = self.root / meta["ann_disk_lists"]
            try:
                read_disk_tier_files(self.root, meta)
                if sha256_file(path) != meta["ann_disk_lists_sha256"]:
                    problems.append(
                        f"{path}: damaged (its SHA-256 is not the one the library recorded); {REBUILD_ADVICE}"
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
        with write_errors(self.root, f"{len(batch)} videos not stored"):
            replaced = self._commit(batch, durations_s)
        with write_errors(self.root, "the videos are stored; the next writer finishes the rest"):
            self._unlink(replaced)
            self._maybe_snapshot()

    def _commit(self, batch: list[EncodedVideo], durations_s: list[float]) -> list[str]:
        """The vector files and rows of a commit; returns the files of the videos it replaced."""
        ann = self.ann  # loaded before the rows change
        folder = self.root / VECTORS_FOLDER
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
            (name, write_vector_file(folder / name, video.vectors))
            for name, video in zip(names, batch, strict=True)
        ]
        old_files: list[str] = []
        removed: list[tuple[int, int, int]] = []
        new_ids: list[int] = []
        with transaction(self._db):
            next_id = int(self.meta["next_video_id"])
            for video, (name, sha256), duration_s in zip(batch, files, durations_s, strict=True):
                old = self.video_by_path(str(video.path))
                if old is not None:
                    gone, held = self._delete_rows([old.id])
                    old_files += gone
                    removed += held
                self._db.execute(
                    "INSERT INTO videos (id, path, sha256, size, mtime_ns, duration_s, fps, width, height,"
                    " rotation_deg, decoder, indexed_utc, frames, timestamps_s, vectors_file, vectors_sha256,"
                    " span_ends_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        next_id, str(video.path), video.stamp.sha256, video.stamp.size, video.stamp.mtime_ns,
                        duration_s, video.info.fps, video.info.width, video.info.height,
                        video.info.rotation_deg, video.decoder, utc_now(), len(video.vectors),
                        np.ascontiguousarray(video.timestamps_s, dtype=np.float64).tobytes(), name, sha256,
                        float64_blob(video.span_ends_s),
                    ),
                )  # fmt: skip
                for tables in VIDEO_TABLES.values():
                    tables.insert(self._db, next_id, video)
                self._db.execute("DELETE FROM failures WHERE path = ?", (str(video.path),))
                new_ids.append(next_id)
                next_id += 1
            set_meta(self._db, next_video_id=str(next_id))
            self._tighten(names, loosened=old_files)
            self._bump_generation()
        forget_videos(ann, removed)  # the in-memory index changes only once the rows have
        for video_id, video in zip(new_ids, batch, strict=True):
            ann.add(vector_ids(video_id, len(video.vectors)), as_stored(video.vectors))
        return old_files

    def remove(self, video_ids: list[int]) -> None:
        """Delete videos: their rows (committed), then their vector files."""
        if not video_ids:
            return
        self._require_writer()
        ann = self._ann
        if ann is None and self.meta.get("ann_file"):  # a damaged index file stops it before any change
            ann = self.load_index()
        # (an exact index is filled from the vector files after the change: one being removed is not read)
        with write_errors(self.root, "nothing removed"):
            with transaction(self._db):
                files, removed = self._delete_rows(video_ids)
                self._tighten([], loosened=files)
                self._bump_generation()
            if ann is not None:
                forget_videos(ann, removed)
        with write_errors(self.root, "the videos are removed; the next writer finishes the rest"):
            self._unlink(files)
            self._maybe_snapshot()

    def record_failure(self, path: Path, reason: str) -> None:
        self._require_writer()
        with transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (str(path), reason, utc_now())
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
            with transaction(self._db):
                self._db.execute("UPDATE videos SET mtime_ns = ? WHERE id = ?", (stamp.mtime_ns, video.id))
        return True

    def rebuild_index(self, spec: AnnSpec | None = None) -> AnnIndex:
        """Build the index again from the vector files (trained again where it needs training),
        with ``spec`` or the library's own, and write it; ``spec`` is recorded with the new index
        file (a build that fails changes nothing)."""
        self._require_writer()
        requested = spec if spec is not None else AnnSpec.parse(self.meta["ann_spec"])
        with write_errors(self.root, "the index was not rebuilt"):
            self._ann = self._build_ann(requested.resolved(self.dim, self.vector_count))
            self._snapshot(ann_spec=str(requested))
        return self.ann

    # -- internals -----------------------------------------------------------------------------

    def _require_writer(self) -> None:
        if self._lock_fd is None:
            raise LibraryError(f"{self.root}: opened read-only")

    def _read_vectors(self, name: str, sha256: str, frames: int, video_path: str) -> np.ndarray:
        """A vector file, checked against its SHA-256 the first time this process reads it (vector
        files are written once and never changed; ``verify`` always checks)."""
        return read_vector_file(self.root, name, sha256, frames, self.dim, video_path, self._verified)

    def _delete_rows(self, video_ids: list[int]) -> tuple[list[str], list[tuple[int, int, int]]]:
        """Delete videos' rows (inside a transaction); returns their vector files and what the
        in-memory index must forget once the transaction is committed (``forget_videos``)."""
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
            for table in (t for tables in VIDEO_TABLES.values() for t in tables.tables):
                self._db.execute(f"DELETE FROM {table} WHERE video_id = ?", (video_id,))
            self._db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            removed.append((video_id, int(row[1]), int(row[2])))
        return files, removed

    def _unlink(self, files: Iterable[str], folder: str = VECTORS_FOLDER) -> None:
        """Remove files a commit stopped naming, then their ``loose_files`` entries."""
        names = list(files)
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.root / folder / name).unlink()
        if names:
            with transaction(self._db):
                self._db.executemany("DELETE FROM loose_files WHERE name = ?", [(n,) for n in names])

    def _loosen(self, names: list[str]) -> None:
        """List files about to be written (committed before they are), so that the next writer may
        remove them if the commit that would name them never comes."""
        with transaction(self._db):
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
        for folder in (self.root, self.root / VECTORS_FOLDER):
            for path in folder.glob(".*.tmp*"):
                path.unlink(missing_ok=True)
        loose = [r[0] for r in self._db.execute("SELECT name FROM loose_files")]
        if not loose:
            return
        named = {r[0] for r in self._db.execute("SELECT vectors_file FROM videos")}
        meta = self.meta
        named |= {meta.get(key) or "" for key in ("ann_file", *DISK_TIER_FILES)}
        orphans = [name for name in loose if name not in named and LOOSE_NAME.fullmatch(name)]
        self._unlink(n for n in orphans if n.endswith(".npy"))
        self._unlink((n for n in orphans if not n.endswith(".npy")), folder=".")
        with transaction(self._db):  # listed, then named by a commit: not loose
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
                with read_snapshot(self._db):
                    meta = self.meta
                    return self._open_ann_as_of(meta)
            except LibraryError:
                fresh = self.meta  # a writer may have replaced the files since the snapshot
                if all(fresh.get(key) == meta.get(key) for key in ("ann_file", *DISK_TIER_FILES)):
                    raise
        raise LibraryError(f"{self.root}: its index kept changing while it was read; try again")

    def _open_ann_as_of(self, meta: dict[str, str]) -> AnnIndex:
        if not meta.get("ann_file"):
            if int(self._db.execute("SELECT COUNT(*) FROM videos WHERE in_ann = 1").fetchone()[0]):
                raise LibraryError(
                    f"{self.root}: the library has no index file but lists videos in one; {REBUILD_ADVICE}"
                )
            ann = AnnIndex.trained(AnnSpec("Flat"), self.dim, np.zeros((0, self.dim), np.float32))
        else:
            ann = read_index_file(self.root, meta, self.dim)
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
        if outgrown(self.ann.spec, concrete):
            self._ann = self._build_ann(concrete)
            self._snapshot()
            return
        if self.ann.spec.factory == "Flat":
            if meta.get("ann_file"):  # written by an older vcopy: a second copy of the vectors
                self._snapshot()
            return
        pending = self._pending_vectors()
        if pending and pending >= min(SNAPSHOT_FRACTION * max(total, 1), SNAPSHOT_MAX_PENDING):
            self._snapshot()

    def _snapshot(self, **settings: str) -> None:
        """Write the in-memory index under a new name (and, with on-disk lists, a new on-disk tier
        when the in-memory part has grown enough), then record them (and which videos they hold,
        and any ``settings`` that go with them) in one transaction, then remove the old files. An
        exact (``Flat``) index is not written: its old file, if any, is removed and every video is
        read from its vector file when the library is opened."""
        ann, old = self.ann, self.meta
        if ann.spec.factory == "Flat" and ann.disk is None:
            with transaction(self._db):
                self._tighten([], loosened=[old["ann_file"]] if old.get("ann_file") else [])
                set_meta(self._db, ann_file="", ann_sha256="", ann_vectors="0", ann_built="Flat", **settings)
                self._db.execute("UPDATE videos SET in_ann = 0")
                self._db.execute("DELETE FROM ann_removed")
            self._unlink([old["ann_file"]] if old.get("ann_file") else [], folder=".")
            return
        stem = f"ann-{int(old['generation'])}-{uuid.uuid4().hex[:8]}"
        merge = ann.spec.ondisk and (
            ann.disk is None or ann.memory_vectors >= DISK_MERGE_FRACTION * ann.disk_vectors
        )
        tier: dict[str, str] = {}
        name = f"{stem}.faiss"
        written = [name, f"{stem}-disk.faiss", f"{stem}.ivfdata"] if merge else [name]
        self._loosen(written)
        if merge:
            tier = write_disk_tier(ann, self.root / f"{stem}-disk.faiss", self.root / f"{stem}.ivfdata")
        elif ann.disk is None:
            tier = dict.fromkeys(DISK_TIER_KEYS, "")
        data = ann.serialize()
        write_atomically(self.root / name, data.tobytes(), durable=True)
        replaced = [old[key] for key in ("ann_file", *(DISK_TIER_FILES if tier else ())) if old.get(key)]
        with transaction(self._db):
            self._tighten(written, loosened=replaced)
            set_meta(
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
