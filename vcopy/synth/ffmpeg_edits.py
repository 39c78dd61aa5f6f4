"""Copy transformations made by the ffmpeg program (from the PyPI wheel ``imageio-ffmpeg``), beside
the PyAV/PIL ones of ``vcopy.synth.edits``: other implementations of familiar edits and kinds that
edits.py does not have (vignetting, sharpening, lens distortion, colour balance, stacked frames),
each at three strengths. They act frame by frame, so a copy's timing is unchanged.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from vcopy.errors import VcopyError

# name -> filter graph per level; W and H are the frame's width and height
FILTERS: dict[str, tuple[str, str, str]] = {
    "vignette": ("vignette=angle=PI/5", "vignette=angle=PI/4", "vignette=angle=PI/3"),
    "sharpen": ("unsharp=5:5:1.0", "unsharp=5:5:1.8", "unsharp=7:7:2.5"),
    "lens": (
        "lenscorrection=k1=-0.15:k2=0.05",
        "lenscorrection=k1=-0.3:k2=0.1",
        "lenscorrection=k1=0.3:k2=0.2",
    ),
    "colour_balance": (
        "colorbalance=rs=0.2:bs=-0.2",
        "colorbalance=rm=0.3:gm=-0.2:bh=0.3",
        "colorbalance=rs=-0.5:gs=0.4:bs=0.5:rh=0.4",
    ),
    "offset_crop": (
        "crop=iw*0.85:ih*0.85:iw*0.15:0,scale=W:H",
        "crop=iw*0.7:ih*0.75:0:ih*0.25,scale=W:H",
        "crop=iw*0.6:ih*0.6:iw*0.4:ih*0.1,scale=W:H",
    ),
    "box_blur": ("boxblur=2", "boxblur=4", "boxblur=7"),
    "temporal_noise": ("noise=alls=15:allf=t", "noise=alls=30:allf=t+u", "noise=alls=50:allf=t+u"),
    "flip_eq": (
        "hflip,eq=brightness=0.08:contrast=1.2",
        "hflip,eq=contrast=0.7:saturation=0.5",
        "vflip,hflip,eq=gamma=1.6",
    ),
    "pad": (
        "scale=iw*0.8:-2,pad=W:H:(ow-iw)/2:(oh-ih)/2",
        "scale=iw*0.65:-2,pad=W:H:(ow-iw)/3:(oh-ih)/2:color=white",
        "scale=iw*0.5:-2,pad=W:H:(ow-iw)/4:(oh-ih)/4:color=0x336699",
    ),
    "stack": (  # the copy shown twice, side by side or stacked (a stacked-frames upload)
        "split[a][b];[b]hflip[c];[a][c]hstack,scale=W:H",
        "split[a][b];[a][b]vstack,scale=W:H",
        "split=3[a][b][c];[b]hue=s=0[d];[a][d][c]hstack=inputs=3,scale=W:H",
    ),
}


def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise VcopyError(
            "the benchmark's ffmpeg-made edits need the ffmpeg program of imageio-ffmpeg: "
            'pip install -e ".[test]"'
        ) from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def apply(source: Path, target: Path, name: str, level: int, size: tuple[int, int]) -> None:
    """Write ``target``: ``source`` through ffmpeg edit ``name`` at ``level`` (``size`` is the
    frame's (height, width)), re-encoded with x264 at its default quality."""
    height, width = size
    graph = FILTERS[name][level].replace("W:H", f"{width}:{height}")
    command = [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source),
        "-filter_complex", f"{graph},format=yuv420p", "-c:v", "libx264", "-preset", "veryfast",
        "-crf", "23", "-an", str(target),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise VcopyError(f"{source}: ffmpeg edit {name}:{level} failed: {done.stderr.strip()[-300:]}")
