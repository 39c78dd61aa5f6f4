"""Index throughput at 480p: video seconds indexed per wall second, per descriptor.

    python examples/index_throughput.py WORK_DIR [--descriptors A,B] [--videos 8] [--seconds 60]

Writes WORK_DIR/videos (854 x 480, 25 frames/s, x264; made once and reused), then indexes them into
a fresh library per descriptor (text features included, as `vcopy index` does) and prints a table;
"without text" is the same decoding and description with no text features (what text search costs
at index time is the difference).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from vcopy import synth
from vcopy.features import DESCRIPTORS, EncodedVideo, create_descriptor, encode_videos, video_duration_s
from vcopy.indexing import index_videos
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.video import SamplingConfig

SIZE = (480, 854)  # height, width
FPS = 25.0


def make_videos(folder: Path, n: int, seconds: float) -> list[Path]:
    """``n`` videos of procedural shots, made once."""
    paths = []
    for i in range(n):
        path = folder / f"v{i:03d}.mp4"
        if not path.is_file():
            shots = [synth.procedural_shot(1000 * i + k, 4.0, FPS, SIZE) for k in range(round(seconds / 4))]
            synth.write_video(path, synth.concat(shots))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--descriptors", default=",".join(DESCRIPTORS))
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    videos = make_videos(args.work_dir / "videos", args.videos, args.seconds)
    print(f"{len(videos)} videos of {args.seconds:g} s at {SIZE[1]}x{SIZE[0]}, {FPS:g} frames/s\n")
    print("| descriptor | video s per wall s | wall s | without text: video s per wall s |")
    print("|---|---|---|---|")
    for name in args.descriptors.split(","):
        root = args.work_dir / f"library-{name}"
        shutil.rmtree(root, ignore_errors=True)
        started = time.perf_counter()
        descriptor = create_descriptor(name)
        sampling = SamplingConfig(frame_size=descriptor.frame_size)
        with Library.open(root, write=True, spec=PipelineSpec.of(descriptor, sampling)) as library:
            summary = index_videos(library, videos, descriptor)
        wall = time.perf_counter() - started
        started = time.perf_counter()
        described = [v for v in encode_videos(videos, descriptor, sampling) if isinstance(v, EncodedVideo)]
        bare = sum(video_duration_s(v, sampling) for v in described) / (time.perf_counter() - started)
        print(f"| {name} | {summary.video_seconds / wall:.1f} | {wall:.1f} | {bare:.1f} |")


if __name__ == "__main__":
    main()
