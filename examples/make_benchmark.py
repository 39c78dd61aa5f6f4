"""Generate the copy-detection benchmark (videos + groundtruth.json).

    python examples/make_benchmark.py OUT_DIR [--small | --catalogue] [--seed N]

--small finishes in well under 2 minutes (16 test and 8 train queries); the default (generator
version 2) holds 100 test references, 300 test queries, a disjoint train split, and the long-form
split (10-60 minute references, 1-10 minute queries); --catalogue (version 3, vcopy.synth.shots)
holds catalogue-like footage: train (30 references, 120 queries), test (50, 150, held-out photos)
and long (10-20 minute references). The same function is importable:
``vcopy.synth.benchmark.generate(out_dir, size, seed)``. An existing benchmark with the same
settings is reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vcopy.synth.benchmark import generate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="the small benchmark used by the tests")
    parser.add_argument(
        "--catalogue",
        action="store_true",
        help="generator version 3: catalogue-like shots (train, test, long)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args()
    started = time.perf_counter()
    size = "small" if args.small else "catalogue" if args.catalogue else "default"
    gt = generate(args.out_dir, size, args.seed, args.workers)
    print(f"{gt} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
