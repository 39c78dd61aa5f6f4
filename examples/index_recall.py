"""Candidate recall of an approximate index against exact search, on the very same queries: the
share of the segments found with exact search (reports in EXACT_DIR) that are found again with the
approximate index (reports in APPROX_DIR): same query, same reference, segments overlapping.

    python examples/index_recall.py EXACT_DIR APPROX_DIR [--localizer spd]

Both folders hold reports named alike (examples/benchmark.py writes WORK/reports/<split>-<localizer>.json;
run it once with the exact index, copy the folder, run it again with --keep-library --index-spec SPEC).
Matches are compared, and so are all scored pairs (matches and those below the threshold).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

Key = tuple[str, str]
Span = tuple[float, float, float, float]


def segments(report: dict[str, Any], with_below: bool) -> dict[Key, list[Span]]:
    found: dict[Key, list[Span]] = {}
    for query in report["queries"]:
        pairs = query["matches"] + (query["below_threshold"] if with_below else [])
        for pair in pairs:
            found[(query["path"], pair["reference"]["path"])] = [
                (s["query_start"], s["query_end"], s["reference_start"], s["reference_end"])
                for s in pair["segments"]
            ]
    return found


def overlaps(a: Span, b: Span) -> bool:
    return min(a[1], b[1]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[2], b[2])


def recall(exact: dict[Key, list[Span]], approx: dict[Key, list[Span]]) -> tuple[int, int]:
    total = sum(len(v) for v in exact.values())
    kept = sum(
        any(overlaps(s, t) for t in approx.get(key, [])) for key, spans in exact.items() for s in spans
    )
    return kept, total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("exact_dir", type=Path)
    parser.add_argument("approx_dir", type=Path)
    parser.add_argument("--localizer", default="spd", help="compare this localizer's reports")
    args = parser.parse_args()
    print("| report | matched segments found again | all scored segments found again |")
    print("|---|---|---|")
    for path in sorted(args.exact_dir.glob(f"*-{args.localizer}.json")):
        exact, approx = json.loads(path.read_text()), json.loads((args.approx_dir / path.name).read_text())
        cells = []
        for with_below in (False, True):
            kept, total = recall(segments(exact, with_below), segments(approx, with_below))
            cells.append(f"{kept}/{total} = {kept / max(total, 1):.3f}")
        print(f"| {path.stem} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
