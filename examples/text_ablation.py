"""Ablation of the text-to-video training losses on the fine-grained captioned set.

    python examples/text_ablation.py WORK [--seeds 3] [--epochs 30] [--groups 110] [--misses]

Makes the set in WORK/captioned (examples/make_captioned.py) and indexes it into WORK/library
once, then trains every variant with each seed (same held-out videos for all) and prints
text->video R@1/R@5/R@10/R@sum and median rank on the held-out split as mean ± standard
deviation over seeds. Reported numbers are the last epoch's (no epoch is picked on the held-out
split). Zero-shot is the untrained model (exactly the zero-shot search of `vcopy search-text`).
With --misses it also says, for each variant, what the wrong top-1 videos differ in (which of the
scene's object, colour, count, motion and place), as a percentage of the held-out captions.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from text_losses import VariantConfig, VariantTrainer

from vcopy.synth.captioned import Scene, fine_grained_scenes, make_fine_grained_set
from vcopy.text.model import ModelConfig, VideoTextModel, load_model
from vcopy.train.text import CaptionedData, evaluate, prepare_data, retrieval_scores, train_text

NONE = {"negnce": False, "dmae": False, "tpm": False, "hscl": False}
ALL = {"negnce": True, "dmae": True, "tpm": True, "hscl": True}
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("InfoNCE", NONE),
    ("InfoNCE + NegNCE", {**NONE, "negnce": True}),
    ("InfoNCE + DMAE", {**NONE, "dmae": True}),
    ("InfoNCE + TPM-CL", {**NONE, "tpm": True}),
    ("InfoNCE + HSCL", {**NONE, "hscl": True}),
    ("all (mean pooling)", ALL),
    ("InfoNCE, temporal transformer", {**NONE, "temporal": True}),
    ("all, temporal transformer", {**ALL, "temporal": True}),
    ("InfoNCE, no layouts", {**NONE, "layouts": False}),
    ("all, no layouts", {**ALL, "layouts": False}),
]
COLUMNS = ("r1", "r5", "r10", "rsum", "median_rank")
SCENE_ATTRIBUTES = ("noun", "colour", "count", "motion", "place")
MISS_NAMES = {  # which attributes differ -> what the table calls it
    "place": "where it stands",
    "motion": "which way it moves",
    "motion+place": "still or moving",
    "count": "count",
    "colour": "colour",
}


def last_epoch_model(run: Path) -> VideoTextModel:
    """The model as the run's last epoch left it (``last.pt``; ``text-model.pt`` is the best)."""
    model, _ = load_model(run / "text-model.pt")
    model.load_state_dict(torch.load(run / "last.pt", weights_only=True)["model"])
    return model


def top1_misses(model: VideoTextModel, data: CaptionedData, scenes: list[Scene]) -> Counter[str]:
    """For each held-out caption whose top video is wrong: which scene attributes differ
    between its video and the top one (videos are named sceneNNNN after their scene)."""
    scores, positive = retrieval_scores(model, data, data.held_out_videos)
    scene = [scenes[int(Path(data.paths[v]).stem.removeprefix("scene"))] for v in data.held_out_videos]
    misses: Counter[str] = Counter()
    for right, top in zip(positive, scores.argmax(1), strict=True):
        if top != right:
            a, b = scene[right], scene[top]
            differ = [k for k in SCENE_ATTRIBUTES if getattr(a, k) != getattr(b, k)]
            misses["+".join(differ)] += 1
    return misses


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
    parser.add_argument("--misses", action="store_true", help="what the wrong top-1 videos differ in")
    args = parser.parse_args()
    started = time.perf_counter()
    videos = args.work / "captioned"
    captions = make_fine_grained_set(videos, args.groups)
    base = VariantConfig(
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
    scenes = fine_grained_scenes(args.groups)
    miss_rows: list[tuple[str, Counter[str]]] = []
    chosen = set(range(1, len(VARIANTS) + 1)) if not args.only else {int(v) for v in args.only.split(",")}
    for number, (name, overrides) in enumerate(VARIANTS, 1):
        if number not in chosen:
            continue
        results, seconds, misses = [], [], Counter[str]()
        for seed in range(args.seeds):
            config = replace(base, seed=seed, **overrides)
            out = (
                args.work
                / "runs"
                / f"{name.replace(' ', '_').replace(',', '').replace('+', 'plus')}-seed{seed}"
            )
            t = time.perf_counter()
            train_text(data, out, config, {"descriptor": prepared.descriptor}, trainer_class=VariantTrainer)
            seconds.append(time.perf_counter() - t)
            last = json.loads((out / "train-log.jsonl").read_text().splitlines()[-1])
            results.append(last["validation"])
            if args.misses:
                misses += top1_misses(last_epoch_model(out), data, scenes)
        rows.append((name, results, float(np.mean(seconds))))
        miss_rows.append((name, misses))
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
    if args.misses:
        queries = args.seeds * zero_shot.queries
        print("\nWrong top-1 videos by what differs from the right one")
        print("(% of held-out captions, all seeds):\n")
        print("| variant | " + " | ".join(MISS_NAMES.values()) + " | anything else |")
        print("|---|" + "---|" * (len(MISS_NAMES) + 1))
        for name, misses in miss_rows:
            counts = [misses[k] for k in MISS_NAMES] + [misses.total() - sum(misses[k] for k in MISS_NAMES)]
            print(f"| {name} | " + " | ".join(f"{100 * c / queries:.1f}" for c in counts) + " |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
