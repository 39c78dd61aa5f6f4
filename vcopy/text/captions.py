"""Caption files in the formats people already have, and the videos they name.

- MSR-VTT JSON: ``{"videos": [{"video_id": ...}], "sentences": [{"video_id": ..., "caption": ...}]}``
  (``videos`` may be absent; the captions name the videos);
- CSV with a header, one caption per row: the video column is the first of ``video``, ``videoid``,
  ``video_id``, ``path``, ``file``, ``filename``; the caption column the first of ``caption``,
  ``name`` (WebVid), ``text``, ``sentence``, ``description``;
- JSONL: ``{"video": ..., "caption": ...}`` per line.

A video may have several captions. A video id names a file in the videos folder: its relative
path, or its name without extension (``video7`` -> ``video7.mp4``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vcopy.errors import VcopyError
from vcopy.video import find_videos

VIDEO_COLUMNS = ("video", "videoid", "video_id", "path", "file", "filename")
CAPTION_COLUMNS = ("caption", "name", "text", "sentence", "description")


@dataclass(frozen=True)
class Caption:
    video: str  # the video's id as the caption file names it
    text: str


def read_captions(path: Path) -> list[Caption]:
    """Every (video, caption) pair of a caption file; the format is told by its extension."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VcopyError(f"{path}: cannot read the captions ({exc.__class__.__name__}: {exc})") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        captions = _msrvtt(path, raw)
    elif suffix == ".jsonl":
        captions = _jsonl(path, raw)
    elif suffix in (".csv", ".tsv"):
        captions = _csv(path, raw, "\t" if suffix == ".tsv" else ",")
    else:
        raise VcopyError(f"{path}: unknown caption format (expected .json MSR-VTT, .csv/.tsv or .jsonl)")
    captions = [c for c in captions if c.text.strip()]
    if not captions:
        raise VcopyError(f"{path}: no captions")
    return captions


def _msrvtt(path: Path, raw: str) -> list[Caption]:
    try:
        data = json.loads(raw)
        return [Caption(str(s["video_id"]), str(s["caption"])) for s in data["sentences"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise VcopyError(
            f"{path}: not MSR-VTT JSON (expected sentences with video_id and caption: {exc})"
        ) from exc


def _jsonl(path: Path, raw: str) -> list[Caption]:
    captions = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            captions.append(Caption(str(record["video"]), str(record["caption"])))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise VcopyError(f'{path}:{number}: expected {{"video": ..., "caption": ...}} ({exc})') from exc
    return captions


def _csv(path: Path, raw: str, delimiter: str) -> list[Caption]:
    reader = csv.DictReader(raw.splitlines(), delimiter=delimiter)
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    video = next((columns[c] for c in VIDEO_COLUMNS if c in columns), None)
    caption = next((columns[c] for c in CAPTION_COLUMNS if c in columns), None)
    if video is None or caption is None:
        raise VcopyError(
            f"{path}: no {'video' if video is None else 'caption'} column in the header "
            f"(video: one of {', '.join(VIDEO_COLUMNS)}; caption: one of {', '.join(CAPTION_COLUMNS)})"
        )
    return [Caption(row[video] or "", row[caption] or "") for row in reader]


def resolve_videos(captions: Iterable[Caption], videos_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """The file of each captioned video id, and the ids with no file in ``videos_dir``."""
    files = find_videos([videos_dir])
    by_relative = {p.relative_to(videos_dir).as_posix(): p for p in files}
    by_stem: dict[str, Path] = {}
    for p in files:
        by_stem.setdefault(p.stem, p)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for video in dict.fromkeys(c.video for c in captions):
        path = by_relative.get(video) or by_stem.get(video) or by_stem.get(Path(video).stem)
        if path is None:
            missing.append(video)
        else:
            found[video] = path
    return found, missing
