"""Fit the descriptor's learned whitening on the benchmark's train split (copy pairs known exactly).

    python examples/fit_whitening.py BENCH_DIR [--dim 128] [--out weights/whitening-v2.npz]

BENCH_DIR is a benchmark made by examples/make_benchmark.py (default size); only its train split
is used, so the test split stays held out.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from vcopy.features import EncodedVideo, encode_videos
from vcopy.features.efficientnet import EfficientNetDescriptor
from vcopy.groundtruth import GROUND_TRUTH, vcopy_record
from vcopy.synth.benchmark import copied_frame_pairs
from vcopy.video import SamplingConfig
from vcopy.whitening import fit_learned_whitening


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shrinkage", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path("weights/whitening-v2.npz"))
    args = parser.parse_args()
    truth = vcopy_record(args.bench_dir / GROUND_TRUTH)
    videos = [v for v in truth["references"] + truth["queries"] if v["split"] == args.split]
    descriptor = EfficientNetDescriptor(whitening=None)
    encoded: dict[str, EncodedVideo] = {}
    by_path = {str(args.bench_dir / v["path"]): v["path"] for v in videos}
    for item in encode_videos(
        [args.bench_dir / v["path"] for v in videos],
        descriptor,
        SamplingConfig(frame_size=descriptor.frame_size),
    ):
        if isinstance(item, EncodedVideo):
            encoded[by_path[str(item.path)]] = item
    anchors, positives = [], []
    for q in (v for v in videos if "copies" in v):
        for copy in q["copies"]:
            query, ref = encoded[q["path"]], encoded[copy["reference"]]
            for i, j in copied_frame_pairs(copy, query.timestamps_s, ref.timestamps_s):
                anchors.append(query.vectors[i])
                positives.append(ref.vectors[j])
    frames = np.concatenate([encoded[v["path"]].vectors for v in videos if "copies" not in v])
    whitening = fit_learned_whitening(
        np.array(anchors),
        np.array(positives),
        frames,
        args.dim,
        args.shrinkage,
        provenance={
            "raw_descriptor": descriptor.name,
            "data": "vcopy benchmark (examples/make_benchmark.py, size {size}, seed {seed}), split ".format(
                **truth["generator"]
            )
            + args.split,
            "script": "examples/fit_whitening.py",
            "date": datetime.date.today().isoformat(),
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    whitening.save(args.out)
    print(f"{args.out}: {whitening.provenance}")


if __name__ == "__main__":
    main()
