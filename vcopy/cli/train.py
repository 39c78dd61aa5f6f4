"""``vcopy train``: SPD, key frames with SPD, and the video-text model."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vcopy.train.config import CopyTrainConfig, TextTrainConfig, TrainConfig

if TYPE_CHECKING:
    from vcopy.train.loop import EpochLog

from vcopy.cli.common import (
    EXIT_USAGE,
    FiniteFloat,
    check_device,
    config_option,
    descriptor_option,
    fail,
    friendly_errors,
    library_descriptor,
    note,
    printable,
    progress_bar,
    stderr,
    video_reporter,
)


@contextlib.contextmanager
def _training_progress(
    total_steps: int,
) -> Iterator[tuple[Callable[[str], None], Callable[[int, int], None]]]:
    """Progress of a training command: (on_video, on_step), told of each video encoded and each
    training step done."""
    with progress_bar() as progress:
        encoding = progress.add_task("encoding train split", total=None, current="")
        training = progress.add_task("training", total=total_steps, current="", visible=False)

        def on_video(path: str) -> None:
            progress.update(encoding, advance=1, current=path)

        def on_step(step: int, total: int) -> None:
            progress.update(encoding, visible=False)
            progress.update(training, completed=step, visible=True)

        yield on_video, on_step


def _losses_text(loss: dict[str, float]) -> str:
    """Loss terms as "name value ..." (ultralytics' "_loss" suffixes dropped)."""
    return " ".join(f"{name.removesuffix('_loss')} {value:.3f}" for name, value in loss.items())


def _ground_truth_of(dataset: Path) -> Path:
    """DATASET's ground truth: the folder's groundtruth.json, or DATASET itself when it is a file."""
    from vcopy.groundtruth import GROUND_TRUTH

    gt_path = dataset / GROUND_TRUTH if dataset.is_dir() else dataset
    if not gt_path.is_file():
        raise click.BadParameter(f"{gt_path}: no ground truth (make one with examples/make_benchmark.py)")
    return gt_path


def _config[C](cls: type[C], options: dict[str, object], **more: object) -> C:
    """A config dataclass from the command's options named as its fields (and ``more``)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in options.items() if k in names}, **more)


def _command() -> str:
    """The command line, as recorded with trained weights."""
    return " ".join(["vcopy", *sys.argv[1:]])


def _epoch_text(log: EpochLog) -> str:
    """One line per SPD or key-frame epoch: losses, validation, kept share, threshold, time."""
    v, kept = log.validation, log.details.get("key_rate")
    return (
        f"epoch {log.epoch}: loss {_losses_text(log.loss)} | validation segment F1 {v['segment_f1']:.3f} "
        f"(P {v['segment_precision']:.3f} R {v['segment_recall']:.3f}), video P {v['video_precision']:.3f} "
        f"R {v['video_recall']:.3f}{'' if kept is None else f', kept {kept:.3f} of frames,'} at score >= "
        f"{log.details['score_threshold']:.2f} | {log.seconds:.0f} s"
    )


def _run_training(
    train: Callable[..., Path],
    gt_path: Path,
    out_dir: Path,
    config: object,
    resume: bool,
    total_steps: int,
) -> Path:
    """Run an SPD or key-frame trainer with progress, one line per epoch; the best weights."""
    from vcopy.train.loop import Hooks

    with _training_progress(total_steps) as (on_video, on_step):
        hooks = Hooks(_command(), on_video, on_step, lambda log: note(_epoch_text(log)))
        return train(gt_path, out_dir, config, resume, hooks)


def _run_options[F: Callable[..., Any]](defaults: object, descriptor_help: str) -> Callable[[F], F]:
    """--seed, --resume, --descriptor and --device, which every trainer takes."""

    def add(command: F) -> F:
        command = config_option(defaults, "device", help="Torch device (cpu, cuda).")(command)
        command = descriptor_option(descriptor_help)(command)
        command = click.option(
            "--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."
        )(command)
        return config_option(defaults, "seed", type=int)(command)

    return add


TRAINING_PACKAGES = ("torch", "torchvision", "ultralytics", "onnx", "onnxscript")  # vcopy[train]


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken or blocked install
        return False


@click.group("train")
def train_group() -> None:
    """Train vcopy's models from unlabeled videos (copies are synthesised)."""
    missing = [p for p in TRAINING_PACKAGES if not _installed(p)]
    if missing:
        fail(
            f"vcopy train needs the training extra ({', '.join(missing)} not installed): "
            'pip install "vcopy[train]"',
            EXIT_USAGE,
        )


SPD = TrainConfig()
COPY = CopyTrainConfig()
TEXT = TextTrainConfig()


@train_group.command("spd")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@config_option(SPD, "epochs")
@config_option(SPD, "steps_per_epoch")
@config_option(SPD, "batch_size")
@config_option(SPD, "learning_rate", "--lr")
@config_option(SPD, "input_size", type=click.IntRange(min=32), help="Detector input (px).")
@config_option(SPD, "max_aspect", help="Long maps are drawn up to input-size x (input-size * max-aspect) px.")
@config_option(SPD, "widths", help="Channels at strides 4, 8 and 16.")
@_run_options(SPD, "Frame descriptor whose maps (or library) the model is trained on.")
@friendly_errors
def train_spd_command(
    dataset: Path, out_dir: Path, resume: bool, descriptor_name: str | None, **options: Any
) -> None:
    """Train the SPD copy detector on DATASET, a folder made by examples/make_benchmark.py (only
    its train split is read: unlabeled source videos and synthesised copies of them).

    Writes OUT/spd.pt (the weights of the epoch with the best validation segment F1, with their
    calibrated score threshold), OUT/spd.onnx (the same, as queries run it), OUT/last.pt
    (checkpoint for --resume), OUT/train-log.jsonl. Use the weights with
    `vcopy query --spd-weights OUT/spd.onnx`.
    """
    gt_path = _ground_truth_of(dataset)
    check_device(options["device"], training=True)
    config = _config(TrainConfig, options, descriptor=descriptor_name or SPD.descriptor)
    from vcopy.train.spd import train_spd

    total = config.epochs * config.steps_per_epoch
    best = _run_training(train_spd, gt_path, out_dir, config, resume, total)
    stderr.print(f"best weights: {printable(best)}")


@train_group.command("copy")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@config_option(COPY.spd, "epochs")
@config_option(COPY.spd, "steps_per_epoch")
@config_option(COPY.spd, "batch_size")
@config_option(
    COPY,
    "key_rate",
    type=FiniteFloat(min=0.01, max=1),
    help="Share of sampled frames to keep as key frames (the budget).",
)
@config_option(COPY, "uniform_period", help="One frame in this many is always kept (the uniform mask).")
@config_option(
    COPY,
    "frozen_spd",
    help="Train the key frames alone, against the initial SPD weights (SKE as a separate stage).",
)
@config_option(
    COPY,
    "init_spd",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="SPD weights (.pt) to start from [default: the shipped ones for the descriptor].",
)
@_run_options(COPY.spd, "Frame descriptor whose maps the models are trained on.")
@friendly_errors
def train_copy_command(
    dataset: Path, out_dir: Path, resume: bool, descriptor_name: str | None, **options: Any
) -> None:
    """Train learned key frames (SKE) jointly with the SPD copy detector on DATASET, a folder made
    by examples/make_benchmark.py (only its train split is read).

    Writes OUT/ske.onnx and OUT/spd.onnx (with .pt beside them: the epoch with the best validation
    segment F1, key frames on both sides), OUT/last.pt (checkpoint for --resume) and
    OUT/train-log.jsonl (loss, kept share and validation per epoch).
    """
    gt_path = _ground_truth_of(dataset)
    check_device(options["device"], training=True)
    spd = _config(TrainConfig, options, descriptor=descriptor_name or SPD.descriptor)
    config = _config(CopyTrainConfig, options, spd=spd)
    from vcopy.train.copy import train_copy

    total = spd.epochs * spd.steps_per_epoch
    best = _run_training(train_copy, gt_path, out_dir, config, resume, total)
    stderr.print(f"best weights: {printable(best)} (and {printable(best.parent / 'spd.onnx')})")


@train_group.command("text")
@click.option(
    "--captions",
    "captions_file",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="MSR-VTT JSON, CSV/TSV (video and caption columns) or JSONL ({video, caption}).",
)
@click.option(
    "--videos",
    "videos_dir",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Folder of the captioned videos.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option(
    "--library",
    "library_path",
    type=click.Path(path_type=Path),
    help="Library to index the videos into and read their frames from (default: OUT/library).",
)
@config_option(TEXT, "epochs")
@config_option(TEXT, "batch_size", type=click.IntRange(min=2))
@config_option(TEXT, "learning_rate", "--lr")
@click.option(
    "--video-encoder",
    type=click.Choice(["mean", "transformer"]),
    default="mean",
    show_default=True,
    help="Mean pooling of frames, or one temporal transformer layer before it.",
)
@config_option(TEXT, "text_head", help="Learn a correction on top of MiniLM.")
@config_option(
    TEXT, "layouts", help="Read each frame's layout and its change (where things are, which way they move)."
)
@config_option(
    TEXT,
    "temperature",
    type=FiniteFloat(min=1e-3, max=1.0),
    help="Fixed InfoNCE temperature (default: learned, starting at 0.05).",
)
@config_option(
    TEXT,
    "caption_neighbour_batches",
    "--neighbour-batches",
    help="Batch each video with the videos whose captions read most like its own (hard negatives).",
)
@config_option(TEXT, "validation_fraction", type=FiniteFloat(0.05, 0.5))
@_run_options(TEXT, "Frame descriptor whose maps (or library) the model is trained on.")
@friendly_errors
def train_text_command(
    captions_file: Path,
    videos_dir: Path,
    out_dir: Path,
    library_path: Path | None,
    video_encoder: str,
    resume: bool,
    descriptor_name: str | None,
    **options: Any,
) -> None:
    """Train the text-to-video model on captioned videos (several captions per video welcome).

    The videos are indexed into a library (unchanged ones are not decoded again). Writes
    OUT/text-model.pt (the epoch with the best held-out R@sum), OUT/text-model.onnx (the same, as
    search runs it), OUT/last.pt (for --resume) and OUT/train-log.jsonl. Search with it: `vcopy
    search-text TEXT --library LIB --model OUT/text-model.onnx` (LIB built with the same descriptor).
    """
    check_device(options["device"], training=True)
    library_root = library_path or out_dir / "library"
    config = _config(
        TextTrainConfig,
        options,
        temporal=video_encoder == "transformer",
        descriptor=library_descriptor(library_root, descriptor_name),
    )
    from vcopy.train.loop import Hooks, RunFolder, settings_record
    from vcopy.train.text import prepare_data, train_text

    RunFolder(out_dir, settings_record(config)).checkpoint_to_resume(resume)  # refused before any work
    with progress_bar() as progress:
        videos = progress.add_task("indexing videos", total=None, current="")
        prepared = prepare_data(
            captions_file, videos_dir, library_root, config, video_reporter(progress, videos)
        )
    if prepared.missing:
        note(
            f"note: {len(prepared.missing)} captioned videos have no file in {printable(videos_dir)} "
            f"(e.g. {printable(prepared.missing[0])})"
        )
    data = prepared.data
    note(
        f"{len(data.paths)} videos ({len(data.train_videos)} train, {len(data.held_out_videos)} held out), "
        f"{len(data.caption_texts)} captions"
    )
    record = {
        "descriptor": prepared.descriptor,
        "text_encoder_sha256": prepared.text_encoder_sha256,
        "command": _command(),
        "captions": str(captions_file),
    }
    with progress_bar() as progress:
        training = progress.add_task("training", total=None, current="")

        def on_step(step: int, total: int) -> None:
            progress.update(training, completed=step, total=total)

        def on_epoch(log: EpochLog) -> None:
            v = log.validation
            note(
                f"epoch {log.epoch}: loss {_losses_text(log.loss)} | held out "
                f"R@1 {v['r1']:.1f} R@5 {v['r5']:.1f} R@10 {v['r10']:.1f} R@sum {v['rsum']:.1f} "
                f"medR {v['median_rank']:g} meanR {v['mean_rank']:.1f} | {log.seconds:.1f} s"
            )

        best, metrics = train_text(
            data, out_dir, config, record, resume, Hooks(on_step=on_step, on_epoch=on_epoch)
        )
    stderr.print(
        f"best weights: {printable(best)} (held out R@1 {metrics['r1']:.1f} R@5 {metrics['r5']:.1f} "
        f"R@10 {metrics['r10']:.1f} R@sum {metrics['rsum']:.1f})",
        soft_wrap=True,
    )
