"""Decoding: frames sampled at a fixed rate, resized at decode, each with its timestamp in seconds.

decord does the decoding (and applies the display rotation itself); PyAV probes the container and
decodes what decord cannot open or cannot be trusted with, turning frames by the display matrix as
decord would. Decoding runs in a child process (a fresh interpreter fed through pipes, so that it
never imports the caller's script, which dies with its parent), so it overlaps feature extraction
in the parent, and a decoder that hangs (decord's known spin on containers that over-report their
frame count holds the GIL, so no signal reaches it) is killed after ``stall_timeout_s`` without
output.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import queue
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import IO

import numpy as np

from vcopy.errors import DecodeError
from vcopy.processes import die_with_parent

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".ts", ".3gp"}
    | {".mts", ".m2ts", ".mxf", ".vob", ".ogv", ".f4v"}
)
STILL_FORMATS = frozenset({"image2", "tty"})  # FFmpeg demuxers of pictures and text (and "*_pipe")
# Containers (FFmpeg demuxer names) whose frames decord returns at the right times, as the container
# test matrix (tests/test_containers.py) shows, when the video stream starts where the container
# does; everything else is decoded with PyAV. decord's seeking in MPEG-TS returns wrong frames.
DECORD_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mxf", "flv"})


@dataclass(frozen=True)
class SamplingConfig:
    """How frames are taken from a video."""

    sample_fps: float = 1.0
    frame_size: int = 224
    stall_timeout_s: float = 120.0
    chunk_frames: int = 32

    @property
    def step_s(self) -> float:
        """Seconds between sampled frames."""
        return 1.0 / self.sample_fps


@dataclass(frozen=True)
class VideoInfo:
    """Stream properties read from the container (display orientation, rotation already applied)."""

    duration_s: float
    fps: float
    width: int
    height: int
    rotation_deg: int
    frame_count: int
    start_s: float = 0.0  # the container's first timestamp: every time vcopy reports is counted from it
    decord_trusted: bool = True  # decord's frames and times are right for this container (see DECORD_FORMATS)


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's content: size, modification time and SHA-256."""

    size: int
    mtime_ns: int
    sha256: str


@dataclass
class VideoStart:
    path: Path
    info: VideoInfo


@dataclass
class FrameChunk:
    path: Path
    frames: np.ndarray  # uint8 [N, frame_size, frame_size, 3] RGB
    timestamps_s: np.ndarray  # float64 [N], presentation time of each frame


@dataclass
class VideoEnd:
    path: Path
    decoder: str
    stamp: FileStamp


@dataclass
class VideoFailed:
    path: Path
    reason: str


DecodeEvent = VideoStart | FrameChunk | VideoEnd | VideoFailed


def find_videos(paths: Iterable[Path], on_skip: Callable[[Path], None] | None = None) -> list[Path]:
    """Expand folders into the video files under them (sorted): files with a video file name, and
    other regular files that PyAV opens as a video (not a still picture); ``on_skip`` is told of
    the rest. Files given are kept as given."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        for candidate in sorted(p for p in path.rglob("*") if not p.is_dir()):
            if candidate.suffix.lower() in VIDEO_SUFFIXES or _opens_as_video(candidate):
                found.append(candidate)
            elif on_skip is not None:
                on_skip(candidate)
    return found


def _opens_as_video(path: Path) -> bool:
    """Whether a regular file (never a FIFO: opening one waits) opens as a container with a
    video stream that is not a still picture (about a millisecond: only the header is read)."""
    import av

    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with av.open(str(path)) as container:
            name = container.format.name
            return bool(container.streams.video) and name not in STILL_FORMATS and not name.endswith("_pipe")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return False


def file_stamp(path: Path) -> FileStamp:
    """Size, mtime and SHA-256 of a regular file."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError("not a regular file")
    return FileStamp(size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256_file(path))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DecodeError("file does not exist") from None
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as exc:
        raise DecodeError(f"cannot read file ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError("is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):  # reading a FIFO or a device could wait for ever
        raise DecodeError(f"not a regular file ({_file_kind(st.st_mode)}); skipped")
    if st.st_size == 0:
        raise DecodeError("empty file (0 bytes)")
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except PermissionError:
        raise DecodeError("permission denied") from None
    except OSError as exc:
        raise DecodeError(f"cannot read file ({exc.strerror or exc})") from None


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a file")


def probe(path: Path) -> VideoInfo:
    """Read stream properties with PyAV and decode the first frame to prove the file is a video."""
    import av

    _check_file(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(f"not a readable video container ({_ffmpeg_reason(exc)})") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            what = f"only {', '.join(kinds)} streams" if kinds else "no streams"
            raise DecodeError(f"no video stream ({what})")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        start_s = container.start_time / 1_000_000 if container.start_time is not None else 0.0
        stream_start_s = (
            float(stream.start_time * stream.time_base)
            if stream.start_time is not None and stream.time_base is not None
            else start_s
        )
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / 1_000_000
        else:
            duration_s = 0.0
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise DecodeError(f"video stream does not decode ({_ffmpeg_reason(exc)})") from None
        if first is None:
            raise DecodeError("video stream has no decodable frame")
        rotation_deg = round(first.rotation or 0) % 360
        width, height = first.width, first.height
        if rotation_deg in (90, 270):
            width, height = height, width
        return VideoInfo(
            duration_s=duration_s,
            fps=fps,
            width=width,
            height=height,
            rotation_deg=rotation_deg,
            frame_count=int(stream.frames or 0),
            start_s=start_s,
            decord_trusted=container.format.name in DECORD_FORMATS and abs(stream_start_s - start_s) < 1e-3,
        )


def _ffmpeg_reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[0].strip() or type(exc).__name__


def choose_frame_indices(frame_start_s: np.ndarray, sample_fps: float, end_s: float) -> np.ndarray:
    """Indices of the frames showing at times t0, t0 + 1/fps, ... (variable frame rate safe).

    ``frame_start_s`` are the frames' presentation times. Frames that start at or after ``end_s``
    (the container's duration; a container may announce more frames than it holds) are never asked
    for, and every index is clamped to the frames that exist. A video shorter than one sampling
    step gives its first frame.
    """
    if len(frame_start_s) == 0:
        return np.zeros(0, dtype=np.int64)
    order_ok = np.maximum.accumulate(frame_start_s)
    last = len(order_ok) - 1
    if end_s > 0:
        last = max(0, int(np.searchsorted(order_ok, end_s, side="left")) - 1)
    t0, t_last = order_ok[0], order_ok[last]
    targets = t0 + np.arange(0.0, t_last - t0 + 1e-6, 1.0 / sample_fps)
    idx = np.searchsorted(order_ok[: last + 1], targets + 1e-6, side="right") - 1
    return np.unique(np.clip(idx, 0, last))


def sampling_step_s(timestamps_s: np.ndarray) -> float:
    """The step between sampled frames: the median gap between their timestamps (1 s for one)."""
    return float(np.median(np.diff(timestamps_s))) if len(timestamps_s) > 1 else 1.0


def frame_span_s(timestamps_s: np.ndarray, first: int, last: int, step_s: float) -> tuple[float, float]:
    """Seconds that sampled frames ``first..last`` stand for. vcopy's one idea of frame time: a
    sampled frame stands for the half sampling step on either side of its timestamp (the nearest
    sample to any moment is then at most half a step from it)."""
    return max(0.0, float(timestamps_s[first]) - step_s / 2), float(timestamps_s[last]) + step_s / 2


def _rotate(frames: np.ndarray, rotation_deg: int) -> np.ndarray:
    """Turn frames the way the display matrix says (PyAV's rotation is counter-clockwise degrees)."""
    turns = (rotation_deg // 90) % 4
    return np.ascontiguousarray(np.rot90(frames, k=turns, axes=(1, 2))) if turns else frames


def _sample_decord(path: Path, info: VideoInfo, cfg: SamplingConfig) -> Iterator[FrameChunk]:
    import decord

    try:
        reader = decord.VideoReader(
            str(path), ctx=decord.cpu(0), width=cfg.frame_size, height=cfg.frame_size, num_threads=1
        )
    except decord.DECORDError as exc:
        raise DecodeError(f"decord cannot open the file ({str(exc).splitlines()[0][:120]})") from None
    count = len(reader)
    if count == 0:
        raise DecodeError("decord found no frames")
    frame_start_s = reader.get_frame_timestamp(np.arange(count))[:, 0].astype(np.float64)
    end_s = info.duration_s if info.duration_s > 0 else 0.0
    indices = choose_frame_indices(frame_start_s, cfg.sample_fps, end_s)
    for lo in range(0, len(indices), cfg.chunk_frames):
        batch = indices[lo : lo + cfg.chunk_frames]
        frames = reader.get_batch(batch.tolist()).asnumpy()
        yield FrameChunk(path, frames, frame_start_s[batch])  # decord applies the display rotation


def _sample_pyav(path: Path, info: VideoInfo, cfg: SamplingConfig) -> Iterator[FrameChunk]:
    import av

    frames: list[np.ndarray] = []
    times: list[float] = []
    next_s: float | None = None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            time_s = frame.time - info.start_s  # as players and ffmpeg count it
            if next_s is None:
                next_s = time_s
            if time_s + 1e-6 < next_s:
                continue
            while next_s <= time_s + 1e-6:
                next_s += 1.0 / cfg.sample_fps
            image = frame.to_ndarray(width=cfg.frame_size, height=cfg.frame_size, format="rgb24")
            frames.append(image)
            times.append(time_s)
            if len(frames) == cfg.chunk_frames:
                yield FrameChunk(path, _rotate(np.stack(frames), info.rotation_deg), np.array(times))
                frames, times = [], []
    if frames:
        yield FrameChunk(path, _rotate(np.stack(frames), info.rotation_deg), np.array(times))


def frames_at(path: Path, info: VideoInfo, times_s: Sequence[float]) -> list[np.ndarray | None]:
    """The frame showing at each time (seconds from the file's start, as vcopy reports them),
    upright and at the file's own size, with PyAV (seeking to the key frame before each time);
    None for a time before the first frame. For thumbnails of reported segments."""
    import av

    found: list[np.ndarray | None] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            ticks_per_s = 1 / float(stream.time_base or Fraction(1, 1_000_000))
            for time_s in times_s:
                target_s = time_s + info.start_s
                shown = None
                for start_s in (target_s, 0.0):  # from the key frame before, else from the start
                    container.seek(max(0, int(start_s * ticks_per_s)), stream=stream, backward=True)
                    for frame in container.decode(stream):
                        if frame.time is None:
                            continue
                        if frame.time > target_s + 1e-6:
                            break
                        shown = frame
                    if shown is not None:
                        break
                image = None if shown is None else shown.to_ndarray(format="rgb24")
                found.append(None if image is None else _rotate(image[None], info.rotation_deg)[0])
    except av.FFmpegError as exc:
        raise DecodeError(f"{path}: cannot read frames ({_ffmpeg_reason(exc)})") from None
    return found


def sample_frames(
    path: Path, info: VideoInfo, cfg: SamplingConfig, use_pyav: bool = False
) -> Iterator[FrameChunk]:
    """Frames at ``cfg.sample_fps`` with decord; PyAV where decord cannot be trusted with the
    container (``info.decord_trusted``) or cannot open the file. Times are counted from the
    container's first timestamp (``info.start_s``), as players and ffmpeg show them."""
    import decord

    if use_pyav or not info.decord_trusted:
        yield from _sample_pyav(path, info, cfg)
        return
    produced = False
    try:
        for chunk in _sample_decord(path, info, cfg):
            produced = True
            yield chunk
    except (DecodeError, decord.DECORDError) as exc:
        if produced:
            raise DecodeError(f"decoding failed part-way ({str(exc).splitlines()[0][:120]})") from None
        yield from _sample_pyav(path, info, cfg)


@dataclass(frozen=True)
class _Task:
    path: Path
    use_pyav: bool = False


def _decode_worker(tasks: list[_Task], cfg: SamplingConfig, emit: Callable[[DecodeEvent], None]) -> None:
    """Decode each task in turn, handing its events to ``emit`` (in the decoder process)."""
    import av

    for task in tasks:
        try:
            info = probe(task.path)
            emit(VideoStart(task.path, info))
            decoder = "pyav" if task.use_pyav or not info.decord_trusted else "decord"
            produced = 0
            for chunk in sample_frames(task.path, info, cfg, use_pyav=task.use_pyav):
                produced += len(chunk.timestamps_s)
                emit(chunk)
            if produced == 0:
                raise DecodeError("no frame could be decoded")
            emit(VideoEnd(task.path, decoder, file_stamp(task.path)))
        except DecodeError as exc:
            emit(VideoFailed(task.path, str(exc)))
        except UnicodeEncodeError:  # FFmpeg takes UTF-8 names
            emit(VideoFailed(task.path, "its name is not valid UTF-8 (rename the file to read it)"))
        except (av.FFmpegError, OSError) as exc:
            emit(VideoFailed(task.path, f"decoding failed ({_ffmpeg_reason(exc)})"))
        except Exception as exc:  # a decoder bug on one file must not stop the batch
            emit(VideoFailed(task.path, f"decoding failed ({type(exc).__name__}: {exc})"))


def decoder_main() -> None:
    """The decoder process: reads (tasks, sampling, parent pid) pickled on stdin and writes its
    events pickled on stdout (anything else printed goes to stderr)."""
    events = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library that prints must not corrupt the event stream
    tasks, cfg, parent_pid = pickle.load(sys.stdin.buffer)
    die_with_parent(parent_pid)

    def emit(event: DecodeEvent) -> None:
        pickle.dump(event, events, protocol=pickle.HIGHEST_PROTOCOL)
        events.flush()

    _decode_worker(tasks, cfg, emit)
    events.close()


_DECODER_COMMAND = "from vcopy.video import decoder_main; decoder_main()"
_END = None  # put on the event queue when the decoder's output ends


def _read_events(stream: IO[bytes], events: queue.Queue) -> None:
    """Reader thread: the decoder's events onto ``events`` (bounded: the decoder waits while the
    parent is busy), then ``_END``."""
    try:
        while True:
            events.put(pickle.load(stream))
    except (EOFError, OSError, pickle.UnpicklingError):
        pass
    finally:
        events.put(_END)


def _start_decoder(tasks: list[_Task], cfg: SamplingConfig) -> subprocess.Popen:
    """A fresh interpreter running ``decoder_main``: started as a plain command, it never imports
    the caller's script (multiprocessing's spawn does, so an unguarded script would recurse)."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])]),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", _DECODER_COMMAND], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert process.stdin is not None
    pickle.dump((tasks, cfg, os.getpid()), process.stdin)
    process.stdin.close()
    return process


def decode_videos(paths: Iterable[Path], cfg: SamplingConfig) -> Iterator[DecodeEvent]:
    """Decode videos in a child process, yielding per video VideoStart, FrameChunk..., VideoEnd or
    VideoFailed. A failure can follow a VideoStart and chunks, and a second VideoStart for the same
    path restarts that video. A decoder that produces nothing for ``cfg.stall_timeout_s`` or dies is
    killed; the file is retried once with PyAV, then reported as failed.
    """
    pending = [_Task(Path(p)) for p in paths]
    while pending:
        process = _start_decoder(pending, cfg)
        events: queue.Queue = queue.Queue(maxsize=8)
        reader = threading.Thread(target=_read_events, args=(process.stdout, events), daemon=True)
        reader.start()
        done, started, why = 0, False, ""
        try:
            last_event = time.monotonic()
            while done < len(pending):
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    if time.monotonic() - last_event > cfg.stall_timeout_s:
                        why = f"decoder stalled for {cfg.stall_timeout_s:g} s"
                        break
                    continue
                if event is _END:
                    why = f"decoder crashed (exit code {process.wait()})"
                    break
                last_event = time.monotonic()
                if isinstance(event, VideoStart):
                    started = True
                elif isinstance(event, VideoEnd | VideoFailed):
                    done, started = done + 1, False
                yield event
        finally:
            process.kill()
            process.wait()
            while reader.is_alive():  # let the reader reach the end of the (now closed) stream
                with contextlib.suppress(queue.Empty):
                    events.get(timeout=0.1)
            reader.join()
            assert process.stdout is not None
            process.stdout.close()
        if done == len(pending):
            return
        task, rest = pending[done], pending[done + 1 :]
        if task.use_pyav or not started:
            yield VideoFailed(task.path, f"{why}; gave up")
            pending = rest
        else:
            pending = [replace(task, use_pyav=True), *rest]
