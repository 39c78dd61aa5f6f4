"""Evidence pages: one self-contained HTML page per match of a report, and an index page.

A page shows what a reader needs to check a match without vcopy: both files by path and SHA-256
(and whether they still have the bytes the report names), the copied segments in seconds and
timecodes with their scores, matched frames side by side at aligned times across each segment
(thumbnails taken from the files themselves, each with its timecode), the query x reference
similarity map as an image with the segments drawn on it, and the tool version, models, parameters
and time of the run. Everything is inline (images as data URIs, no script or style from elsewhere),
so a page opens with no network and can be archived as one file.

A report is data from outside: it is validated against the shipped schema first
(``vcopy.report.read_report``), every field is escaped, and the only files read are a reference the
library holds under the same path and SHA-256 and a query that is a regular video file; frames and
maps are drawn only from files whose SHA-256 is the report's. Pages are written only as regular
files in the output folder (``vcopy.files.write_output_file``).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image, ImageDraw

from vcopy.errors import VcopyError
from vcopy.features import Descriptor, EncodedVideo, FailedVideo
from vcopy.files import write_output_file
from vcopy.keyframes import grid_map
from vcopy.library import Library, LibraryVideo
from vcopy.localize.spd import CONTRAST_RANGE
from vcopy.pipeline import Pipeline
from vcopy.report import timecode
from vcopy.similarity import background_similarity, similarity_map
from vcopy.video import VIDEO_SUFFIXES, frames_at, probe, sha256_file

FRAMES_PER_SEGMENT = 5  # aligned frame pairs shown across each segment
THUMBNAIL_HEIGHT_PX = 180
MAP_MAX_SIDE_PX = 720
AXIS_MARGIN_PX = (56, 16)  # room for the seconds along the query (left) and reference (top) axes
MAX_TICKS = 8  # seconds marked per axis, at most
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


@dataclass(frozen=True)
class EvidencePage:
    """One written page: its file and the (query, reference) it shows."""

    path: Path
    query: str
    reference: str


def aligned_times(segment: dict[str, Any], count: int = FRAMES_PER_SEGMENT) -> list[tuple[float, float]]:
    """``count`` (query s, reference s) pairs evenly spread over a segment, the reference time
    following the query time along the segment (a copy at another speed included)."""
    q0, q1 = segment["query_start"], segment["query_end"]
    r0, r1 = segment["reference_start"], segment["reference_end"]
    fractions = np.linspace(0.0, 1.0, count + 2)[1:-1]  # inside the segment, not on its ends
    return [(q0 + f * (q1 - q0), r0 + f * (r1 - r0)) for f in fractions]


def _data_uri(image: Image.Image, kind: str = "JPEG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, quality=85) if kind == "JPEG" else image.save(buffer, format=kind)
    mime = "image/jpeg" if kind == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def _thumbnail(frame: np.ndarray) -> str:
    image = Image.fromarray(frame)
    width = max(1, round(image.width * THUMBNAIL_HEIGHT_PX / image.height))
    return _data_uri(image.resize((width, THUMBNAIL_HEIGHT_PX), Image.Resampling.BILINEAR))


def map_image(
    contrast: np.ndarray,
    query_times_s: np.ndarray,
    reference_times_s: np.ndarray,
    segments: Sequence[dict[str, Any]],
) -> Image.Image:
    """The contrast map (query frames down, reference frames across; brighter is more alike) with
    each segment's box drawn in red, and seconds marked along both axes (query on the left,
    reference on top)."""
    lo, hi = CONTRAST_RANGE  # shown from black to white, as SPD sees it
    grey = (np.clip((contrast - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rows, cols = grey.shape
    scale = max(1, MAP_MAX_SIDE_PX // max(rows, cols, 1))
    left, top = AXIS_MARGIN_PX
    image = Image.new("RGB", (cols * scale + left + 8, rows * scale + top + 8), "white")
    image.paste(
        Image.fromarray(grey).convert("RGB").resize((cols * scale, rows * scale), Image.Resampling.NEAREST),
        (left, top),
    )
    draw = ImageDraw.Draw(image)
    for seconds, pixel in _ticks(reference_times_s, scale):
        draw.line([(left + pixel, top - 4), (left + pixel, top - 1)], fill="black")
        draw.text((left + pixel + 2, 2), f"{seconds:g} s", fill="black")
    for seconds, pixel in _ticks(query_times_s, scale):
        draw.line([(left - 4, top + pixel), (left - 1, top + pixel)], fill="black")
        draw.text((2, top + pixel + 1), f"{seconds:g} s", fill="black")
    for segment in segments:
        y0 = np.searchsorted(query_times_s, segment["query_start"] - 1e-6) * scale + top
        y1 = np.searchsorted(query_times_s, segment["query_end"] - 1e-6) * scale + top
        x0 = np.searchsorted(reference_times_s, segment["reference_start"] - 1e-6) * scale + left
        x1 = np.searchsorted(reference_times_s, segment["reference_end"] - 1e-6) * scale + left
        draw.rectangle(
            [int(x0), int(y0), max(int(x0), int(x1) - 1), max(int(y0), int(y1) - 1)], outline=(255, 40, 40)
        )
    return image


def _ticks(times_s: np.ndarray, scale: int) -> list[tuple[float, int]]:
    """(seconds, pixel offset) of at most ``MAX_TICKS`` round seconds along a map axis."""
    if len(times_s) == 0:
        return []
    start_s, end_s = float(times_s[0]), float(times_s[-1])
    step_s = next((s for s in TICK_STEPS_S if s * MAX_TICKS >= end_s - start_s), TICK_STEPS_S[-1])
    first = math.ceil(start_s / step_s) * step_s
    return [
        (t, int(np.searchsorted(times_s, t - 1e-6)) * scale) for t in np.arange(first, end_s + 1e-9, step_s)
    ]


class EvidenceWriter:
    """Writes the evidence pages of reports made on ``library`` with ``descriptor`` (the query's
    frames are decoded and described again to draw the map; its bytes must be the report's)."""

    def __init__(
        self, library: Library, descriptor: Descriptor, background_rank: int, views: tuple[str, ...] = ()
    ) -> None:
        if len(descriptor.background) == 0:
            raise VcopyError("evidence maps need a descriptor with a background set (it normalises them)")
        self.library = library
        self.descriptor = descriptor
        # as the query was encoded
        self.pipeline = Pipeline.of_library(library.pipeline_spec, library.root, descriptor)
        self.background_set = descriptor.background
        self.background_rank = background_rank
        self.views = views  # the query views the report was made with
        self.videos = {v.path: v for v in library.videos()}
        self._checks: dict[tuple[Path, str | None], FileCheck] = {}  # each file hashed once

    def write(self, report: dict[str, Any], out_dir: Path) -> list[EvidencePage]:
        """One page per match, then ``index.html`` listing them; returns the match pages."""
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VcopyError(f"{out_dir}: cannot hold evidence pages ({exc.strerror or exc})") from None
        matched = [q for q in report["queries"] if q["status"] == "ok" and q["matches"]]
        readable = [Path(q["path"]) for q in matched if self._checked(Path(q["path"]), q["sha256"]).ok]
        encoded = {e.path: e for e in self._encode(readable)}
        pages: list[EvidencePage] = []
        for query in matched:
            video = encoded.get(Path(query["path"]))
            for match in query["matches"]:
                path = out_dir / f"match-{len(pages) + 1:03d}.html"
                _write_page(path, self._page(report, query, match, video))
                pages.append(EvidencePage(path, query["path"], match["reference"]["path"]))
        _write_page(out_dir / "index.html", _index_page(report, pages))
        return pages

    def _encode(self, paths: list[Path]) -> list[EncodedVideo]:
        found = []
        for result in self.pipeline.encode(paths, library=False, views=self.views):
            if not isinstance(result, FailedVideo):
                found.append(result)
        return found

    def _page(
        self, report: dict[str, Any], query: dict[str, Any], match: dict[str, Any], video: EncodedVideo | None
    ) -> str:
        reference = match["reference"]
        query_path, reference_path = Path(query["path"]), Path(reference["path"])
        library_video = self._library_video(reference)
        query_check = self._checked(query_path, query["sha256"])
        reference_check = (
            self._checked(reference_path, reference["sha256"])
            if library_video is not None
            else FileCheck(False, "not read: the library holds no video of this path and SHA-256")
        )
        map_uri = None
        if video is not None and video.stamp.sha256 == query["sha256"] and library_video is not None:
            ref_vectors, ref_times = self.library.frames_of(library_video.id)
            views = video.all_views
            background = background_similarity(views, self.background_set, self.background_rank)
            contrast, q_times, r_times = grid_map(
                similarity_map(views, ref_vectors, background),
                video.timestamps_s,
                ref_times,
                self.pipeline.spec.sample_fps,
                self.library.span_ends_of(library_video.id),
            )
            map_uri = _data_uri(map_image(contrast, q_times, r_times, match["segments"]), "PNG")
        files = [
            _file_row("query", query, query_check),
            _file_row("reference", reference, reference_check),
        ]
        return _render(
            "match.html.j2",
            title=f"{query_path.name} copies {reference_path.name}",
            files=files,
            score=f"{match['score']:.3f}",
            localizer=report.get("localizer", "?"),
            segments=[_segment_row(s) for s in match["segments"]],
            map_uri=map_uri,
            frame_pairs=self._frame_pairs(
                query_path if query_check.ok else None,
                reference_path if reference_check.ok else None,
                match["segments"],
            ),
            **_provenance(report),
        )

    def _library_video(self, reference: dict[str, Any]) -> LibraryVideo | None:
        """The library video a report's reference names, by path and SHA-256 (None: none is)."""
        video = self.videos.get(reference["path"])
        return video if video is not None and video.sha256 == reference["sha256"] else None

    def _checked(self, path: Path, sha256: str | None) -> FileCheck:
        if (path, sha256) not in self._checks:
            self._checks[path, sha256] = _file_check(path, sha256)
        return self._checks[path, sha256]

    def _frame_pairs(
        self, query_path: Path | None, reference_path: Path | None, segments: Sequence[dict[str, Any]]
    ) -> list[list[tuple[dict[str, str | None], dict[str, str | None]]]]:
        """Per segment, frames side by side (data URI and caption), from files whose bytes are
        the report's (None: not drawn)."""
        rows = []
        for segment in segments:
            pairs = aligned_times(segment)
            query_frames = _frames(query_path, [q for q, _ in pairs])
            reference_frames = _frames(reference_path, [r for _, r in pairs])
            rows.append(
                [
                    (
                        _figure(q_frame, f"query {timecode(q_s)}"),
                        _figure(r_frame, f"reference {timecode(r_s)}"),
                    )
                    for (q_s, r_s), q_frame, r_frame in zip(
                        pairs, query_frames, reference_frames, strict=True
                    )
                ]
            )
        return rows


def _frames(path: Path | None, times_s: list[float]) -> list[np.ndarray | None]:
    if path is None:
        return [None] * len(times_s)
    try:
        return frames_at(path, probe(path), times_s)
    except VcopyError:
        return [None] * len(times_s)


def _figure(frame: np.ndarray | None, caption: str) -> dict[str, str | None]:
    return {"uri": None if frame is None else _thumbnail(frame), "caption": caption}


@dataclass(frozen=True)
class FileCheck:
    """Whether a file still has the report's bytes, and that said in words."""

    ok: bool
    text: str


def _file_check(path: Path, sha256: str | None) -> FileCheck:
    """Whether a file still has the report's bytes; only a regular video file is read (never a
    device, FIFO or a file of another kind that a crafted report names)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or path.suffix.lower() not in VIDEO_SUFFIXES:
            return FileCheck(False, "not read: not a regular video file")
        actual = sha256_file(path)
    except OSError as exc:
        return FileCheck(False, f"not readable now ({exc.strerror or exc})")
    if actual != sha256:
        return FileCheck(False, "its bytes changed since the report")
    return FileCheck(True, "same bytes as in the report")


def _write_page(path: Path, page: str) -> None:
    try:
        write_output_file(path, page.encode("utf-8"))
    except OSError as exc:
        raise VcopyError(f"{path}: cannot write the page ({exc.strerror or exc})") from None


def _file_row(role: str, video: dict[str, Any], check: FileCheck) -> dict[str, Any]:
    return {
        "role": role,
        "path": video["path"],
        "sha256": video["sha256"],
        "duration": _duration(video["duration"]),
        "check": check,
    }


def _segment_row(s: dict[str, Any]) -> dict[str, str]:
    return {
        "query_s": f"{s['query_start']:.3f}–{s['query_end']:.3f}",
        "query_timecodes": f"{timecode(s['query_start'])}–{timecode(s['query_end'])}",
        "query_ranges": _ranges(s, "query"),
        "reference_s": f"{s['reference_start']:.3f}–{s['reference_end']:.3f}",
        "reference_timecodes": f"{timecode(s['reference_start'])}–{timecode(s['reference_end'])}",
        "reference_ranges": _ranges(s, "reference"),
        "score": f"{s['score']:.3f}",
    }


def _ranges(segment: dict[str, Any], axis: str) -> str:
    """``lo–hi / lo–hi`` seconds for an axis's start and end (as the report states them)."""
    spans = [segment.get(f"{axis}_{end}_range") for end in ("start", "end")]
    return " / ".join("?" if span is None else f"{span[0]:.1f}–{span[1]:.1f}" for span in spans)


def _provenance(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": report["vcopy_version"],
        "created_utc": report["created_utc"],
        "library": report["library"],
        "models": [
            {"role": m.get("role", ""), "name": m["name"], "sha256": m["sha256"]} for m in report["models"]
        ],
        "parameters": json.dumps(report["parameters"], indent=2),
    }


def _index_page(report: dict[str, Any], pages: Sequence[EvidencePage]) -> str:
    return _render(
        "index.html.j2",
        title="vcopy evidence",
        pages=[{"name": p.path.name, "query": p.query, "reference": p.reference} for p in pages],
        queries=len(report["queries"]),
        created_utc=report["created_utc"],
        version=report["vcopy_version"],
    )


@functools.cache
def _templates() -> jinja2.Environment:
    """The page templates (``vcopy/templates``), every value escaped for HTML."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("vcopy", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _render(template: str, **values: Any) -> str:
    return _templates().get_template(template).render(**values)


def _duration(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.3f} s ({timecode(seconds)})"
