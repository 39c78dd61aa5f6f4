"""What every trainer shares: the run folder, the schedule, the optimiser step and the epoch loop.

A run folder holds ``last.pt`` (the checkpoint ``--resume`` continues from, written atomically after
every epoch), ``train-log.jsonl`` (one ``EpochLog`` per epoch) and the best weights, which the
trainer writes when its ``Validator`` scores an epoch above every earlier one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from vcopy.checks import bounded_float, bounded_int, load_training_state
from vcopy.errors import MAX_CHECKPOINT_BYTES, VcopyError, read_torch_file
from vcopy.files import atomic_path

CHECKPOINT_FORMAT = "vcopy.train-checkpoint/1"
GRADIENT_CLIP = 10.0


@dataclass(frozen=True)
class Validation:
    """One epoch's held-out evaluation: ``score`` picks the best epoch (higher is better)."""

    score: float
    metrics: dict[str, float]
    details: dict[str, float] = field(default_factory=dict)  # e.g. the calibrated threshold


class Validator(Protocol):
    """Scores the live model on held-out data after each epoch."""

    def __call__(self) -> Validation: ...


@dataclass(frozen=True)
class EpochLog:
    """One line of ``train-log.jsonl``."""

    epoch: int
    steps: int
    seconds: float
    loss: dict[str, float]
    validation: dict[str, float]
    details: dict[str, float]


@dataclass(frozen=True)
class Hooks:
    """What a trainer's caller is told as the run goes (each optional), and the command line that
    is recorded with the weights."""

    command: str = ""
    on_video: Callable[[str], None] | None = None  # a video of the dataset was encoded
    on_step: Callable[[int, int], None] | None = None  # (steps done, steps in all)
    on_epoch: Callable[[EpochLog], None] | None = None


NO_HOOKS = Hooks()


@dataclass(frozen=True)
class Progress:
    """Where a run stands: epochs done and the best validation score so far."""

    epoch: int = 0
    best_score: float = float("-inf")


def settings_record(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-like values (tuples as lists, paths as strings), without
    what may differ between a run and its resumption (``device``; ``epochs``, more may be asked for)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items() if k not in ("device", "epochs")}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return str(value) if isinstance(value, Path) else value

    return plain(asdict(config))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RunFolder:
    """A training run's folder and the settings (``settings_record``) a resumed run must share."""

    root: Path
    settings: dict[str, Any]

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def log_path(self) -> Path:
        return self.root / "train-log.jsonl"

    def checkpoint_to_resume(self, resume: bool) -> dict[str, Any] | None:
        """``last.pt`` when ``resume`` and it exists, checked to be a checkpoint of a run with these
        settings; call it before any heavy work so that a wrong checkpoint is refused at once."""
        if not (resume and self.last.is_file()):
            return None
        state = read_torch_file(self.last, "a training checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise VcopyError(f"{self.last}: not a training checkpoint (format is not {CHECKPOINT_FORMAT})")
        if state.get("settings") != self.settings:
            raise VcopyError(
                f"{self.last}: made with other training settings; start a new run (drop --resume)"
            )
        return state

    def start(self, resumed: dict[str, Any] | None) -> None:
        """Create the folder; a fresh run starts a fresh log."""
        self.root.mkdir(parents=True, exist_ok=True)
        if resumed is None:
            self.log_path.unlink(missing_ok=True)

    def save_checkpoint(self, state: dict[str, Any], progress: Progress) -> None:
        """``last.pt``: the trainer's ``state`` (models, optimiser, schedule) and the progress."""
        save_torch(
            {
                **state,
                "format": CHECKPOINT_FORMAT,
                "settings": self.settings,
                "epoch": progress.epoch,
                "best_score": progress.best_score,
            },
            self.last,
        )

    def log(self, entry: EpochLog) -> None:
        with self.log_path.open("a") as log:
            log.write(json.dumps(asdict(entry)) + "\n")


def resumed_progress(
    state: dict[str, Any], epochs: int, optimizer: torch.optim.Optimizer, schedule: Any
) -> Progress:
    """Load a checkpoint's optimiser and schedule state; the progress it records (checked)."""
    load_training_state(optimizer, schedule, state["optimizer"], state["schedule"])
    best = state["best_score"]
    return Progress(
        bounded_int(state["epoch"], "epoch", 0, epochs),
        float("-inf") if best == float("-inf") else bounded_float(best, "best_score", -1e9, 1e9),
    )


def save_torch(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> Any:
    """A linear warm-up over ``warmup_steps`` then a cosine decay to zero at ``total_steps``."""
    total_steps = max(1, total_steps)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, total_steps - warmup_steps))
    if warmup_steps <= 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps
    )
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def optimiser_step(
    loss: torch.Tensor, optimizer: torch.optim.Optimizer, schedule: Any, parameters: Iterable[torch.Tensor]
) -> None:
    """Back-propagate ``loss``, clip the gradients' norm, step the optimiser and the schedule."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(parameters), GRADIENT_CLIP)
    optimizer.step()
    schedule.step()


def run_epochs(
    run: RunFolder,
    progress: Progress,
    epochs: int,
    steps_per_epoch: Callable[[], int],
    train_epoch: Callable[[int], dict[str, float]],
    validate: Validator,
    keep_best: Callable[[int, Validation], None],
    state: Callable[[], dict[str, Any]],
    on_epoch: Callable[[EpochLog], None] | None,
) -> Progress:
    """The loop every trainer runs: per epoch, train (``train_epoch(epoch)`` -> mean loss terms),
    validate, keep the weights if the score is the best yet (``keep_best(epoch, validation)``),
    write the checkpoint (``state()``) and the log line."""
    for epoch in range(progress.epoch, epochs):
        started = time.perf_counter()
        loss = train_epoch(epoch)
        validation = validate()
        best = progress.best_score
        if validation.score > best:
            best = validation.score
            keep_best(epoch + 1, validation)
        progress = Progress(epoch + 1, best)
        run.save_checkpoint(state(), progress)
        entry = EpochLog(
            epoch + 1,
            (epoch + 1) * steps_per_epoch(),
            round(time.perf_counter() - started, 2),
            loss,
            validation.metrics,
            validation.details,
        )
        run.log(entry)
        if on_epoch is not None:
            on_epoch(entry)
    return progress
