"""The feature library's database and folder (``vcopy.library`` keeps the videos in them): its
schema and upgrades, opening and creating, the library's identity, the one writer's lock,
transactions and read snapshots, and the per-video vector files' writing."""

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcopy.ann import AnnSpec
from vcopy.checks import bounded_float, bounded_int
from vcopy.errors import LibraryError
from vcopy.files import write_atomically

if TYPE_CHECKING:  # the descriptor (torch) loads only where videos are described: opening is light
    from vcopy.features import EncodedVideo
    from vcopy.pipeline import PipelineSpec

# 2 added frame_classes, 3 frame_layouts (float16), 4 holds them as int8, 5 records the index file's
# checksum, 6 keeps exact vectors in per-video files apart from an approximate index, 7 records the
# span each key frame stands for. Libraries of schema 4 to 6 are upgraded in place by a writer
# (`vcopy library upgrade`, or `vcopy index`).
SCHEMA_VERSION = 7


OLDEST_UPGRADABLE = 4


DB_FILE, LOCK_FILE, VECTORS_FOLDER, ID_FILE = "library.sqlite", "write.lock", "vectors", "library.id"


OLD_INDEX_FILE = "index.faiss"  # schema <= 5: the only copy of the vectors


LOOSE_TABLE = """CREATE TABLE IF NOT EXISTS loose_files (
    name TEXT PRIMARY KEY  -- a file written before the commit that names it, or no longer named
);"""


SCHEMA = """
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
    span_ends_s BLOB,  -- float64 [frames]: where each key frame's span ends; NULL: a sampling step each
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
""".replace("{loose}", LOOSE_TABLE)


@dataclass(frozen=True)
class VideoTables:
    """Tables another part of vcopy keeps for each library video (text search's, for one):
    created with the library's own, written in the transaction that commits a video, deleted with
    it. Each table has a ``video_id INTEGER PRIMARY KEY REFERENCES videos(id)`` column."""

    name: str
    schema: str  # CREATE TABLE IF NOT EXISTS ...
    tables: tuple[str, ...]
    insert: Callable[[sqlite3.Connection, int, EncodedVideo], None]  # rows of a video being committed


VIDEO_TABLES: dict[str, VideoTables] = {}


def register_tables(tables: VideoTables) -> None:
    """Keep ``tables`` in every library opened to write from now on."""
    VIDEO_TABLES[tables.name] = tables


def create_tables(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA + "".join(t.schema for t in VIDEO_TABLES.values()))


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


STORED_DTYPE = np.float16  # exact vectors on disk: half the bytes, cosines within 1e-3 (docs/benchmarks.md)


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 holding exactly what a vector file keeps of them (float16 values), so
    that an index filled from memory answers as one filled from the files."""
    return np.asarray(vectors, dtype=STORED_DTYPE).astype(np.float32)


def write_vector_file(path: Path, vectors: np.ndarray) -> str:
    """A new vector file (float16, synced to disk); its SHA-256."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(vectors, dtype=STORED_DTYPE), allow_pickle=False)
    write_atomically(path, buffer.getvalue(), durable=True)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def float64_blob(values: np.ndarray | None) -> bytes | None:
    """A column of float64 values (None stays NULL)."""
    return None if values is None else np.ascontiguousarray(values, dtype=np.float64).tobytes()


def read_span_ends(db: sqlite3.Connection, path: Path, video_id: int, sample_fps: float) -> np.ndarray:
    """A video's recorded key-frame span ends (s); one sampling step each where none were recorded."""
    from vcopy.keyframes import one_step_spans

    row = db.execute(
        "SELECT timestamps_s, span_ends_s, path FROM videos WHERE id = ?", (video_id,)
    ).fetchone()
    if row is None:
        raise LibraryError(f"{path}: no video with id {video_id}")
    times = np.frombuffer(row[0], dtype=np.float64)
    if row[1] is None:
        return one_step_spans(times, sample_fps)
    blob = row[1] if isinstance(row[1], bytes) else b""
    ends = np.frombuffer(blob[: len(blob) // 8 * 8], dtype=np.float64).copy()
    if len(blob) % 8 or ends.shape != times.shape:
        raise LibraryError(f"{path}: the key-frame spans of {row[2]} are damaged; {reindex_advice(row[2])}")
    return ends


LOOSE_NAME = re.compile(r"([0-9a-f]{32}\.npy|ann-\d+-[0-9a-f]{8}(-disk\.faiss|\.faiss|\.ivfdata))")


def refuse_stored_files(root: Path) -> None:
    """A folder that holds a library's files but no usable database is not made a new library (its
    vectors would be orphaned) nor opened: the database must be restored."""
    stored = [root / ID_FILE, *root.glob("ann-*")]
    if any(p.exists() for p in stored) or any((root / VECTORS_FOLDER).glob("*.npy")):
        raise LibraryError(
            f"{root}: holds a library's vectors but no usable {DB_FILE} (lost or emptied); restore "
            f"{root / DB_FILE} from a backup, or move the folder away to start a new library"
        )


def write_identity(root: Path, db: sqlite3.Connection) -> None:
    """Give a library its identity: in its meta, then in ``library.id`` beside it."""
    identity = uuid.uuid4().hex
    with transaction(db):
        set_meta(db, library_id=identity)
    write_atomically(root / ID_FILE, f"{identity}\n".encode(), durable=True)


def check_identity(root: Path, db: sqlite3.Connection, meta: dict[str, str], write: bool) -> None:
    """The database must be this folder's own (``library.id``); a library made before vcopy
    recorded identities gets one from its first writer."""
    try:
        on_disk = (root / ID_FILE).read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        on_disk = None
    except OSError as exc:
        raise LibraryError(f"{root / ID_FILE}: unreadable ({exc.strerror or exc})") from None
    recorded = meta.get("library_id")
    if recorded and on_disk and recorded != on_disk:
        raise LibraryError(
            f"{root / DB_FILE}: the database of another library (its identity is not {root / ID_FILE}'s); "
            f"restore this library's own {DB_FILE} from a backup"
        )
    if not recorded and on_disk:
        raise LibraryError(
            f"{root / DB_FILE}: a database with no identity in a library that has one ({root / ID_FILE}); "
            f"restore this library's own {DB_FILE} from a backup (if this is its own, from before vcopy "
            f"recorded identities, remove {root / ID_FILE})"
        )
    if write and on_disk is None:
        if recorded and any((root / VECTORS_FOLDER).glob("*.npy")) and not names_every_vector_file(root, db):
            raise LibraryError(
                f"{root / ID_FILE}: missing, and {root / VECTORS_FOLDER} holds files the database does not "
                "name; "
                f"restore {root / ID_FILE} (or this library's own {DB_FILE}) from a backup"
            )
        if recorded:
            write_atomically(root / ID_FILE, f"{recorded}\n".encode(), durable=True)
        else:
            write_identity(root, db)
        meta.update(dict(db.execute("SELECT key, value FROM meta").fetchall()))


def names_every_vector_file(root: Path, db: sqlite3.Connection) -> bool:
    named = {r[0] for r in db.execute("SELECT vectors_file FROM videos")}
    return all(p.name in named for p in (root / VECTORS_FOLDER).glob("*.npy"))


@contextlib.contextmanager
def write_errors(root: Path, outcome: str) -> Iterator[None]:
    """A file or the database that cannot be written (a full disk) as a ``LibraryError`` naming it
    and what became of the work."""
    try:
        yield
    except OSError as exc:
        raise LibraryError(
            f"{exc.filename or root}: cannot be written ({exc.strerror or exc}); {outcome}"
        ) from None
    except sqlite3.OperationalError as exc:
        raise LibraryError(f"{root / DB_FILE}: cannot be written ({exc}); {outcome}") from None


@contextlib.contextmanager
def read_snapshot(db: sqlite3.Connection) -> Iterator[None]:
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
    path = Path(root) / DB_FILE
    if not path.is_file():
        return None
    db = None
    try:
        db = connect_db(path, write=False)
        rows = db.execute("SELECT key, value FROM meta").fetchall() if has_meta(db) else []
    except sqlite3.DatabaseError as exc:
        raise LibraryError(f"{path}: unreadable library database ({exc})") from None
    finally:
        close_db(db, None)
    return {str(k): str(v) for k, v in rows} or None


def has_meta(db: sqlite3.Connection) -> bool:
    return (
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        is not None
    )


def create_db(db: sqlite3.Connection, spec: PipelineSpec) -> None:
    create_tables(db)
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "descriptor": spec.descriptor,
        "dim": str(spec.dim),
        "sample_fps": repr(spec.sample_fps),
        "frame_size": str(spec.frame_size),
        "text_features": "1" if spec.text_features else "0",
        "keyframes": spec.keyframes,
        "keyframes_sha256": spec.keyframes_sha256,
        "generation": "0",
        "next_video_id": "1",
        "ann_spec": "auto",
        "created_utc": utc_now(),
    }
    with transaction(db):
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())


def upgrade_db(root: Path, db: sqlite3.Connection, meta: dict[str, str], schema: int) -> None:
    """Convert a library of an older schema (4 to 6) in place, one step at a time."""
    if schema < OLDEST_UPGRADABLE:
        raise LibraryError(
            f"{root}: library schema {schema} is too old to upgrade; index the videos again into a new "
            "library"
        )
    if schema < 6:
        upgrade_to_per_video_files(root, db, meta)
    add_span_ends(db, meta)
    create_tables(db)  # the tables newer schemas added
    meta.update(dict(db.execute("SELECT key, value FROM meta").fetchall()))


def add_span_ends(db: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Schema 6 to 7: the span of each key frame. Key frames that stand for the span to the next
    one (``coverage``) get it, the last one to the end of the video; others keep a sampling step."""
    from vcopy.keyframes import holds_span

    step_s = 1.0 / float(meta["sample_fps"])
    with transaction(db):
        db.execute("ALTER TABLE videos ADD COLUMN span_ends_s BLOB")
        if holds_span(meta.get("keyframes", "uniform")):
            rows = db.execute("SELECT id, timestamps_s, duration_s FROM videos").fetchall()
            for video_id, blob, duration_s in rows:
                times = np.frombuffer(blob, dtype=np.float64)
                end_s = max(float(duration_s), float(times[-1]) + step_s) if len(times) else 0.0
                ends = np.append(times[1:], end_s)
                db.execute("UPDATE videos SET span_ends_s = ? WHERE id = ?", (ends.tobytes(), video_id))
        set_meta(db, schema_version=str(SCHEMA_VERSION))


def upgrade_to_per_video_files(root: Path, db: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Schema 4/5 to 6: the FAISS file (the only copy of the vectors, checked against its record)
    becomes one vector file per video, its per-vector rows a column of frame times; the old index
    file is removed once the new rows are committed."""
    import faiss

    old_index = root / OLD_INDEX_FILE
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
    folder = root / VECTORS_FOLDER
    folder.mkdir(exist_ok=True)
    db.execute(LOOSE_TABLE)
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
        sha256 = write_vector_file(folder / name, vectors)
        times = np.array([r[1] for r in rows], dtype=np.float64)
        converted.append((video_id, len(rows), times.tobytes(), name, sha256))
    with transaction(db):
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
        set_meta(db, schema_version="6", next_video_id=str(next_id), ann_spec="auto")
    old_index.unlink(missing_ok=True)


def connect_db(path: Path, write: bool) -> sqlite3.Connection:
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


def close_db(db: sqlite3.Connection | None, lock_fd: int | None) -> None:
    if db is not None:
        db.close()
    if lock_fd is not None:
        os.close(lock_fd)


def checked_settings(db_path: Path, meta: dict[str, str]) -> int:
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


def set_meta(db: sqlite3.Connection, **values: str) -> None:
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())


def busy_error(root: Path, lock_fd: int) -> LibraryError:
    """The error of a library whose write lock another process holds (its pid is in the file)."""
    holder = os.pread(lock_fd, 64, 0).decode(errors="replace").strip() or "unknown"
    return LibraryError(f"{root}: another process (pid {holder}) is writing this library; try again later")


def check_no_writer(root: Path) -> None:
    """A ``LibraryError`` now if another process is writing the library at ``root``: an ``index``
    that would wait for it is refused before it loads any model."""
    try:
        fd = os.open(Path(root) / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return  # no lock file: no writer (opening for write checks again)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise busy_error(root, fd) from None
    finally:
        os.close(fd)


def take_lock(root: Path) -> int:
    try:
        fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LibraryError(f"{root}: cannot be written ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        error = busy_error(root, fd)
        os.close(fd)
        raise error from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
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


def read_vector_file(
    root: Path, name: str, sha256: str, frames: int, dim: int, video_path: str, verified: set[str]
) -> np.ndarray:
    """A vector file (of the library video ``video_path``, which errors name), checked against
    its recorded SHA-256 unless it is in ``verified`` (then added there) (vector files are written once and
    never changed: a query batch that reads the same reference again does not hash it again;
    ``verify`` always does)."""
    path = root / VECTORS_FOLDER / name
    what = f"{path} (the vectors of {video_path})"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LibraryError(f"{what}: missing; {reindex_advice(video_path)}") from None
    except OSError as exc:
        raise LibraryError(f"{what}: unreadable ({exc.strerror or exc})") from None
    if name not in verified:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise LibraryError(
                f"{what}: damaged (its SHA-256 is not the one the library recorded); "
                f"{reindex_advice(video_path)}"
            )
        verified.add(name)
    try:
        vectors = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise LibraryError(f"{what}: not a vector file ({exc})") from None
    if vectors.shape != (frames, dim) or vectors.dtype not in (STORED_DTYPE, np.float32):
        raise LibraryError(
            f"{what}: holds {vectors.shape} {vectors.dtype}, not {frames} x {dim} float16 (or float32)"
        )
    return vectors.astype(np.float32)  # (float32 files: written by vcopy 0.4 before float16)


def open_database[T](
    root: Path,
    write: bool,
    spec: PipelineSpec | None,
    library: Callable[[sqlite3.Connection, int | None], T],
) -> T:
    """``library(connection, lock)`` on the library's database, checked (identity, settings,
    schema, ``spec``'s descriptor and key frames) and, for a writer, locked, created (with
    ``spec``) or upgraded; the database is closed (and the lock let go) if anything fails."""
    lock_fd = None
    if not (root / DB_FILE).is_file():
        refuse_stored_files(root)
    if write and spec is None and not (root / DB_FILE).is_file():  # nothing to create it with
        raise LibraryError(f"{root}: not a vcopy library (no {DB_FILE}); create one with `vcopy index`")
    if write:
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"{root}: cannot be a library folder ({exc.strerror or exc})") from None
        lock_fd = take_lock(root)
    elif not (root / DB_FILE).is_file():
        raise LibraryError(f"{root}: not a vcopy library (no {DB_FILE}); create one with `vcopy index`")
    db: sqlite3.Connection | None = None
    try:
        db = connect_db(root / DB_FILE, write)
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if has_meta(db) else {}
        if not meta:
            refuse_stored_files(root)
            if not write or spec is None:
                raise LibraryError(f"{root}: library is empty and has no settings yet")
            create_db(db, spec)
            write_identity(root, db)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        check_identity(root, db, meta, write)
        schema = checked_settings(root / DB_FILE, meta)
        if schema < SCHEMA_VERSION:
            if not write:
                raise LibraryError(
                    f"{root}: made by an older vcopy (library schema {schema}); upgrade it in place "
                    f"with `vcopy library upgrade {root}` (or any `vcopy index` into it)"
                )
            upgrade_db(root, db, meta, schema)
        elif write:
            create_tables(db)
        if spec is not None and meta["descriptor"] != spec.descriptor:
            raise LibraryError(f"{root}: built with descriptor {meta['descriptor']}, not {spec.descriptor}")
        if spec is not None and meta.get("keyframes", "uniform") != spec.keyframes:
            raise LibraryError(
                f"{root}: built with key frames {meta.get('keyframes', 'uniform')}, not {spec.keyframes}"
            )
        return library(db, lock_fd)
    except sqlite3.DatabaseError as exc:
        close_db(db, lock_fd)
        raise LibraryError(f"{root / DB_FILE}: unreadable library database ({exc})") from None
    except BaseException:
        close_db(db, lock_fd)
        raise


def reindex_advice(video_path: str) -> str:
    """How a video with damaged vectors is repaired."""
    return (
        f"remove the video (`vcopy library rm LIB {video_path}`) and index it again, or restore the "
        "library from a backup"
    )
