"""``vcopy train``: SPD, key frames with SPD, and the video-text model."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from vcopy.cli.common import (
    FiniteFloat,
    check_device,
    descriptor_option,
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


def _run_training[Log](
    train: Callable[..., Path],
    gt_path: Path,
    out_dir: Path,
    config: object,
    resume: bool,
    total_steps: int,
    epoch_text: Callable[[Log], str],
) -> Path:
    """Run an SPD or key-frame trainer with progress, one line per epoch; the best weights."""
    with _training_progress(total_steps) as (on_video, on_step):
        return train(
            gt_path,
            out_dir,
            config,
            resume=resume,
            command=" ".join(["vcopy", *sys.argv[1:]]),
            on_video=on_video,
            on_step=on_step,
            on_epoch=lambda log: note(epoch_text(log)),
        )


@click.group("train")
def train_group() -> None:
    """Train vcopy's models from unlabeled videos (copies are synthesised)."""


@train_group.command("spd")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--steps-per-epoch", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", "learning_rate", default=2e-3, show_default=True, type=FiniteFloat(min=0))
@click.option(
    "--input-size", default=64, show_default=True, type=click.IntRange(min=32), help="Detector input (px)."
)
@click.option(
    "--max-aspect",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Long maps are drawn up to input-size x (input-size * max-aspect) px.",
)
@click.option(
    "--widths",
    default="8,16,32",
    show_default=True,
    help="Channels at strides 4, 8 and 16 (comma-separated).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@descriptor_option("Frame descriptor whose maps (or library) the model is trained on.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@friendly_errors
def train_spd_command(
    dataset: Path,
    out_dir: Path,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    learning_rate: float,
    input_size: int,
    max_aspect: int,
    widths: str,
    seed: int,
    resume: bool,
    descriptor_name: str | None,
    device: str,
) -> None:
    """Train the SPD copy detector on DATASET, a folder made by examples/make_benchmark.py (only
    its train split is read: unlabeled source videos and synthesised copies of them).

    Writes OUT/spd.pt (the weights of the epoch with the best validation segment F1, with their
    calibrated score threshold), OUT/spd.onnx (the same, as queries run it), OUT/last.pt
    (checkpoint for --resume), OUT/train-log.jsonl. Use the weights with
    `vcopy query --spd-weights OUT/spd.onnx`.
    """
    gt_path = _ground_truth_of(dataset)
    try:
        width_values = tuple(int(w) for w in widths.split(","))
    except ValueError:
        width_values = ()
    if len(width_values) != 3 or min(width_values) < 1:
        raise click.BadParameter("three positive integers, e.g. 8,16,32", param_hint="--widths")
    check_device(device)
    from vcopy.features import DEFAULT_DESCRIPTOR
    from vcopy.localize.spd_train import EpochLog, TrainConfig, train_spd

    config = TrainConfig(
        input_size=input_size,
        max_aspect=max_aspect,
        widths=width_values,  # type: ignore[arg-type]
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        descriptor=descriptor_name or DEFAULT_DESCRIPTOR,
        device=device,
    )

    def epoch_text(log: EpochLog) -> str:
        v = log.validation
        return (
            f"epoch {log.epoch}: loss {_losses_text(log.loss)} "
            f"| validation segment F1 {v['segment_f1']:.3f} "
            f"(P {v['segment_precision']:.3f} R {v['segment_recall']:.3f}), video P "
            f"{v['video_precision']:.3f} R {v['video_recall']:.3f} at score >= {log.score_threshold:.2f} "
            f"| {log.seconds:.0f} s"
        )

    best = _run_training(train_spd, gt_path, out_dir, config, resume, epochs * steps_per_epoch, epoch_text)
    stderr.print(f"best weights: {printable(best)}")


@train_group.command("copy")
@click.argument("dataset", type=click.Path(path_type=Path, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(min=1))
@click.option("--steps-per-epoch", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--key-rate",
    default=0.2,
    show_default=True,
    type=FiniteFloat(min=0.01, max=1),
    help="Share of sampled frames to keep as key frames (the budget).",
)
@click.option(
    "--uniform-period",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="One frame in this many is always kept (the uniform mask).",
)
@click.option(
    "--frozen-spd",
    is_flag=True,
    help="Train the key frames alone, against the initial SPD weights (SKE as a separate stage).",
)
@click.option(
    "--init-spd",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="SPD weights (.pt) to start from [default: the shipped ones for the descriptor].",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@descriptor_option("Frame descriptor whose maps the models are trained on.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@friendly_errors
def train_copy_command(
    dataset: Path,
    out_dir: Path,
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    key_rate: float,
    uniform_period: int,
    frozen_spd: bool,
    init_spd: Path | None,
    seed: int,
    resume: bool,
    descriptor_name: str | None,
    device: str,
) -> None:
    """Train learned key frames (SKE) jointly with the SPD copy detector on DATASET, a folder made
    by examples/make_benchmark.py (only its train split is read).

    Writes OUT/ske.onnx and OUT/spd.onnx (with .pt beside them: the epoch with the best validation
    segment F1, key frames on both sides), OUT/last.pt (checkpoint for --resume) and
    OUT/train-log.jsonl (loss, kept share and validation per epoch).
    """
    gt_path = _ground_truth_of(dataset)
    check_device(device)
    from vcopy.features import DEFAULT_DESCRIPTOR
    from vcopy.keyframes.train import CopyEpochLog, CopyTrainConfig, train_copy
    from vcopy.localize.spd_train import TrainConfig

    config = CopyTrainConfig(
        spd=TrainConfig(
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            seed=seed,
            descriptor=descriptor_name or DEFAULT_DESCRIPTOR,
            device=device,
        ),
        init_spd=init_spd,
        key_rate=key_rate,
        uniform_period=uniform_period,
        frozen_spd=frozen_spd,
    )

    def epoch_text(log: CopyEpochLog) -> str:
        v = log.validation
        return (
            f"epoch {log.epoch}: loss {_losses_text(log.loss)}, kept {log.key_rate:.3f} "
            f"| validation segment F1 {v['segment_f1']:.3f} (P {v['segment_precision']:.3f} "
            f"R {v['segment_recall']:.3f}), kept {log.validation_key_rate:.3f} of frames, at score >= "
            f"{log.score_threshold:.2f} | {log.seconds:.0f} s"
        )

    best = _run_training(train_copy, gt_path, out_dir, config, resume, epochs * steps_per_epoch, epoch_text)
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
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", "learning_rate", default=1e-3, show_default=True, type=FiniteFloat(min=0))
@click.option(
    "--video-encoder",
    type=click.Choice(["mean", "transformer"]),
    default="mean",
    show_default=True,
    help="Mean pooling of frames, or one temporal transformer layer before it.",
)
@click.option(
    "--text-head/--no-text-head", default=True, show_default=True, help="Learn a correction on top of MiniLM."
)
@click.option(
    "--layouts/--no-layouts",
    default=True,
    show_default=True,
    help="Read each frame's layout and its change (where things are, which way they move).",
)
@click.option(
    "--temperature",
    type=FiniteFloat(min=1e-3, max=1.0),
    help="Fixed InfoNCE temperature (default: learned, starting at 0.05).",
)
@click.option("--negnce/--no-negnce", default=False, show_default=True, help="Negative-aware InfoNCE term.")
@click.option("--negnce-r2", default=0.5, show_default=True, type=FiniteFloat(min=0))
@click.option("--dmae/--no-dmae", default=False, show_default=True, help="Word x frame term (DMAE).")
@click.option(
    "--tpm/--no-tpm", default=False, show_default=True, help="Triplet partial-margin term (TPM-CL)."
)
@click.option("--hscl/--no-hscl", default=False, show_default=True, help="Hard-sample curriculum (HSCL).")
@click.option(
    "--neighbour-batches",
    is_flag=True,
    help="Batch each video with the videos whose captions read most like its own (hard negatives).",
)
@click.option("--validation-fraction", default=0.2, show_default=True, type=FiniteFloat(0.05, 0.5))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@descriptor_option("Frame descriptor whose maps (or library) the model is trained on.")
@click.option("--device", default="cpu", show_default=True, help="Torch device (cpu, cuda).")
@friendly_errors
def train_text_command(
    captions_file: Path,
    videos_dir: Path,
    out_dir: Path,
    library_path: Path | None,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    video_encoder: str,
    text_head: bool,
    layouts: bool,
    temperature: float | None,
    negnce: bool,
    negnce_r2: float,
    dmae: bool,
    tpm: bool,
    hscl: bool,
    neighbour_batches: bool,
    validation_fraction: float,
    seed: int,
    resume: bool,
    descriptor_name: str | None,
    device: str,
) -> None:
    """Train the text-to-video model on captioned videos (several captions per video welcome).

    The videos are indexed into a library (unchanged ones are not decoded again). Writes
    OUT/text-model.pt (the epoch with the best held-out R@sum), OUT/last.pt (for --resume) and
    OUT/train-log.jsonl. Search with it: `vcopy search-text TEXT --library LIB --model
    OUT/text-model.pt` (LIB built with the same descriptor).
    """
    check_device(device)
    from vcopy.text.train import TextEpochLog, TextTrainConfig, prepare_data, read_checkpoint, train_text

    config = TextTrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        temporal=video_encoder == "transformer",
        text_head=text_head,
        layouts=layouts,
        temperature=temperature,
        negnce=negnce,
        negnce_r2=negnce_r2,
        dmae=dmae,
        tpm=tpm,
        hscl=hscl,
        caption_neighbour_batches=neighbour_batches,
        validation_fraction=validation_fraction,
        seed=seed,
        descriptor=library_descriptor(library_path or out_dir / "library", descriptor_name),
        device=device,
    )
    if resume and (out_dir / "last.pt").is_file():
        read_checkpoint(out_dir / "last.pt", config)  # a bad checkpoint is refused before any work
    library_root = library_path or out_dir / "library"
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
        f"{len(data.caption_texts)} captions; losses {config.losses}"
    )
    record = {
        "descriptor": prepared.descriptor,
        "text_encoder_sha256": prepared.text_encoder_sha256,
        "command": " ".join(["vcopy", *sys.argv[1:]]),
        "captions": str(captions_file),
    }
    with progress_bar() as progress:
        training = progress.add_task("training", total=None, current="")

        def on_step(step: int, total: int) -> None:
            progress.update(training, completed=step, total=total)

        def on_epoch(log: TextEpochLog) -> None:
            v = log.validation
            note(
                f"epoch {log.epoch}: loss {_losses_text(log.loss)} | held out "
                f"R@1 {v['r1']:.1f} R@5 {v['r5']:.1f} R@10 {v['r10']:.1f} R@sum {v['rsum']:.1f} "
                f"medR {v['median_rank']:g} meanR {v['mean_rank']:.1f} | {log.seconds:.1f} s"
            )

        best, metrics = train_text(data, out_dir, config, record, resume, on_step, on_epoch)
    stderr.print(
        f"best weights: {printable(best)} (held out R@1 {metrics.r1:.1f} R@5 {metrics.r5:.1f} "
        f"R@10 {metrics.r10:.1f} R@sum {metrics.rsum:.1f})",
        soft_wrap=True,
    )
