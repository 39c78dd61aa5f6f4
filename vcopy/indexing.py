"""Indexing: videos decoded and described by the library's own pipeline (``vcopy.pipeline``, from
the spec the library records), then stored in it (``vcopy.library``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vcopy.library import Library
from vcopy.pipeline import Pipeline
from vcopy.text import store as _text_store  # noqa: F401  # registers text search tables
from vcopy.video import find_videos

if TYPE_CHECKING:
    from vcopy.distributed import RaySession
    from vcopy.features import Descriptor, EncodedVideo, FailedVideo
    from vcopy.keyframes import KeyFramer


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


def index_videos(
    library: Library,
    paths: Iterable[Path],
    descriptor: Descriptor,
    prune: bool = False,
    commit_every_s: float = 30.0,
    stall_timeout_s: float = 120.0,
    on_video: Callable[[str, str], None] | None = None,
    keyframer: KeyFramer | None = None,
    ray: RaySession | None = None,
) -> IndexSummary:
    """Index the videos in ``paths`` (files or folders) into ``library`` (opened to write): new and
    changed files are (re)indexed, unchanged ones skipped, and with ``prune`` library videos under
    ``paths`` whose files are gone are removed. ``on_video(path, outcome)`` is told about each file
    as it is handled (``indexed``, ``skipped`` or ``failed: REASON``), and before that of anything
    a reader must know about it (``warning: TEXT``). ``keyframer``: the library's own, built
    already (else it is built by the name the library records). ``ray``: decode and describe on
    that Ray cluster (``vcopy.distributed``); this process still does every commit. Work done
    before an exception is committed."""
    from vcopy.features import FailedVideo, video_duration_s

    pipeline = Pipeline.of_library(library.pipeline_spec, library.root, descriptor, keyframer)
    pipeline.keyframer  # noqa: B018  # built (or refused) before any decoding
    library.load_index()  # a missing or damaged index file is an error before any decoding
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
        elif library.unchanged(path):
            summary.skipped.append(str(path))
            report(str(path), "skipped")
        else:
            todo.append(path)
    if prune:
        gone = [v for v in library.videos() if _under(Path(v.path), roots) and not Path(v.path).exists()]
        library.remove([v.id for v in gone])
        summary.pruned = [v.path for v in gone]
    batch: list[EncodedVideo] = []
    sampling = library.sampling

    def commit() -> None:
        try:
            library.commit(batch, [video_duration_s(v, sampling) for v in batch])
        finally:
            batch.clear()  # a commit that failed is not tried again (its error ends the run)

    last_commit = time.monotonic()
    try:
        for result in _encoded(pipeline, todo, stall_timeout_s, ray):
            if isinstance(result, FailedVideo):
                summary.failed.append((str(result.path), result.reason))
                library.record_failure(result.path, result.reason)
                report(str(result.path), f"failed: {result.reason}")
                continue
            batch.append(result)
            summary.indexed.append(str(result.path))
            summary.video_seconds += video_duration_s(result, sampling)
            for warning in result.warnings:
                summary.warnings.append((str(result.path), warning))
                report(str(result.path), f"warning: {warning}")
            report(str(result.path), "indexed")
            if time.monotonic() - last_commit >= commit_every_s:
                commit()
                last_commit = time.monotonic()
    finally:
        commit()
    summary.wall_seconds = time.monotonic() - started
    return summary


def _encoded(
    pipeline: Pipeline, paths: list[Path], stall_timeout_s: float, ray: RaySession | None
) -> Iterator[EncodedVideo | FailedVideo]:
    if ray is None:
        yield from pipeline.encode(paths, stall_timeout_s)
        return
    from vcopy.distributed import encode_on_ray

    weights = getattr(pipeline.keyframer, "weights_path", None)  # learned key frames of a file
    yield from encode_on_ray(
        ray, paths, pipeline.spec, stall_timeout_s=stall_timeout_s, keyframe_weights=weights
    )


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


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
