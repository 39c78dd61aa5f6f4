"""Time every localizer on maps of the sizes the VCSL project reports for its numba DP, and show
SPD's speed/accuracy trade-off across detector sizes.

    python examples/localizer_timing.py [--spd-weights RUN/spd.pt ...]

Maps are background contrast (about -0.1) with three copied bands. Each localizer gets batches of
10 maps of one size (a query's candidates), as `vcopy query` runs it; the time per map is the
median over repeated batches after a warm-up batch (numba compiles on first use and caches the
result on disk). Extra SPD weights (e.g. other input sizes) get a row each, with the validation
segment F1 recorded in the weights. VCSL's numba DP on a 2-core machine: about 1.4 ms (60x120),
40 ms (300x900), 175 ms (1200x1800).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vcopy.localize import LOCALIZERS, Localizer, create_localizer
from vcopy.localize.spd import SimilarityPatternDetector

SIZES = ((60, 120), (300, 900), (1200, 1800))
VCSL_DP_MS = {(60, 120): 1.4, (300, 900): 40.0, (1200, 1800): 175.0}
BATCH = 10


def contrast_map(rng: np.random.Generator, n_query: int, n_ref: int) -> np.ndarray:
    sim = rng.normal(-0.1, 0.08, (n_query, n_ref)).astype(np.float32)
    for _ in range(3):
        q0, r0 = int(rng.integers(0, n_query // 2)), int(rng.integers(0, n_ref // 2))
        for t in range(min(n_query - q0, n_ref - r0, max(5, n_query // 4))):
            sim[q0 + t, r0 + t] = 0.6 + rng.normal(0, 0.1)
    return sim


def ms_per_map(localizer: Localizer, maps: list[np.ndarray]) -> float:
    n_query, n_ref = maps[0].shape
    batch = [(m, np.arange(n_query, dtype=float), np.arange(n_ref, dtype=float)) for m in maps]
    localizer.localize_batch(batch)
    runs = []
    for _ in range(5 if n_query < 1000 else 3):
        started = time.perf_counter()
        localizer.localize_batch(batch)
        runs.append((time.perf_counter() - started) / len(batch))
    return float(np.median(runs)) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spd-weights", nargs="*", type=Path, default=[], help="more SPD weights to compare")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    maps = {size: [contrast_map(rng, *size) for _ in range(BATCH)] for size in SIZES}
    rows: list[tuple[str, Localizer, str]] = [(n, create_localizer(n), "") for n in LOCALIZERS]
    for path in args.spd_weights:
        spd = SimilarityPatternDetector(weights_path=path)
        rows.append((f"spd {path} ({spd.input_size} px)", spd, f"{spd.validation_f1:.3f}"))
    print(f"torch threads: {torch.get_num_threads()}; ms per map, batches of {BATCH} maps\n")
    print("| localizer | validation segment F1 | " + " | ".join(f"{q}x{r}" for q, r in SIZES) + " |")
    print("|---|---|" + "---|" * len(SIZES))
    print("| VCSL numba DP (reference) | | " + " | ".join(f"{VCSL_DP_MS[s]:g}" for s in SIZES) + " |")
    for name, localizer, f1 in rows:
        cells = [f"{ms_per_map(localizer, maps[size]):.2f}" for size in SIZES]
        print(f"| {name} | {f1} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
