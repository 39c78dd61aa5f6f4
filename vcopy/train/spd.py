"""Training SPD from synthesised copies: ``train_spd(dataset, out_dir, config)``.

The data is a copy dataset made by ``vcopy.synth.benchmark.generate`` (only its ``train`` split is
read, ``vcopy.train.data``); the maps are ``vcopy.train.maps.MapSampler``'s. A fifth of the
train-split queries is held out; after each epoch their maps against their top retrieval
candidates are localized with the live network and scored with the benchmark's segment-level
metric (``SpdValidator``), and the score threshold that maximises segment F1 is kept with the
weights of the best epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vcopy.errors import VcopyError
from vcopy.evaluate import Prediction, Scores, score
from vcopy.features import create_descriptor
from vcopy.files import write_atomically
from vcopy.groundtruth import TrueQuery
from vcopy.keyframes import grid_map, span_ends
from vcopy.localize.base import MapInput, Segment
from vcopy.localize.spd import CONTRAST_RANGE, SimilarityPatternDetector, render_maps
from vcopy.localize.spd_model import WEIGHTS_FORMAT, TorchNetwork, build_model, export_onnx, model_config
from vcopy.localize.spd_settings import SpdSettings
from vcopy.train import loop
from vcopy.train.config import TrainConfig
from vcopy.train.data import (
    TRAIN_SPLIT,
    Piece,
    TrainingData,
    contrast,
    load_training_data,
    part,
    validation_truth,
)
from vcopy.train.maps import MapSampler, box_targets, canvas_plans
from vcopy.video import SamplingConfig

THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)  # score thresholds the validation tries
LOSS_GAINS = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)  # ultralytics' detection loss terms (dfl: sides)


def detection_loss(model: torch.nn.Module) -> Any:
    """ultralytics' YOLOv8 detection loss for ``model`` (box IoU, class BCE, side regression)."""
    from ultralytics.utils.loss import v8DetectionLoss

    model.args = LOSS_GAINS  # type: ignore[assignment]
    return v8DetectionLoss(model)


def spd_settings(config: TrainConfig, descriptor: str, threshold: float) -> SpdSettings:
    return SpdSettings(config.input_size, config.max_aspect, CONTRAST_RANGE, threshold, descriptor)


def spd_weights(
    model: torch.nn.Module, config: TrainConfig, descriptor: str, threshold: float, extra: dict[str, Any]
) -> dict[str, Any]:
    """The ``.pt`` weights file ``vcopy.localize.spd_model`` reads."""
    return {
        "format": WEIGHTS_FORMAT,
        "model_config": model_config(config.widths),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input_size": config.input_size,
        "max_aspect": config.max_aspect,
        "contrast_range": list(CONTRAST_RANGE),
        "score_threshold": threshold,
        "descriptor": descriptor,
        **extra,
    }


def save_spd(path: Path, weights: dict[str, Any]) -> None:
    """``path`` (``.pt``) and the same network as inference runs it (``.onnx`` beside it)."""
    loop.save_torch(weights, path)
    write_atomically(path.with_suffix(".onnx"), export_onnx(path))


class SpdValidator:
    """Localizes the held-out queries against their top candidates with the live network; the
    score is the segment F1 at the best of ``THRESHOLDS`` (kept in ``details``). With
    ``keyframes`` (frame vectors [n, dim] -> rows kept) references keep only their key frames and
    the maps are drawn on the full grid, as ``vcopy query`` draws them (with ``holds`` each key
    frame fills the span to the next one)."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        descriptor: str,
        data: TrainingData,
        truth: dict[str, TrueQuery],
        keyframes: Callable[[np.ndarray], np.ndarray] | None = None,
        holds: bool = False,
    ) -> None:
        self.network = TorchNetwork(model, config.device)
        self.settings = spd_settings(config, descriptor, float(THRESHOLDS.min()))
        self.data, self.truth, self.keyframes, self.holds = data, truth, keyframes, holds

    def __call__(self) -> loop.Validation:
        detector = SimilarityPatternDetector.from_network(self.network, self.settings)
        data = self.data
        found: list[tuple[str, str, list[Segment]]] = []
        for q in data.validation_queries:
            maps = [self._map(data.videos[q], data.videos[r]) for r in data.candidates[q]]
            for r, segments in zip(data.candidates[q], detector.localize_batch(maps), strict=True):
                found.append((data.sha256[q], data.sha256[r], segments))
        threshold, best = max(
            ((float(t), self._scores(found, float(t))) for t in THRESHOLDS), key=lambda x: x[1].segment_f1
        )
        metrics = {k: v for k, v in asdict(best).items() if isinstance(v, float)}
        return loop.Validation(best.segment_f1, metrics, {"score_threshold": threshold})

    def _scores(self, found: list[tuple[str, str, list[Segment]]], threshold: float) -> Scores:
        predictions = {}
        for q, r, segments in found:
            kept = [s for s in segments if s.score >= threshold]
            if kept:
                boxes = [
                    (s.query_start_s, s.query_end_s, s.reference_start_s, s.reference_end_s) for s in kept
                ]
                predictions[(q, r)] = Prediction(max(s.score for s in kept), boxes)
        return score(self.truth, predictions)

    def _map(self, query: Piece, reference: Piece) -> MapInput:
        if self.keyframes is None:
            return contrast([query], [reference]), query.times_s, reference.times_s
        rows = self.keyframes(reference.vectors[0])
        kept = contrast([query], [part(reference, rows)])
        fps = SamplingConfig().sample_fps
        ends = span_ends(reference.times_s, rows, fps, self.holds)
        return grid_map(kept, query.times_s, reference.times_s[rows], fps, ends)


def train_spd(
    gt_path: Path,
    out_dir: Path,
    config: TrainConfig,
    resume: bool = False,
    hooks: loop.Hooks = loop.NO_HOOKS,
) -> Path:
    """Train SPD on the train split of the dataset at ``gt_path``; returns the path of the best
    weights (``out_dir/spd.pt``; ``spd.onnx`` beside it is the same network as inference runs it).
    ``out_dir`` also gets ``last.pt`` (checkpoint, for ``resume``), ``train-log.jsonl`` (one line
    per epoch) and the feature cache."""
    run = loop.RunFolder(out_dir, loop.settings_record(config))
    resumed = run.checkpoint_to_resume(resume)  # checked before any work
    run.start(resumed)
    # data
    descriptor = create_descriptor(config.descriptor, device=config.device)
    data = load_training_data(gt_path, out_dir / "features", descriptor, config.split, hooks.on_video)
    # model
    model = build_model(model_config(config.widths)).to(config.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=5e-4)
    total = config.epochs * config.steps_per_epoch
    schedule = loop.warmup_cosine(optimizer, total, min(200, total // 10))
    progress = loop.Progress()
    if resumed is not None:
        try:
            model.load_state_dict(resumed["model"])
            progress = loop.resumed_progress(resumed, config.epochs, optimizer, schedule)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise VcopyError(f"{run.last}: not a usable SPD training checkpoint ({exc})") from None
    # loss
    criterion = detection_loss(model)

    # step
    def train_epoch(epoch: int) -> dict[str, float]:
        sampler = MapSampler(data, config.maps, np.random.default_rng([config.seed, epoch]))
        torch.manual_seed(config.seed * 1000 + epoch)
        model.train()
        sums = np.zeros(3)
        for step in range(config.steps_per_epoch):
            samples = [sampler.sample() for _ in range(config.batch_size)]
            plans = canvas_plans([m.shape for m, _ in samples], config.input_size, config.max_aspect)
            images = torch.from_numpy(render_maps([m for m, _ in samples], plans)).to(config.device)
            loss, items = criterion(model(images), box_targets(plans, [b for _, b in samples], config.device))
            loop.optimiser_step(loss.sum(), optimizer, schedule, model.parameters())
            sums += np.array([float(v) for v in items.values()])
            if hooks.on_step is not None:
                hooks.on_step(epoch * config.steps_per_epoch + step + 1, total)
        return dict(zip(criterion.loss_names, (sums / config.steps_per_epoch).round(4).tolist(), strict=True))

    # evaluation
    validate = SpdValidator(model, config, descriptor.name, data, validation_truth(gt_path, data))
    provenance = {
        "train_config": run.settings,
        "command": hooks.command,
        "dataset": {"generator": data.generator, "split": TRAIN_SPLIT},
    }

    # checkpoint
    def keep_best(epoch: int, validation: loop.Validation) -> None:
        record = {**provenance, "epoch": epoch, "validation": validation.metrics}
        threshold = validation.details["score_threshold"]
        save_spd(out_dir / "spd.pt", spd_weights(model, config, descriptor.name, threshold, record))

    def state() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
        }

    if resumed is None:
        run.save_checkpoint(state(), progress)  # the untrained start: a valid checkpoint to resume from
    loop.run_epochs(
        run,
        progress,
        config.epochs,
        lambda: config.steps_per_epoch,
        train_epoch,
        validate,
        keep_best,
        state,
        hooks.on_epoch,
    )
    return out_dir / "spd.pt"
