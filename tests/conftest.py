"""Small real videos, made once per test session, and a helper to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from vcopy import processes, synth
from vcopy.synth import benchmark

COPY_QUERY_S = (6.0, 16.0)  # where the copied segment sits in the query
COPY_REFERENCE_S = (6.0, 16.0)  # where it comes from in reference r1


@dataclass(frozen=True)
class Corpus:
    refs: Path  # folder of reference videos
    copy: Path  # unrelated 6 s + cropped, colour-shifted, re-encoded r1[6 s, 16 s] + unrelated 5 s
    unrelated: Path
    copied_reference: Path


def run_vcopy(*args: str | Path, check_json: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed CLI in a fresh process, as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "vcopy", *map(str, args)], capture_output=True, text=True, env=env, **kwargs
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check_json:
        json.loads(proc.stdout)
    return proc


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("corpus")
    refs = root / "refs"
    china, flower = load_sample_images().images
    r0 = synth.procedural_video(10, 20)
    r1 = synth.concat(
        [synth.procedural_video(11, 12), synth.photo_pan(china, 12, 4), synth.procedural_video(13, 8)]
    )
    r2 = synth.concat([synth.photo_pan(flower, 20, 4), synth.procedural_video(21, 16)])
    for name, clip in [("r0", r0), ("r1", r1), ("r2", r2)]:
        synth.write_video(refs / f"{name}.mp4", clip)
    copied = synth.colour_shift(
        synth.crop(r1.cut(*COPY_REFERENCE_S), 0.8), brightness=0.08, contrast=1.15, saturation=0.7
    )
    query = synth.concat([synth.procedural_video(90, 6), copied, synth.procedural_video(91, 5)])
    copy = synth.write_video(root / "suspects" / "copy.mp4", query, crf=30, size=(192, 256))
    unrelated = synth.write_video(root / "suspects" / "unrelated.mp4", synth.procedural_video(92, 15), crf=26)
    return Corpus(refs=refs, copy=copy, unrelated=unrelated, copied_reference=(refs / "r1.mp4").resolve())


@pytest.fixture(scope="session")
def library(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    lib = tmp_path_factory.mktemp("lib") / "library"
    proc = run_vcopy("index", corpus.refs, "--library", lib)
    assert proc.returncode == 0, proc.stderr
    return lib


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children, ...), from /proc."""
    return list(processes.descendants(pid))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def remux(
    source: Path, destination: Path, container_format: str | None = None, options: dict | None = None
) -> Path:
    """A pure remux (``ffmpeg -c copy``): the same video packets in another container."""
    import av

    with (
        av.open(str(source)) as src,
        av.open(str(destination), "w", format=container_format, options=options or {}) as dst,
    ):
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return destination


def one_frame_clip() -> synth.Clip:
    return synth.Clip(np.full((1, 120, 160, 3), 128, dtype=np.uint8), 25)


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small benchmark dataset (ground-truth path)."""
    return benchmark.generate(tmp_path_factory.mktemp("bench"), "small", seed=0)
