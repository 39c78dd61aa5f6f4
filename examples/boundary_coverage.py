"""How often the true ends of copies fall inside the ranges vcopy states for them.

    python examples/boundary_coverage.py DATASET WORK [--split train|test]

DATASET is a folder made by examples/make_benchmark.py. The split's references are indexed into
WORK/library-SPLIT (reused when done), each of its queries is checked with the default pipeline,
and every reported segment that overlaps a true copy of the same (query, reference) pair (the true
copy it overlaps most) has its four ends checked: is the true end inside the stated range? The
ranges are computed for several margins and tie thresholds (``MARGIN_STEPS`` and
``TIE_CONTRAST`` in ``vcopy.localize.base`` are the ones shipped, fitted on the train split),
beside the reported end alone within one sampling step, the median range width and how often a
range was widened by a flat map.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from vcopy.features import EncodedVideo, encode_videos
from vcopy.groundtruth import GROUND_TRUTH, load_ground_truth
from vcopy.library import Library
from vcopy.localize.base import MARGIN_STEPS, TIE_CONTRAST, boundary_ranges
from vcopy.query import CopyFinder

TIES = (0.0, 0.05, 0.1, 0.2, 0.3)
MARGINS = (0.5, 1.0, 1.5)  # sampling steps
ENDS = ("query_start", "query_end", "reference_start", "reference_end")


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    truth = load_ground_truth(args.dataset / GROUND_TRUTH, args.split)
    library_path = args.work / f"library-{args.split}"
    refs = args.dataset / args.split / "refs"
    subprocess.run(
        [sys.executable, "-m", "vcopy", "-q", "index", refs, "--library", library_path], check=True
    )
    queries = sorted((args.dataset / args.split / "queries").glob("*.mp4"))
    settings = [(tie, margin) for margin in MARGINS for tie in TIES]
    inside: dict[tuple[float, float], list[bool]] = {s: [] for s in settings}
    widths: dict[tuple[float, float], list[float]] = {s: [] for s in settings}
    point: list[bool] = []
    residuals: list[tuple[str, float, float]] = []  # (end, segment score, |reported - true| s)
    with Library.open(library_path) as library:
        finder = CopyFinder(library)
        step_s = 1.0 / finder.sampling.sample_fps
        for video in encode_videos(queries, finder.descriptor, finder.sampling):
            if not isinstance(video, EncodedVideo) or video.stamp.sha256 not in truth:
                continue
            maps = finder.similarity_maps(video)
            result = finder.localize(video, maps)
            by_reference = {m.reference_id: m for m in maps}
            for match in result.matches:
                boxes = truth[video.stamp.sha256].boxes.get(match.reference.sha256, [])
                contrast = by_reference[match.reference.id]
                for segment in match.segments:
                    q = (segment.query_start_s, segment.query_end_s)
                    r = (segment.reference_start_s, segment.reference_end_s)
                    overlaps = [(_overlap(q, b[:2]) * _overlap(r, b[2:]), b) for b in boxes]
                    overlaps = [o for o in overlaps if o[0] > 0]
                    if not overlaps:
                        continue
                    box = max(overlaps)[1]
                    reported = (*q, *r)
                    residuals += [
                        (end, segment.score, abs(at - true_s))
                        for end, at, true_s in zip(ENDS, reported, box, strict=True)
                    ]
                    point += [
                        abs(at - true_s) <= step_s + 1e-6 for at, true_s in zip(reported, box, strict=True)
                    ]
                    for tie, margin in settings:
                        ranges = boundary_ranges(
                            contrast.contrast,
                            contrast.query_timestamps_s,
                            contrast.reference_timestamps_s,
                            segment,
                            tie,
                            margin,
                        )
                        spans = (
                            ranges.query_start_s,
                            ranges.query_end_s,
                            ranges.reference_start_s,
                            ranges.reference_end_s,
                        )
                        for (lo, hi), true_s in zip(spans, box, strict=True):
                            inside[tie, margin].append(lo - 1e-6 <= true_s <= hi + 1e-6)
                            widths[tie, margin].append(hi - lo)
    n = len(point)
    if n == 0:
        raise SystemExit("no reported segment overlaps a true copy")
    print(f"split {args.split}: {n // 4} segments matched to a true copy, {n} ends")
    print(f"reported end within one sampling step of the true end: {np.mean(point):.3f}\n")
    _conformal(args.work, args.split, residuals)
    print("| margin (steps) | tie (contrast) | true end inside the range | median width (s) | widened ends |")
    print("|---|---|---|---|---|")
    for tie, margin in settings:
        mark = " (shipped)" if (tie, margin) == (TIE_CONTRAST, MARGIN_STEPS) else ""
        width = np.array(widths[tie, margin])
        widened = np.mean(width > 2 * margin * step_s + 1e-6)
        row = f"| {margin:g} | {tie:g}{mark} | {np.mean(inside[tie, margin]):.3f} | {np.median(width):.1f}"
        print(f"{row} | {widened:.1%} |")


def _conformal(work: Path, split: str, residuals: list[tuple[str, float, float]]) -> None:
    """The other approach, measured: a margin per end and score band that is the 90th percentile
    of the train split's errors (split conformal), applied to this split's reported ends."""
    (work / f"residuals-{split}.json").write_text(json.dumps(residuals))
    train_file = work / "residuals-train.json"
    if split == "train" or not train_file.is_file():
        return
    train = json.loads(train_file.read_text())
    bands = (0.0, 0.5, 0.75, 1.01)  # segment score

    def band(score: float) -> int:
        return int(np.searchsorted(bands, score, side="right")) - 1

    margins = {}
    for end in ENDS:
        for b in range(len(bands) - 1):
            errors = [e for k, sc, e in train if k == end and band(sc) == b]
            everyone = [e for k, _, e in train if k == end]
            margins[end, b] = float(np.quantile(errors if len(errors) >= 20 else everyone, 0.9))
    covered = [error <= margins[end, band(score)] + 1e-6 for end, score, error in residuals]
    widths = [2 * margins[end, band(score)] for end, score, _ in residuals]
    print(
        f"\nsplit conformal (90th percentile of train errors per end and score band): true end inside "
        f"{np.mean(covered):.3f}, median width {np.median(widths):.1f} s"
    )


if __name__ == "__main__":
    main()
