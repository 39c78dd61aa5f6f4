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
import html
import io
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    each segment's box drawn in red."""
    lo, hi = CONTRAST_RANGE  # shown from black to white, as SPD sees it
    grey = (np.clip((contrast - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rows, cols = grey.shape
    scale = max(1, MAP_MAX_SIDE_PX // max(rows, cols))
    image = (
        Image.fromarray(grey).convert("RGB").resize((cols * scale, rows * scale), Image.Resampling.NEAREST)
    )
    draw = ImageDraw.Draw(image)
    for segment in segments:
        y0 = np.searchsorted(query_times_s, segment["query_start"] - 1e-6) * scale
        y1 = np.searchsorted(query_times_s, segment["query_end"] - 1e-6) * scale
        x0 = np.searchsorted(reference_times_s, segment["reference_start"] - 1e-6) * scale
        x1 = np.searchsorted(reference_times_s, segment["reference_end"] - 1e-6) * scale
        draw.rectangle(
            [int(x0), int(y0), max(int(x0), int(x1) - 1), max(int(y0), int(y1) - 1)], outline=(255, 40, 40)
        )
    return image


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
        self.pipeline = Pipeline.of_library(library, descriptor)  # as the query was encoded
        self.background_set = descriptor.background
        self.background_rank = background_rank
        self.views = views  # the query views the report was made with
        self.videos = {v.path: v for v in library.videos()}
        self._checks: dict[tuple[Path, str | None], tuple[bool, str]] = {}  # each file hashed once

    def write(self, report: dict[str, Any], out_dir: Path) -> list[EvidencePage]:
        """One page per match, then ``index.html`` listing them; returns the match pages."""
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VcopyError(f"{out_dir}: cannot hold evidence pages ({exc.strerror or exc})") from None
        matched = [q for q in report["queries"] if q["status"] == "ok" and q["matches"]]
        readable = [Path(q["path"]) for q in matched if self._same_file(Path(q["path"]), q["sha256"])]
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
        checks = [
            self._file_check(query_path, query["sha256"]),
            self._file_check(reference_path, reference["sha256"])
            if library_video is not None
            else _NOT_IN_LIBRARY,
        ]
        query_same = self._same_file(query_path, query["sha256"])
        reference_same = library_video is not None and self._same_file(reference_path, reference["sha256"])
        blocks = [_segment_table(match["segments"])]
        if video is not None and video.stamp.sha256 == query["sha256"] and library_video is not None:
            ref_vectors, ref_times = self.library.frames_of(library_video.id)
            views = video.all_views
            background = background_similarity(views, self.background_set, self.background_rank)
            contrast, q_times, r_times = grid_map(
                similarity_map(views, ref_vectors, background),
                video.timestamps_s,
                ref_times,
                self.pipeline.spec.sample_fps,
            )
            image = map_image(contrast, q_times, r_times, match["segments"])
            blocks.append(
                "<h2>Similarity map</h2><p>Query frames run down, reference frames across, one pixel "
                "block per sampled frame; brighter is more alike than unrelated footage. The red boxes "
                f"are the segments.</p><img class='map' alt='similarity map' src='{_data_uri(image, 'PNG')}'>"
            )
        else:
            blocks.append(
                "<p class='warn'>The similarity map could not be drawn: the query file or the "
                "reference in the library is not the one the report names.</p>"
            )
        blocks.append(
            self._frame_pairs(
                query_path if query_same else None,
                reference_path if reference_same else None,
                match["segments"],
            )
        )
        title = f"{query_path.name} copies {reference_path.name}"
        body = (
            f"<h1>{_e(title)}</h1>"
            "<table class='files'><tr><th></th><th>file</th><th>SHA-256</th><th>duration</th>"
            "<th>check</th></tr>"
            f"<tr><th>query</th><td>{_e(query_path)}</td><td><code>{_e(query['sha256'])}</code></td>"
            f"<td>{_e(_duration(query['duration']))}</td><td>{checks[0]}</td></tr>"
            f"<tr><th>reference</th><td>{_e(reference_path)}</td><td><code>{_e(reference['sha256'])}</code></td>"
            f"<td>{_e(_duration(reference['duration']))}</td><td>{checks[1]}</td></tr></table>"
            f"<p>Match score <b>{match['score']:.3f}</b> ({_e(report.get('localizer', '?'))}; see the "
            "report's "
            "schema for what a score means).</p>" + "".join(blocks) + _provenance(report)
        )
        return _html(title, body)

    def _library_video(self, reference: dict[str, Any]) -> LibraryVideo | None:
        """The library video a report's reference names, by path and SHA-256 (None: none is)."""
        video = self.videos.get(reference["path"])
        return video if video is not None and video.sha256 == reference["sha256"] else None

    def _file_check(self, path: Path, sha256: str | None) -> str:
        return self._checked(path, sha256)[1]

    def _same_file(self, path: Path, sha256: str | None) -> bool:
        return self._checked(path, sha256)[0]

    def _checked(self, path: Path, sha256: str | None) -> tuple[bool, str]:
        if (path, sha256) not in self._checks:
            self._checks[path, sha256] = _file_check(path, sha256)
        return self._checks[path, sha256]

    def _frame_pairs(
        self, query_path: Path | None, reference_path: Path | None, segments: Sequence[dict[str, Any]]
    ) -> str:
        """Frames side by side, from files whose bytes are the report's (None: not drawn)."""
        rows = []
        for number, segment in enumerate(segments, 1):
            pairs = aligned_times(segment)
            query_frames = _frames(query_path, [q for q, _ in pairs])
            reference_frames = _frames(reference_path, [r for _, r in pairs])
            cells = []
            for (q_s, r_s), q_frame, r_frame in zip(pairs, query_frames, reference_frames, strict=True):
                cells.append(
                    "<figure class='pair'>"
                    + _figure(q_frame, f"query {timecode(q_s)}")
                    + _figure(r_frame, f"reference {timecode(r_s)}")
                    + "</figure>"
                )
            rows.append(f"<h3>Segment {number}: matched frames</h3><div class='pairs'>{''.join(cells)}</div>")
        return "<h2>Matched frames</h2>" + "".join(rows)


def _frames(path: Path | None, times_s: list[float]) -> list[np.ndarray | None]:
    if path is None:
        return [None] * len(times_s)
    try:
        return frames_at(path, probe(path), times_s)
    except VcopyError:
        return [None] * len(times_s)


def _figure(frame: np.ndarray | None, caption: str) -> str:
    if frame is None:
        return f"<div class='missing'>no frame</div><figcaption>{_e(caption)}</figcaption>"
    image = f"<img class='thumb' alt='{_e(caption)}' src='{_thumbnail(frame)}'>"
    return f"{image}<figcaption>{_e(caption)}</figcaption>"


_NOT_IN_LIBRARY = "<span class='warn'>not read: the library holds no video of this path and SHA-256</span>"


def _file_check(path: Path, sha256: str | None) -> tuple[bool, str]:
    """Whether a file still has the report's bytes, and that said as HTML; only a regular video
    file is read (never a device, FIFO or a file of another kind that a crafted report names)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode) or path.suffix.lower() not in VIDEO_SUFFIXES:
            return False, "<span class='warn'>not read: not a regular video file</span>"
        actual = sha256_file(path)
    except OSError as exc:
        return False, f"<span class='warn'>not readable now ({_e(exc.strerror or exc)})</span>"
    if actual != sha256:
        return False, "<span class='warn'>its bytes changed since the report</span>"
    return True, "<span class='ok'>same bytes as in the report</span>"


def _write_page(path: Path, page: str) -> None:
    try:
        write_output_file(path, page.encode("utf-8"))
    except OSError as exc:
        raise VcopyError(f"{path}: cannot write the page ({exc.strerror or exc})") from None


def _segment_table(segments: Sequence[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td class='num'>{s['query_start']:.3f}–{s['query_end']:.3f}</td>"
        f"<td>{timecode(s['query_start'])}–{timecode(s['query_end'])}</td>"
        f"<td class='num'>{_ranges(s, 'query')}</td>"
        f"<td class='num'>{s['reference_start']:.3f}–{s['reference_end']:.3f}</td>"
        f"<td>{timecode(s['reference_start'])}–{timecode(s['reference_end'])}</td>"
        f"<td class='num'>{_ranges(s, 'reference')}</td>"
        f"<td class='num'>{s['score']:.3f}</td></tr>"
        for n, s in enumerate(segments, 1)
    )
    return (
        "<h2>Copied segments</h2><table class='segments'><tr><th>#</th><th>query (s)</th><th>query</th>"
        "<th>query start / end may lie in (s)</th><th>reference (s)</th><th>reference</th>"
        f"<th>reference start / end may lie in (s)</th><th>score</th></tr>{rows}</table>"
        "<p>Each end may lie anywhere in its range: a sampling step either way, more where the "
        "similarity map is flat across the end (a pan or a zoom over one picture).</p>"
    )


def _ranges(segment: dict[str, Any], axis: str) -> str:
    """``lo–hi / lo–hi`` seconds for an axis's start and end (as the report states them)."""
    spans = [segment.get(f"{axis}_{end}_range") for end in ("start", "end")]
    return " / ".join("?" if span is None else f"{span[0]:.1f}–{span[1]:.1f}" for span in spans)


def _provenance(report: dict[str, Any]) -> str:
    models = "".join(
        f"<li>{_e(m.get('role', ''))} {_e(m['name'])}: <code>{_e(m['sha256'])}</code></li>"
        for m in report["models"]
    )
    library = report["library"]
    return (
        "<h2>How this was found</h2>"
        f"<p>vcopy {_e(report['vcopy_version'])}, run started {_e(report['created_utc'])}, library "
        f"{_e(library['path'])} ({_e(library['videos'])} videos, state {_e(library['state_id'])}).</p>"
        f"<h3>Models</h3><ul>{models}</ul>"
        f"<h3>Parameters</h3><pre>{_e(json.dumps(report['parameters'], indent=2))}</pre>"
    )


def _index_page(report: dict[str, Any], pages: Sequence[EvidencePage]) -> str:
    rows = "".join(
        f"<tr><td><a href='{_e(p.path.name)}'>{_e(p.path.name)}</a></td><td>{_e(p.query)}</td>"
        f"<td>{_e(p.reference)}</td></tr>"
        for p in pages
    )
    body = (
        f"<h1>vcopy evidence</h1><p>{len(pages)} matches in a report of {len(report['queries'])} queries, "
        f"made {_e(report['created_utc'])} by vcopy {_e(report['vcopy_version'])}.</p>"
        f"<table><tr><th>page</th><th>query</th><th>reference</th></tr>{rows}</table>"
    )
    return _html("vcopy evidence", body)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #111; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #bbb; padding: 4px 8px; }
.num { text-align: right; font-variant-numeric: tabular-nums; } code { font-size: 0.85em; }
.pairs { display: flex; flex-wrap: wrap; gap: 12px; } figure.pair { margin: 0; display: grid; gap: 2px; }
figcaption { font-size: 0.8em; text-align: center; } .warn { color: #b00; } .ok { color: #060; }
img.map { image-rendering: pixelated; border: 1px solid #888; max-width: 100%; }
"""
_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', loaded + '/' + images.length);
});
"""


def _html(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head>"
        f"<body>{body}</body></html>\n"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _duration(seconds: float | None) -> str:
    return "unknown" if seconds is None else f"{seconds:.3f} s ({timecode(seconds)})"
