"""Container-exact timestamps: the frame vcopy says is at t seconds is the frame a player (and
ffmpeg's ``-ss t``) shows at t, in every common container. Each test video burns its frame number
into the picture as a 4 x 4 grid of black and white cells, is written with real encoders and
remuxed into the other containers, and is decoded through vcopy's own decoding path."""

from __future__ import annotations

import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import remux

from vcopy.video import (
    FrameChunk,
    SamplingConfig,
    VideoEnd,
    VideoFailed,
    VideoStart,
    decode_videos,
    find_videos,
)

FPS, SECONDS, HEIGHT, WIDTH, GRID = 25, 8, 96, 128, 4
Timing = Callable[[int], float]  # frame number -> its time in the source, seconds


def _uniform(k: int) -> float:
    return k / FPS


def _variable(k: int) -> float:  # 10 frames/s for 4 s, then 40 frames/s
    return k / 10 if k < 40 else 4 + (k - 40) / 40


def _coded_frame(k: int) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    cell_h, cell_w = HEIGHT // GRID, WIDTH // GRID
    for bit in range(GRID * GRID):
        row, col = divmod(bit, GRID)
        if (k >> bit) & 1:
            image[row * cell_h : (row + 1) * cell_h, col * cell_w : (col + 1) * cell_w] = 255
    return image


def _read_code(image: np.ndarray) -> int:
    cell_h, cell_w = image.shape[0] / GRID, image.shape[1] / GRID
    k = 0
    for bit in range(GRID * GRID):
        row, col = divmod(bit, GRID)
        centre = image[
            int((row + 0.3) * cell_h) : int((row + 0.7) * cell_h),
            int((col + 0.3) * cell_w) : int((col + 0.7) * cell_w),
        ]
        k |= int(centre.mean() > 128) << bit
    return k


def _encode(
    path: Path, codec: str, timing: Timing = _uniform, start_s: float = 0.0, rotation_deg: int = 0, **kw
) -> Path:
    frames = FPS * SECONDS if timing is _uniform else 40 + 40 * (SECONDS - 4)
    with av.open(str(path), "w", **kw) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        else:
            stream.bit_rate = 2_000_000
        if rotation_deg:
            stream.set_display_rotation(rotation_deg)
        ticks = FPS if timing is _uniform else 1000  # MPEG-2 takes only standard frame rates
        stream.codec_context.time_base = Fraction(1, ticks)
        for k in range(frames):
            frame = av.VideoFrame.from_ndarray(_coded_frame(k), format="rgb24")
            frame.pts, frame.time_base = round((timing(k) + start_s) * ticks), Fraction(1, ticks)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


CASES = [
    "mp4",
    "mov",
    "mkv",
    "webm",
    "avi",
    "mpegts.ts",
    "mpegts.m2ts",
    "mpegts.MTS",
    "mxf",
    "flv",
    "variable frame rate mkv",
    "rotated mp4",
    "mp4 starting at 2 s",
]


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[tuple[float, int]], Timing]]:
    """For each case: (reported time s, frame number read from the picture) of every sampled
    frame, and the source timing; all decoded in one ``decode_videos`` call, as vcopy does."""
    folder = tmp_path_factory.mktemp("containers")
    h264 = _encode(folder / "h264.mp4", "libx264")
    files: dict[str, tuple[Path, Timing]] = {
        "mp4": (h264, _uniform),
        "mov": (remux(h264, folder / "remux.mov"), _uniform),
        "mkv": (remux(h264, folder / "remux.mkv"), _uniform),
        "webm": (_encode(folder / "vp9.webm", "libvpx-vp9"), _uniform),
        "avi": (_encode(folder / "mpeg4.avi", "mpeg4"), _uniform),
        "mpegts.ts": (remux(h264, folder / "remux.ts", "mpegts"), _uniform),
        "mpegts.m2ts": (remux(h264, folder / "remux.m2ts", "mpegts"), _uniform),
        "mpegts.MTS": (remux(h264, folder / "00001.MTS", "mpegts"), _uniform),
        "mxf": (_encode(folder / "mpeg2.mxf", "mpeg2video"), _uniform),
        "flv": (remux(h264, folder / "remux.flv", "flv"), _uniform),
        "variable frame rate mkv": (_encode(folder / "vfr.mkv", "libx264", _variable), _variable),
        "rotated mp4": (_encode(folder / "rotated.mp4", "libx264", rotation_deg=90), _uniform),
        "mp4 starting at 2 s": (_encode(folder / "late.mp4", "libx264", start_s=2.0), _uniform),
    }
    assert list(files) == CASES
    by_path = {path: case for case, (path, _) in files.items()}
    seen: dict[str, list[tuple[float, int]]] = {case: [] for case in files}
    rotation = {}
    for event in decode_videos(list(by_path), SamplingConfig(sample_fps=2.0)):
        assert not isinstance(event, VideoFailed), event
        if isinstance(event, VideoStart):
            rotation[event.path] = event.info.rotation_deg
        if isinstance(event, FrameChunk):
            turns = rotation[event.path] // 90  # frames come upright: turn them back to read the code
            for image, time_s in zip(event.frames, event.timestamps_s, strict=True):
                seen[by_path[event.path]].append((float(time_s), _read_code(np.rot90(image, k=-turns))))
        assert not isinstance(event, VideoEnd) or seen[by_path[event.path]]
    return {case: (seen[case], files[case][1]) for case in files}


def test_a_folder_scan_takes_what_opens_as_video(tmp_path: Path) -> None:
    from PIL import Image

    names = ["00001.MTS", "clip.m2ts", "take.mxf", "old.VOB"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")  # a video file name is enough (a bad one fails later)
    remux(_encode(tmp_path / "source.mp4", "libx264"), tmp_path / "upload_without_a_suffix", "mp4")
    (tmp_path / "source.mp4").unlink()
    (tmp_path / "notes.txt").write_text("not a video")
    Image.new("RGB", (32, 32)).save(tmp_path / "still.jpg")
    Image.new("RGB", (32, 32)).save(tmp_path / "still.png")
    os.mkfifo(tmp_path / "pipe")  # never opened
    skipped: list[str] = []
    found = find_videos([tmp_path], lambda p: skipped.append(p.name))
    assert [p.name for p in found] == sorted([*names, "upload_without_a_suffix"])
    assert sorted(skipped) == ["notes.txt", "pipe", "still.jpg", "still.png"]


@pytest.mark.parametrize("case", CASES)
def test_the_frame_at_each_reported_time_is_the_one_shown_then(case: str, decoded: dict) -> None:
    samples, timing = decoded[case]
    starts = np.array([timing(k) for k in range(FPS * SECONDS * 2) if timing(k) <= SECONDS])
    wrong = []
    for time_s, shown in samples:
        expected = int(np.searchsorted(starts, time_s + 1e-6, side="right")) - 1  # the frame showing at t
        if abs(shown - expected) > 1:  # within one frame
            wrong.append((round(time_s, 3), shown, expected))
    assert len(samples) >= SECONDS * 2 - 1, samples
    assert samples[0][0] == pytest.approx(0.0, abs=1e-3)  # counted from the container's start
    assert not wrong, f"{case}: (time s, frame shown, frame expected) {wrong[:5]}"
