"""Checking suspect videos against a library: encode, retrieve candidates, map, localize."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcopy.config import QueryConfig
from vcopy.errors import VcopyError
from vcopy.features import (
    Descriptor,
    EncodedVideo,
    FailedVideo,
    video_duration_s,
)
from vcopy.keyframes import grid_map
from vcopy.keyframes.ske import jointly_trained_spd
from vcopy.library import Library, LibraryVideo
from vcopy.localize import Localizer, Segment, create_localizer
from vcopy.localize.base import BoundaryRanges, boundary_ranges
from vcopy.localize.rescore import PairRescorer, shipped_rescorer
from vcopy.pipeline import Pipeline
from vcopy.similarity import background_similarity, exact_score, retrieve, similarity_map
from vcopy.video import find_videos

if TYPE_CHECKING:
    from vcopy.distributed import RaySession

MAX_ROWS_PER_FRAME = 8  # suspects at up to 8x the library's rate
DEFAULT_ROWS_PER_FRAME = 2  # suspects at twice the library's rate (docs/benchmarks.md, dense suspects)


@dataclass(frozen=True)
class SimilarityMap:
    """A query x reference contrast map: query frames along rows, reference frames along columns,
    on the full sampling grid (where key frames leave frames out, ``vcopy.keyframes.on_grid``)."""

    reference_id: int
    contrast: np.ndarray  # float32 [n_query_frames, n_reference_frames]
    query_timestamps_s: np.ndarray
    reference_timestamps_s: np.ndarray


@dataclass(frozen=True)
class Match:
    """A library video the query copies, with the copied segments (best first)."""

    reference: LibraryVideo
    score: float
    segments: list[Segment]
    ranges: list[BoundaryRanges]  # where each segment's ends may lie, from how flat the map is there


@dataclass
class QueryResult:
    """The outcome for one suspect video."""

    path: Path
    sha256: str | None = None
    duration_s: float | None = None
    matches: list[Match] = field(default_factory=list)
    below_threshold: list[Match] = field(
        default_factory=list
    )  # scored pairs that are not matches, best first
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. only part of a truncated file was compared
    decoder: str | None = None  # decord or pyav

    @property
    def ok(self) -> bool:
        return self.error is None


class CopyFinder:
    """``CopyFinder(library).query(path) -> QueryResult``; ``query_many`` for batches (decoding of
    the next video overlaps the work on the current one)."""

    def __init__(
        self,
        library: Library,
        descriptor: Descriptor | None = None,
        config: QueryConfig | None = None,
    ) -> None:
        self.library = library
        self.config = config or QueryConfig()
        self.pipeline = Pipeline.of_library(library.pipeline_spec, library.root, descriptor)
        self.descriptor = self.pipeline.descriptor
        if len(self.descriptor.background) == 0:
            raise VcopyError("matching needs a descriptor with a background set (it normalises scores)")
        self.background_set = self.descriptor.background
        spd_weights = self.config.spd_weights
        if spd_weights is None and self.config.localizer == "spd":  # only SPD reads weights
            spd_weights = jointly_trained_spd(self.pipeline.spec.keyframes)
        self.localizer: Localizer = create_localizer(self.config.localizer, spd_weights, self.descriptor.name)
        trained_on = self.localizer.trained_on
        if trained_on is not None and trained_on != self.descriptor.name:
            raise VcopyError(
                f"localizer {self.localizer.name} was trained on maps of descriptor {trained_on}, "
                f"not {self.descriptor.name}"
            )
        self.rescorer = self._rescorer()
        self.sampling = replace(library.sampling, stall_timeout_s=self.config.stall_timeout_s)
        self.rows_per_frame = rows_per_library_frame(self.config.query_fps, self.sampling.sample_fps)
        query_fps = self.sampling.sample_fps * self.rows_per_frame
        self.query_spec = replace(self.pipeline.spec, sample_fps=query_fps)  # suspects' own rate
        library.load_index()  # a missing or damaged index is an error before any decoding

    def _rescorer(self) -> PairRescorer | None:
        """The shipped re-scorer, where it was fitted on this SPD's scores (``vcopy.localize.rescore``)."""
        if not self.config.rescore or self.config.localizer != "spd":
            return None
        from vcopy.localize.spd import SimilarityPatternDetector

        assert isinstance(self.localizer, SimilarityPatternDetector)
        return shipped_rescorer(self.localizer.sha256)

    @property
    def min_score(self) -> float:
        """The score from which a pair is a match."""
        if self.config.min_score is not None:
            return self.config.min_score
        return self.localizer.match_threshold if self.rescorer is None else self.rescorer.match_threshold

    @property
    def parameters(self) -> dict[str, object]:
        """Every setting in effect, for the report."""
        return {
            **asdict(self.config),
            "min_score": self.min_score,
            "spd_weights": None if self.config.spd_weights is None else str(self.config.spd_weights),
            "localizer_settings": self.localizer.settings,
            "rescorer": None if self.rescorer is None else self.rescorer.fitted_on,
            "sampling": asdict(self.sampling),
            "query_fps": self.query_spec.sample_fps,
            "descriptor": self.descriptor.name,
            "keyframes": self.pipeline.spec.keyframes,
        }

    def query(self, path: Path) -> QueryResult:
        results = self.query_many([path])
        try:
            return next(results)
        finally:
            results.close()  # the decoder ends here, not when the generator is collected

    def query_many(
        self, paths: Iterable[Path], ray: RaySession | None = None
    ) -> Generator[QueryResult, None, None]:
        """One result per video file under ``paths`` (folders are searched), in order; with
        ``ray``, decoded and described on that Ray cluster (``vcopy.distributed``), matched here."""
        videos = find_videos(Path(p) for p in paths)
        encoded: Iterable[EncodedVideo | FailedVideo]
        if ray is None:
            encoded = Pipeline(self.query_spec, self.descriptor).encode(
                videos, self.config.stall_timeout_s, library=False, views=self.config.views
            )
        else:
            from vcopy.distributed import encode_on_ray

            encoded = encode_on_ray(
                ray,
                videos,
                self.query_spec,
                library=False,
                views=self.config.views,
                stall_timeout_s=self.config.stall_timeout_s,
            )
        for result in encoded:
            if isinstance(result, FailedVideo):
                yield QueryResult(path=result.path, error=result.reason)
            else:
                yield self._match(result)

    def similarity_maps(self, video: EncodedVideo) -> list[SimilarityMap]:
        """Contrast maps of the query against its top candidate references, best candidate first:
        the index proposes a shortlist, whose exact maps (from the stored vectors) re-rank it.
        Suspects sampled more densely than the library have their rows pooled back to its step."""
        cfg = self.config
        views = video.all_views
        background = background_similarity(views, self.background_set, cfg.background_rank)
        shortlist = retrieve(self.library, views, background, cfg.knn, max(cfg.shortlist, cfg.candidates))
        groups = row_groups(len(video.timestamps_s), self.rows_per_frame)
        query_times = pooled_times(video.timestamps_s, groups)
        maps, scores = [], []
        for candidate in shortlist:
            ref_vectors, ref_times = self.library.frames_of(candidate.video_id)
            contrast = pooled_rows(similarity_map(views, ref_vectors, background), groups)
            maps.append((candidate.video_id, contrast, ref_times))
            scores.append(exact_score(contrast))
        order = sorted(range(len(maps)), key=lambda i: -scores[i])[: cfg.candidates]
        fps = self.sampling.sample_fps
        return [
            SimilarityMap(
                video_id,
                *grid_map(contrast, query_times, ref_times, fps, self.library.span_ends_of(video_id)),
            )
            for video_id, contrast, ref_times in (maps[i] for i in order)
        ]

    def localize(self, video: EncodedVideo, maps: list[SimilarityMap]) -> QueryResult:
        """Run the localizer on the maps (one batch). A reference with a segment scoring at least
        ``min_score`` is a match (with those segments); one whose segments all score lower is kept
        below the threshold, to rank pairs by."""
        duration = video_duration_s(video, self.query_spec.sampling)
        matches: list[Match] = []
        below: list[Match] = []
        inputs = [(m.contrast, m.query_timestamps_s, m.reference_timestamps_s) for m in maps]
        found = self.localizer.localize_batch(inputs)
        if self.rescorer is not None:
            found = self.rescorer.rescore(inputs, found)
        for m, segments in zip(maps, found, strict=True):
            if not segments:
                continue
            reference = self.library.video(m.reference_id)
            segments = [_clip(s, duration, reference.duration_s) for s in segments]
            strong = [s for s in segments if s.score >= self.min_score]
            kept, into = (strong, matches) if strong else (segments, below)
            ranges = [
                boundary_ranges(m.contrast, m.query_timestamps_s, m.reference_timestamps_s, s) for s in kept
            ]
            into.append(Match(reference, max(s.score for s in kept), kept, ranges))
        matches.sort(key=lambda m: -m.score)
        below.sort(key=lambda m: -m.score)
        return QueryResult(
            path=video.path,
            sha256=video.stamp.sha256,
            duration_s=duration,
            matches=matches,
            below_threshold=below,
            warnings=list(video.warnings),
            decoder=video.decoder,
        )

    def _match(self, video: EncodedVideo) -> QueryResult:
        return self.localize(video, self.similarity_maps(video))


def _clip(segment: Segment, query_duration_s: float, reference_duration_s: float) -> Segment:
    return Segment(
        query_start_s=segment.query_start_s,
        query_end_s=min(segment.query_end_s, query_duration_s),
        reference_start_s=segment.reference_start_s,
        reference_end_s=min(segment.reference_end_s, reference_duration_s),
        score=segment.score,
    )


def rows_per_library_frame(query_fps: float | None, library_fps: float) -> int:
    """How many suspect frames make one map row: ``query_fps`` over the library's rate, a whole
    number (None: ``DEFAULT_ROWS_PER_FRAME``)."""
    if query_fps is None:
        return DEFAULT_ROWS_PER_FRAME
    ratio = query_fps / library_fps
    if not (1 <= round(ratio) <= MAX_ROWS_PER_FRAME and abs(ratio - round(ratio)) < 1e-6):
        raise VcopyError(
            f"query frames/s {query_fps:g} is not a whole multiple (1 to {MAX_ROWS_PER_FRAME}) of the "
            f"library's {library_fps:g}"
        )
    return round(ratio)


def row_groups(n_frames: int, rows_per_frame: int) -> np.ndarray:
    """The first suspect frame of each library step (the sampler takes one frame per target time,
    ``rows_per_frame`` targets a library step): the starts ``np.maximum.reduceat`` pools."""
    return np.arange(0, n_frames, rows_per_frame)


def pooled_rows(contrast: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's best row (a library frame's best match among the suspect frames of its step)."""
    if len(groups) == len(contrast):
        return contrast
    return np.maximum.reduceat(contrast, groups, axis=0) if len(contrast) else contrast


def pooled_times(timestamps_s: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's time: the mean of its frames' times."""
    if len(groups) == len(timestamps_s):
        return timestamps_s
    counts = np.diff(np.r_[groups, len(timestamps_s)])
    return np.add.reduceat(timestamps_s, groups) / counts
