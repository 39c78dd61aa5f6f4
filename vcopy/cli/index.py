"""``vcopy index``: decode, describe and store videos in a library."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path

import click

from vcopy.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    INPUT_PATHS,
    FiniteFloat,
    check_device,
    decoding_options,
    descriptor_option,
    friendly_errors,
    keyframer_names,
    library_descriptor,
    library_keyframes,
    library_setting,
    listed,
    note,
    open_ray_session,
    progress_bar,
    ray_options,
    skipped_file,
    state,
    stderr,
    video_reporter,
)
from vcopy.video import SamplingConfig


@click.command("index")
@click.argument("paths", nargs=-1, required=True, type=INPUT_PATHS)
@click.option(
    "--library",
    "library_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Library folder (created if missing).",
)
@click.option("--prune", is_flag=True, help="Remove library videos under PATHS whose files no longer exist.")
@descriptor_option("Frame descriptor of a new library (an existing one keeps its own).")
@click.option(
    "--keyframes",
    "keyframes_name",
    default=None,
    type=click.Choice(keyframer_names()),
    help="Which sampled frames a new library keeps: every one (uniform) or learned key frames (ske); "
    "an existing library keeps its own. [default: uniform]",
)
@click.option(
    "--keyframe-weights",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Learned key frames of your own (RUN/ske.onnx of `vcopy train copy`) instead of the shipped "
    "ones; query such a library with --spd-weights RUN/spd.onnx.",
)
@click.option(
    "--sample-fps",
    default=SamplingConfig.sample_fps,
    show_default=True,
    type=FiniteFloat(min=0.05, max=30),
    help="Frames sampled per second of video (fixed when the library is created).",
)
@click.option(
    "--no-text",
    is_flag=True,
    help="A new library without text features (each frame's ImageNet classes and layout): indexing runs "
    "at the descriptor's speed, and `vcopy search-text` cannot search it.",
)
@decoding_options
@ray_options
@click.option(
    "--commit-every",
    default=30.0,
    show_default=True,
    type=FiniteFloat(min=0),
    help="Seconds between commits of indexed videos (work since the last commit is redone after a crash).",
)
@friendly_errors
def index_command(
    paths: tuple[Path, ...],
    library_path: Path,
    prune: bool,
    descriptor_name: str | None,
    keyframes_name: str | None,
    keyframe_weights: Path | None,
    sample_fps: float,
    no_text: bool,
    device: str,
    decode_timeout: float,
    ray_address: str | None,
    ray_workers: int | None,
    commit_every: float,
) -> None:
    """Index the videos in PATHS (files or folders) into a library.

    Incremental: unchanged files are skipped, changed files re-indexed. A file that cannot be
    decoded is reported and recorded as failed; the library is never damaged.

    Exit codes: 0 all indexed or skipped; 1 some files failed; 2 usage error; 5 the library could
    not be opened (locked by another writer, unreadable).
    """
    from vcopy.indexing import index_videos
    from vcopy.library import Library
    from vcopy.video import find_videos

    total = len(find_videos(paths, skipped_file))
    if total == 0 and not prune:
        raise click.UsageError(f"no video files in {listed(paths)} (nothing to index)")
    check_device(device)
    from vcopy.library_db import check_no_writer

    check_no_writer(library_path)  # before any model is loaded
    ray_session = open_ray_session(ray_address, ray_workers, device)
    descriptor_name = library_descriptor(library_path, descriptor_name)
    if no_text:
        library_setting(library_path, "text_features", "0", "1", str)  # a new library only
    if keyframe_weights is not None and keyframes_name not in (None, "ske"):
        raise click.UsageError("--keyframe-weights are learned key frames: they go with --keyframes ske")
    keyframes_name = library_keyframes(library_path, "ske" if keyframe_weights else keyframes_name)
    from vcopy.features import create_descriptor
    from vcopy.keyframes import KeyFramer, create_keyframer
    from vcopy.keyframes.ske import LearnedKeyFrames
    from vcopy.text.search import TEXT_DIR, open_text_space, sync_text_index

    descriptor = create_descriptor(descriptor_name, device=device)
    keyframer: KeyFramer = (
        LearnedKeyFrames(keyframe_weights, device)
        if keyframe_weights is not None
        else create_keyframer(keyframes_name, device=device)
    )
    if isinstance(keyframer, LearnedKeyFrames):  # before a library records them
        keyframer.check_descriptor(descriptor.name)
    sampling = SamplingConfig(
        sample_fps=sample_fps, frame_size=descriptor.frame_size, stall_timeout_s=decode_timeout
    )
    from vcopy.pipeline import PipelineSpec

    spec = replace(PipelineSpec.of(descriptor, sampling, keyframer), text_features=not no_text)
    with Library.open(library_path, write=True, spec=spec) as library:
        if float(library.meta["sample_fps"]) != sample_fps:
            note(f"note: library samples {library.sampling.sample_fps:g} frames/s; using that")
        with ray_session as ray, progress_bar() as progress:
            task = progress.add_task("indexing", total=total, current="")
            summary = index_videos(
                library,
                paths,
                descriptor,
                prune=prune,
                commit_every_s=commit_every,
                stall_timeout_s=decode_timeout,
                on_video=video_reporter(progress, task),
                keyframer=keyframer,
                ray=ray,
            )
        text_stale = summary.indexed or summary.pruned or not (library.root / TEXT_DIR).is_dir()
        if library.pipeline_spec.text_features and text_stale:
            status = stderr.status("text search: updating the library's text index")
            with status if state().verbosity >= 1 else contextlib.nullcontext():
                _, sync = sync_text_index(library, open_text_space(library))
            if sync.not_searchable:
                note(
                    f"note: {len(sync.not_searchable)} videos were indexed by an older vcopy "
                    "and cannot be searched by text until they are indexed again"
                )
    click.echo(
        f"indexed {len(summary.indexed)}, skipped {len(summary.skipped)}, failed {len(summary.failed)}, "
        f"pruned {len(summary.pruned)} videos; {summary.video_seconds:.1f} video seconds in "
        f"{summary.wall_seconds:.1f} s wall time ({summary.throughput:.1f} video s per wall s)"
    )
    sys.exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)
