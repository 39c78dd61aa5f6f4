"""Time every localizer on maps of the sizes the VCSL project reports for its numba DP.

    python examples/localizer_timing.py

Maps are background contrast (about -0.1) with three copied bands; times are medians of repeated
calls after a warm-up call (numba compiles on first use and caches the result on disk).
VCSL's numba DP on a 2-core machine: about 1.4 ms (60x120), 40 ms (300x900), 175 ms (1200x1800).
"""

from __future__ import annotations

import time

import numpy as np

from vcopy.localize import LOCALIZERS, create_localizer

SIZES = ((60, 120), (300, 900), (1200, 1800))
VCSL_DP_MS = {(60, 120): 1.4, (300, 900): 40.0, (1200, 1800): 175.0}


def contrast_map(rng: np.random.Generator, n_query: int, n_ref: int) -> np.ndarray:
    sim = rng.normal(-0.1, 0.08, (n_query, n_ref)).astype(np.float32)
    for _ in range(3):
        q0, r0 = int(rng.integers(0, n_query // 2)), int(rng.integers(0, n_ref // 2))
        for t in range(min(n_query - q0, n_ref - r0, max(5, n_query // 4))):
            sim[q0 + t, r0 + t] = 0.6 + rng.normal(0, 0.1)
    return sim


def main() -> None:
    rng = np.random.default_rng(0)
    maps = {size: contrast_map(rng, *size) for size in SIZES}
    print("| localizer | " + " | ".join(f"{q}x{r} (ms)" for q, r in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    print("| VCSL numba DP (reference) | " + " | ".join(f"{VCSL_DP_MS[s]:g}" for s in SIZES) + " |")
    for name in LOCALIZERS:
        localizer = create_localizer(name)
        cells = []
        for (n_query, n_ref), sim in maps.items():
            q_times, r_times = np.arange(n_query, dtype=float), np.arange(n_ref, dtype=float)
            localizer(sim, q_times, r_times)
            runs = []
            for _ in range(7 if n_query < 1000 else 3):
                started = time.perf_counter()
                localizer(sim, q_times, r_times)
                runs.append(time.perf_counter() - started)
            cells.append(f"{np.median(runs) * 1000:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
