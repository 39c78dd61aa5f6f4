"""Make the fine-grained captioned video set (deterministic): real objects (photos that ship in
installed packages) in colours, counts, motions and places, each scene followed by three near misses
(another colour; another motion or place; another number), two captions per video in captions.jsonl.

    python examples/make_captioned.py OUT [--groups 110] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vcopy.synth.captioned import make_fine_grained_set


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--groups", type=int, default=110, help="scenes, each with three near misses")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    captions = make_fine_grained_set(args.out, args.groups, args.seed)
    n = sum(1 for _ in captions.open())
    print(f"{captions}: {n} captions of {n // 2} videos in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
