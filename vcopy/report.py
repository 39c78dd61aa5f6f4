"""The JSON report (schema ``vcopy.report/1``, shipped as ``vcopy/schemas/report-1.schema.json``)."""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import vcopy
from vcopy.errors import VcopyError
from vcopy.files import read_bounded, write_output_file

if TYPE_CHECKING:  # reports are also written by commands that never load the copy finder
    from vcopy.library import Library
    from vcopy.localize.base import BoundaryRanges, Segment
    from vcopy.query import CopyFinder, Match, QueryResult

SCHEMA_ID = "vcopy.report/1"


def load_schema() -> dict[str, Any]:
    """The JSON Schema that every report validates against."""
    return json.loads(resources.files("vcopy").joinpath("schemas/report-1.schema.json").read_text())


def build_report(
    finder: CopyFinder, results: Sequence[QueryResult], started_utc: str | None = None
) -> dict[str, Any]:
    """A report for a person who must defend it: both files by path and SHA-256, every segment in
    seconds with its score, the tool and weights versions, the parameters and the time of the run."""
    library = finder.library
    descriptor = finder.descriptor
    return {
        "schema": SCHEMA_ID,
        "vcopy_version": vcopy.__version__,
        "created_utc": started_utc or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"python": platform.python_version(), "platform": platform.platform()},
        "parameters": finder.parameters,
        "models": descriptor.models + _keyframes_models(library) + finder.localizer.models,
        "localizer": finder.config.localizer,
        "library": {
            "path": str(library.root.resolve()),
            "videos": len(library),
            "state_id": library.state_id,
            "descriptor": library.meta["descriptor"],
            "keyframes": library.pipeline_spec.keyframes,
        },
        "queries": [_query_entry(r) for r in results],
    }


def _keyframes_models(library: Library) -> list[dict[str, str]]:
    """The key-frame model the library's videos were thinned with, if any."""
    sha256 = library.meta.get("keyframes_sha256", "")
    name = library.pipeline_spec.keyframes
    return [{"role": "keyframes", "name": f"keyframes:{name}", "sha256": sha256}] if sha256 else []


def _query_entry(result: QueryResult) -> dict[str, Any]:
    return {
        "path": str(result.path.absolute()),  # as the reference paths are: no working directory needed
        "sha256": result.sha256,
        "duration": None if result.duration_s is None else round(result.duration_s, 3),
        "status": "ok" if result.ok else "error",
        "error": result.error,
        "warnings": result.warnings,
        "decoder": result.decoder,
        "matches": [_match_entry(m) for m in result.matches],
        "below_threshold": [_match_entry(m) for m in result.below_threshold],
    }


def _match_entry(m: Match) -> dict[str, Any]:
    return {
        "reference": {
            "path": m.reference.path,
            "sha256": m.reference.sha256,
            "duration": round(m.reference.duration_s, 3),
            "decoder": m.reference.decoder,
        },
        "score": round(m.score, 6),
        "segments": [_segment_entry(s, r) for s, r in zip(m.segments, m.ranges, strict=True)],
    }


def _segment_entry(s: Segment, r: BoundaryRanges) -> dict[str, Any]:
    """A segment: its ends in seconds and timecodes, its score, and the range each end may lie in."""
    return {
        "query_start": round(s.query_start_s, 3),
        "query_end": round(s.query_end_s, 3),
        "reference_start": round(s.reference_start_s, 3),
        "reference_end": round(s.reference_end_s, 3),
        "score": round(s.score, 6),
        **{
            f"{end}_timecode": timecode(seconds)
            for end, seconds in (
                ("query_start", s.query_start_s),
                ("query_end", s.query_end_s),
                ("reference_start", s.reference_start_s),
                ("reference_end", s.reference_end_s),
            )
        },
        "query_start_range": _rounded(r.query_start_s),
        "query_end_range": _rounded(r.query_end_s),
        "reference_start_range": _rounded(r.reference_start_s),
        "reference_end_range": _rounded(r.reference_end_s),
    }


def _rounded(span: tuple[float, float]) -> list[float]:
    return [round(span[0], 3), round(span[1], 3)]


MAX_REPORT_BYTES = 1 << 30


def read_report(path: Path) -> dict[str, Any]:
    """A report written by ``vcopy query`` (``vcopy.report/1``), validated against the shipped
    schema; anything else (not a regular file, NaN or infinite numbers, a field of the wrong type or
    out of range) is a one-line error."""
    import jsonschema

    try:
        data = read_bounded(path, MAX_REPORT_BYTES)
        report = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except OSError as exc:
        raise VcopyError(f"{path}: not a readable report ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise VcopyError(f"{path}: not a readable report ({type(exc).__name__}: {exc})") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA_ID:
        raise VcopyError(f"{path}: not a vcopy report (schema is not {SCHEMA_ID})")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(load_schema()).iter_errors(report)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the report"
        raise VcopyError(f"{path}: not a valid vcopy report ({where}: {error.message[:200]})")
    return report


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def timecode(seconds: float) -> str:
    """Seconds as HH:MM:SS.mmm (counted from the file's start, as players show it)."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


CSV_COLUMNS = (
    "query", "query_sha256", "reference", "reference_sha256", "match_score",
    "query_start", "query_end", "reference_start", "reference_end",
    "query_start_timecode", "query_end_timecode", "reference_start_timecode", "reference_end_timecode",
    "segment_score",
)  # fmt: skip


def report_csv(report: dict[str, Any], text: Callable[[str], str] = str) -> str:
    """The report's copied segments as CSV, one row per segment (times in seconds and timecodes);
    paths go through ``text`` (on a terminal: with control characters escaped)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for query in report["queries"]:
        for match in query["matches"]:
            reference = match["reference"]
            for s in match["segments"]:
                writer.writerow(
                    [text(query["path"]), query["sha256"], text(reference["path"]), reference["sha256"]]
                    + [match["score"]]
                    + [s[column] for column in CSV_COLUMNS[5:-1]]
                    + [s["score"]]
                )
    return out.getvalue()


VSC_SUBMISSION_COLUMNS = ("query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end", "score")


def report_vsc_csv(report: dict[str, Any]) -> str:
    """The report as a VSC22 matching-track submission: one row per segment of every scored pair
    (matches and those below the threshold: the challenge ranks them all), videos named by their
    file stem, each row scored by its pair's score."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(VSC_SUBMISSION_COLUMNS)
    for query in report["queries"]:
        for match in query["matches"] + query.get("below_threshold", []):
            for s in match["segments"]:
                writer.writerow(
                    [PurePath(query["path"]).stem, PurePath(match["reference"]["path"]).stem]
                    + [s[k] for k in ("query_start", "query_end", "reference_start", "reference_end")]
                    + [match["score"]]
                )
    return out.getvalue()


def write_report(report: dict[str, Any], destination: str) -> None:
    """Write JSON to a file (atomically) or, for ``-``, to standard output."""
    text = json.dumps(_finite(report), indent=2, allow_nan=False) + "\n"
    if destination == "-":
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(destination)
    try:
        write_output_file(path, text.encode())
    except OSError as exc:
        raise VcopyError(f"{path}: cannot write the report ({exc.strerror or exc})") from None


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
