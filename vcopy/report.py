"""The JSON report (schema ``vcopy.report/1``, shipped as ``vcopy/schemas/report-1.schema.json``)."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import vcopy
from vcopy.errors import VcopyError

if TYPE_CHECKING:  # reports are also written by commands that never load the copy finder
    from vcopy.query import CopyFinder, QueryResult

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
        "models": descriptor.models + getattr(finder.localizer, "models", []),
        "localizer": finder.config.localizer,
        "library": {
            "path": str(library.root.resolve()),
            "videos": len(library),
            "state_id": library.state_id,
            "descriptor": library.meta["descriptor"],
        },
        "queries": [_query_entry(r) for r in results],
    }


def _query_entry(result: QueryResult) -> dict[str, Any]:
    return {
        "path": str(result.path.absolute()),  # as the reference paths are: no working directory needed
        "sha256": result.sha256,
        "duration": None if result.duration_s is None else round(result.duration_s, 3),
        "status": "ok" if result.ok else "error",
        "error": result.error,
        "warnings": result.warnings,
        "matches": [
            {
                "reference": {
                    "path": m.reference.path,
                    "sha256": m.reference.sha256,
                    "duration": round(m.reference.duration_s, 3),
                },
                "score": round(m.score, 6),
                "segments": [
                    {
                        "query_start": round(s.query_start_s, 3),
                        "query_end": round(s.query_end_s, 3),
                        "reference_start": round(s.reference_start_s, 3),
                        "reference_end": round(s.reference_end_s, 3),
                        "score": round(s.score, 6),
                    }
                    for s in m.segments
                ],
            }
            for m in result.matches
        ],
    }


def write_report(report: dict[str, Any], destination: str) -> None:
    """Write JSON to a file (atomically) or, for ``-``, to standard output."""
    text = json.dumps(_finite(report), indent=2, allow_nan=False) + "\n"
    if destination == "-":
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(destination)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
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
