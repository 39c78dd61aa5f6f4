"""Ablation of the text-to-video training losses on the fine-grained captioned set.

    python examples/text_ablation.py WORK [--seeds 3] [--epochs 30] [--groups 110]

Makes the set in WORK/captioned (examples/make_captioned.py) and indexes it into WORK/library
once, then trains every variant with each seed (same held-out videos for all) and prints
text->video R@1/R@5/R@10/R@sum and median rank on the held-out split as mean ± standard
deviation over seeds. Reported numbers are the last epoch's (no epoch is picked on the held-out
split). Zero-shot is the untrained model (exactly the zero-shot search of `vcopy search-text`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vcopy.synth.captioned import make_fine_grained_set
from vcopy.text.model import ModelConfig, VideoTextModel
from vcopy.text.train import TextTrainConfig, evaluate, prepare_data, train_text

NONE = {"negnce": False, "dmae": False, "tpm": False, "hscl": False}
ALL = {"negnce": True, "dmae": True, "tpm": True, "hscl": True}
VARIANTS: list[tuple[str, dict[str, bool]]] = [
    ("InfoNCE", NONE),
    ("InfoNCE + NegNCE", {**NONE, "negnce": True}),
    ("InfoNCE + DMAE", {**NONE, "dmae": True}),
    ("InfoNCE + TPM-CL", {**NONE, "tpm": True}),
    ("InfoNCE + HSCL", {**NONE, "hscl": True}),
    ("all (mean pooling)", ALL),
    ("InfoNCE, temporal transformer", {**NONE, "temporal": True}),
    ("all, temporal transformer", {**ALL, "temporal": True}),
]
COLUMNS = ("r1", "r5", "r10", "rsum", "median_rank")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--groups", type=int, default=110, help="scenes, each with three near misses")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.2,
        help="share of the videos held out (the rest trains)",
    )
    parser.add_argument("--neighbour-batches", action="store_true", help="caption-neighbour batches")
    parser.add_argument("--only", help="comma-separated variant numbers to run (1 = InfoNCE; default all)")
    args = parser.parse_args()
    started = time.perf_counter()
    videos = args.work / "captioned"
    captions = make_fine_grained_set(videos, args.groups)
    base = TextTrainConfig(
        epochs=args.epochs,
        validation_fraction=args.validation_fraction,
        caption_neighbour_batches=args.neighbour_batches,
    )
    prepared = prepare_data(captions, videos, args.work / "library", base)
    data = prepared.data
    print(
        f"{len(data.paths)} videos ({len(data.train_videos)} train, {len(data.held_out_videos)} held out), "
        f"{len(data.caption_texts)} captions; {args.seeds} seeds x {args.epochs} epochs"
    )
    zero_shot = evaluate(
        VideoTextModel(ModelConfig(descriptor_dim=data.descriptors.shape[-1])), data, data.held_out_videos
    )
    rows = [("zero-shot (no training)", [{**vars(zero_shot), "rsum": zero_shot.rsum}], 0.0)]
    chosen = set(range(1, len(VARIANTS) + 1)) if not args.only else {int(v) for v in args.only.split(",")}
    for number, (name, overrides) in enumerate(VARIANTS, 1):
        if number not in chosen:
            continue
        results, seconds = [], []
        for seed in range(args.seeds):
            config = replace(base, seed=seed, **overrides)
            out = (
                args.work
                / "runs"
                / f"{name.replace(' ', '_').replace(',', '').replace('+', 'plus')}-seed{seed}"
            )
            t = time.perf_counter()
            train_text(data, out, config, {"descriptor": prepared.descriptor})
            seconds.append(time.perf_counter() - t)
            last = json.loads((out / "train-log.jsonl").read_text().splitlines()[-1])
            results.append(last["validation"])
        rows.append((name, results, float(np.mean(seconds))))
        print(f"  {name}: done ({np.mean(seconds):.0f} s per run)", flush=True)
    print()
    print("| variant | runs | R@1 | R@5 | R@10 | R@sum | median rank | s/run |")
    print("|---|---|---|---|---|---|---|---|")
    for name, results, secs in rows:
        cells = []
        for key in COLUMNS:
            values = np.array([r[key] for r in results])
            cells.append(f"{values.mean():.1f}" + (f" ± {values.std(ddof=1):.1f}" if len(values) > 1 else ""))
        print(f"| {name} | {len(results)} | {' | '.join(cells)} | {secs:.0f} |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
