"""Make a descriptor's background set: its vectors of unrelated frames, against which query frames
are normalised (vcopy.similarity).

    python examples/fit_background.py BENCH_DIR [--descriptor sscd_distilled] [--out FILE.npz]

BENCH_DIR is a benchmark made by examples/make_benchmark.py (default size); only the reference
videos of its train split are used (as for the EfficientNet descriptor's whitening), so the test
split stays held out.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from vcopy.features import EncodedVideo, encode_videos
from vcopy.features.sscd import SscdDescriptor
from vcopy.groundtruth import GROUND_TRUTH, split_paths, vcopy_record
from vcopy.video import SamplingConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench_dir", type=Path)
    parser.add_argument("--descriptor", choices=["sscd", "sscd_distilled"], default="sscd_distilled")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(f"weights/background-{args.descriptor}.npz")
    gt_path = args.bench_dir / GROUND_TRUTH
    truth = vcopy_record(gt_path)
    descriptor = SscdDescriptor(args.descriptor, background=None)
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    frames = [
        item.vectors
        for item in encode_videos(split_paths(gt_path, args.split, "references"), descriptor, sampling)
        if isinstance(item, EncodedVideo)
    ]
    background = np.concatenate(frames).astype(np.float16)
    provenance = {
        "descriptor": descriptor.name,
        "data": "vcopy benchmark (examples/make_benchmark.py, size {size}, seed {seed})".format(
            **truth["generator"]
        )
        + f", references of split {args.split}",
        "frames": len(background),
        "sample_fps": sampling.sample_fps,
        "script": "examples/fit_background.py",
        "date": datetime.date.today().isoformat(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, background=background, provenance=json.dumps(provenance))
    tmp.replace(out)
    print(f"{out}: {provenance}")


if __name__ == "__main__":
    main()
