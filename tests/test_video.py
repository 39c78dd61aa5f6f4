"""Decoding: timestamps in seconds, rotation, short videos, guarded indices, stalls."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import alive, descendants

from vcopy import synth
from vcopy.video import (
    FrameChunk,
    SamplingConfig,
    VideoEnd,
    VideoFailed,
    choose_frame_indices,
    decode_videos,
    probe,
    sample_frames,
)


def _marker_clip(seconds: float, fps: float = 15) -> synth.Clip:
    frames = np.zeros((round(seconds * fps), 120, 160, 3), dtype=np.uint8)
    frames[:, :30, :40] = (255, 0, 0)  # red block in the top-left corner
    return synth.Clip(frames, fps)


def _red_corner(frame: np.ndarray) -> tuple[bool, bool]:
    """(top?, left?) of the red block."""
    ys, xs = np.nonzero(frame[..., 0] > 150)
    h, w = frame.shape[:2]
    return ys.mean() < h / 2, xs.mean() < w / 2


def test_samples_one_frame_per_second_with_timestamps(tmp_path: Path) -> None:
    path = synth.write_video(tmp_path / "a.mp4", synth.procedural_video(1, 6.5, fps=25))
    chunks = list(sample_frames(path, probe(path), SamplingConfig()))
    times = np.concatenate([c.timestamps_s for c in chunks])
    np.testing.assert_allclose(times, np.arange(7.0), atol=0.05)
    assert chunks[0].frames.shape[1:] == (224, 224, 3)


@pytest.mark.parametrize("use_pyav", [False, True])
def test_rotation_metadata_is_applied(tmp_path: Path, use_pyav: bool) -> None:
    path = synth.write_video(tmp_path / "rot.mp4", _marker_clip(2), rotation_deg=90)
    info = probe(path)
    assert info.rotation_deg == 90 and (info.width, info.height) == (120, 160)
    frame = next(sample_frames(path, info, SamplingConfig(), use_pyav=use_pyav)).frames[0]
    assert _red_corner(frame) == (False, True)  # top-left turned 90 degrees counter-clockwise


def test_video_shorter_than_one_step_gives_one_frame(tmp_path: Path) -> None:
    path = synth.write_video(tmp_path / "short.mp4", synth.procedural_video(2, 0.4))
    times = np.concatenate([c.timestamps_s for c in sample_frames(path, probe(path), SamplingConfig())])
    assert times.tolist() == [0.0]


def test_indices_never_pass_the_real_end() -> None:
    # a container announcing 40 frames at 10 fps but lasting 2 s: frames past 2 s are never asked for
    starts = np.arange(40) / 10
    idx = choose_frame_indices(starts, sample_fps=1.0, end_s=2.0)
    assert idx.tolist() == [0, 10]
    # variable frame rate: the frame showing at each whole second is chosen
    vfr = np.array([0.0, 0.1, 0.9, 1.7, 2.05, 2.2, 3.5])
    assert choose_frame_indices(vfr, 1.0, 0).tolist() == [0, 2, 3, 5]


def test_stalled_decoder_is_killed_and_batch_goes_on(tmp_path: Path) -> None:
    stuck = synth.write_video(tmp_path / "stuck.mp4", synth.procedural_video(2, 3))
    good = synth.write_video(tmp_path / "good.mp4", synth.procedural_video(3, 3))
    stopped: list[int] = []

    def stop_the_first_decoder() -> None:  # a real hang: the decoder process stops producing
        deadline = time.monotonic() + 60
        while not stopped and time.monotonic() < deadline:
            for pid in _decoders():
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=stop_the_first_decoder, daemon=True)
    watcher.start()
    events = list(decode_videos([stuck, good], SamplingConfig(stall_timeout_s=2)))
    watcher.join()
    failed = [e for e in events if isinstance(e, VideoFailed)]
    assert stopped and len(failed) == 1 and failed[0].path == stuck, failed
    assert "stalled for 2 s" in failed[0].reason
    assert any(isinstance(e, VideoEnd) and e.path == good for e in events)
    assert sum(len(e.timestamps_s) for e in events if isinstance(e, FrameChunk)) == 3
    assert not _decoders()


def _decoders() -> list[int]:
    """This process's live decoder children."""
    found = []
    for pid in descendants(os.getpid()):
        try:
            if alive(pid) and "decoder_main" in Path(f"/proc/{pid}/cmdline").read_text():
                found.append(pid)
        except OSError:
            continue
    return found


def test_a_script_without_a_main_guard_can_decode(tmp_path: Path) -> None:
    """The decoder never imports the caller's script (multiprocessing's spawn would, and an
    unguarded script would then start decoding again inside it, and crash)."""
    video = synth.write_video(tmp_path / "clip.mp4", synth.procedural_video(4, 3))
    script = tmp_path / "script.py"
    script.write_text(
        "from pathlib import Path\n"
        "from vcopy.video import FrameChunk, SamplingConfig, decode_videos\n"
        f"events = list(decode_videos([Path({str(video)!r})], SamplingConfig()))\n"
        "print(sum(len(e.timestamps_s) for e in events if isinstance(e, FrameChunk)))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "3"


def test_a_fifo_is_refused_without_being_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    started = time.monotonic()
    [event] = list(decode_videos([fifo], SamplingConfig(stall_timeout_s=60)))
    assert isinstance(event, VideoFailed) and "not a regular file (a FIFO)" in event.reason
    assert time.monotonic() - started < 30
