"""Ground truth of copies, the one reader: vcopy's own file (``vcopy.groundtruth/1``, what
``examples/make_benchmark.py`` writes), VSC22's matching-track CSV and VCSL's pair annotations.

- vcopy: JSON listing every reference and query (path, SHA-256, split) and each query's copies, so
  files are matched by SHA-256 and a query without copies is listed.
- VSC22 (Meta's Video Similarity Challenge, matching track): CSV with the header
  ``query_id,ref_id,query_start,query_end,ref_start,ref_end`` (seconds), one row per copied segment.
- VCSL (Alibaba's Video Copy Segment Localization): JSON ``{"QUERY-REFERENCE": [[query_start,
  reference_start, query_end, reference_end], ...]}`` (seconds at VCSL's 1 frame/s).

In VSC22's and VCSL's files a video is named by its id, the file name without its extension (its
stem), and only queries with copies appear: a scored query the file does not name has no copies.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vcopy.errors import VcopyError

SCHEMA = "vcopy.groundtruth/1"
GROUND_TRUTH = "groundtruth.json"  # the file name the generator writes, beside the videos
VSC_COLUMNS = ("query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end")

Box = tuple[float, float, float, float]  # query_start, query_end, reference_start, reference_end (s)
Key = Literal["sha256", "stem"]


@dataclass
class TrueQuery:
    """Ground truth of one query: its copies per reference, and its tags for the breakdowns."""

    path: str
    boxes: dict[str, list[Box]] = field(default_factory=dict)  # reference key -> boxes
    tags: dict[str, set[str]] = field(default_factory=dict)  # "transform"/"speed"/"shot" -> values


@dataclass(frozen=True)
class GroundTruth:
    """Queries by key (SHA-256, or file stem for VSC22 and VCSL), in the format they were read from."""

    queries: dict[str, TrueQuery]
    key: Key
    lists_every_query: bool  # False: only queries with copies are named (VSC22, VCSL)
    format: str


def read_ground_truth(path: Path, split: str | None = None) -> GroundTruth:
    """The ground truth in ``path``, whichever of the three formats it is in; ``split`` (vcopy's
    format only) keeps the queries of that split. A one-line VcopyError naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise VcopyError(f"{path}: cannot read the ground truth ({reason})") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise VcopyError(f"{path}: not a ground-truth file (not valid JSON: {exc})") from None
        if isinstance(data, dict) and "schema" in data:
            return _vcopy(data, path, split)
        _no_split(path, split, "VCSL")
        return _vcsl(data, path)
    _no_split(path, split, "VSC22")
    return _vsc(text, path)


def load_ground_truth(path: Path, split: str | None = None) -> dict[str, TrueQuery]:
    """The queries of vcopy's own ground truth (keyed by SHA-256), of ``split`` when given."""
    truth = read_ground_truth(path, split)
    if truth.format != "vcopy":
        raise VcopyError(f"{path}: a {truth.format} file; this needs vcopy's own ground truth ({SCHEMA})")
    return truth.queries


def split_paths(gt_path: Path, split: str, kind: str) -> list[Path]:
    """Absolute paths of the ``kind`` ("references" or "queries") of one split of vcopy's ground truth."""
    data = vcopy_record(Path(gt_path))
    return [Path(gt_path).parent / v["path"] for v in data[kind] if v["split"] == split]


def vcopy_record(path: Path) -> dict[str, Any]:
    """vcopy's ground-truth file as it is (videos, splits, copies, generator settings), checked to be one."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("vcopy.groundtruth/"):
            raise ValueError(f"schema is not {SCHEMA}")
        return data
    except (OSError, ValueError) as exc:
        raise VcopyError(
            f"{path}: not a readable ground-truth file ({exc.__class__.__name__}: {exc})"
        ) from None


def _vcopy(data: dict[str, Any], path: Path, split: str | None) -> GroundTruth:
    try:
        if not str(data["schema"]).startswith("vcopy.groundtruth/"):
            raise ValueError(f"schema is {data['schema']!r}, not {SCHEMA}")
        refs = {r["path"]: r["sha256"] for r in data["references"]}
        queries: dict[str, TrueQuery] = {}
        for q in data["queries"]:
            if split is not None and q.get("split") != split:
                continue
            tq = TrueQuery(q["path"])
            tq.tags["transform"] = {t.split(":")[0] for t in q.get("transforms", [])} or {"none"}
            tq.tags["speed"] = {f"{c['speed']:g}x" for c in q["copies"] if "speed" in c} or {"no copy"}
            tq.tags["shot"] = {c["shot"] for c in q["copies"] if c.get("shot")} or {"no copy"}
            for c in q["copies"]:
                tq.boxes.setdefault(refs[c["reference"]], []).append(
                    _box(c["query_start"], c["query_end"], c["reference_start"], c["reference_end"])
                )
            queries[q["sha256"]] = tq
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise VcopyError(
            f"{path}: not a readable ground-truth file ({exc.__class__.__name__}: {exc})"
        ) from None
    if not queries:
        raise VcopyError(f"{path}: no queries" + (f" in split {split!r}" if split else ""))
    return GroundTruth(queries, "sha256", True, "vcopy")


def _vsc(text: str, path: Path) -> GroundTruth:
    rows = csv.reader(text.splitlines())
    header = tuple(c.strip() for c in next(rows, []))
    if header[: len(VSC_COLUMNS)] != VSC_COLUMNS:
        raise VcopyError(
            f"{path}: not a ground-truth file (a VSC22 CSV starts with the header {','.join(VSC_COLUMNS)})"
        )
    queries: dict[str, TrueQuery] = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            query_id, ref_id = row[0].strip(), row[1].strip()
            if not query_id or not ref_id:
                raise ValueError("an empty id")
            box = _box(*row[2:6])
        except (ValueError, TypeError, IndexError) as exc:
            raise VcopyError(f"{path}: line {line}: not a VSC22 ground-truth row ({exc})") from None
        queries.setdefault(query_id, TrueQuery(query_id)).boxes.setdefault(ref_id, []).append(box)
    if not queries:
        raise VcopyError(f"{path}: no copies")
    return GroundTruth(_tagged(queries), "stem", False, "VSC22")


def _vcsl(data: Any, path: Path) -> GroundTruth:
    if not isinstance(data, dict):
        raise VcopyError(f"{path}: not a ground-truth file (neither vcopy's nor VCSL's JSON)")
    queries: dict[str, TrueQuery] = {}
    for pair, boxes in data.items():
        try:
            query_id, _, ref_id = str(pair).partition("-")
            if not query_id or not ref_id:
                raise ValueError("its key is not QUERY-REFERENCE")
            if not isinstance(boxes, list):
                raise ValueError("its value is not a list of boxes")
            true = queries.setdefault(query_id, TrueQuery(query_id)).boxes.setdefault(ref_id, [])
            for q0, r0, q1, r1 in boxes:  # VCSL's order: query start, reference start, query end, ...
                true.append(_box(q0, q1, r0, r1))
        except (ValueError, TypeError) as exc:
            raise VcopyError(f"{path}: pair {str(pair)[:80]!r}: not a VCSL annotation ({exc})") from None
    if not queries:
        raise VcopyError(f"{path}: no copies")
    return GroundTruth(_tagged(queries), "stem", False, "VCSL")


def _box(*ends: Any) -> Box:
    """A box from four ends in seconds: finite, not negative, each end after its start."""
    if len(ends) != 4:
        raise ValueError(f"{len(ends)} ends, not 4")
    q0, q1, r0, r1 = (float(e) for e in ends)
    if not all(math.isfinite(e) and e >= 0 for e in (q0, q1, r0, r1)):
        raise ValueError("an end is negative or not a number")
    if q1 < q0 or r1 < r0:
        raise ValueError("an end before its start")
    return (q0, q1, r0, r1)


def _tagged(queries: dict[str, TrueQuery]) -> dict[str, TrueQuery]:
    for tq in queries.values():
        tq.tags = {"transform": {"not recorded"}, "speed": {"not recorded"}, "shot": {"not recorded"}}
    return queries


def _no_split(path: Path, split: str | None, fmt: str) -> None:
    if split is not None:
        raise VcopyError(f"{path}: a {fmt} file has no splits (--split is for vcopy's ground truth)")
