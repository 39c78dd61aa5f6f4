"""Joint SKE + SPD training from unlabeled videos: ``train_copy(dataset, out_dir, config)``.

The maps are SPD's training maps (``vcopy.localize.spd_train.MapSampler``: synthesised copies from
the benchmark generator's train split, composites, chained long copies, faint copies), at the
sampling rate, with the frame vectors along each axis. Only library videos are thinned (a suspect's
frames are never stored), so the key-frame axis is the reference axis. Selection is not
differentiable, so, as published: the key-frame network gives each reference frame a probability
``p``; the mask is ``m = min(1, key(p) + m_uniform)`` (``key`` is ``p >= threshold`` in the
forward pass with ``p``'s gradient, a straight-through estimate, so that the map SPD sees is the
one it will see at inference; ``m_uniform`` keeps one frame in ``uniform_period``, from the first);
the dense map becomes ``background + (map - background) * m`` along the reference axis (frames not
kept look like unrelated footage, as ``vcopy.keyframes.on_grid`` draws them); it is drawn
differentiably (``draw_maps``, the same drawing as ``vcopy.localize.spd.render_maps``) and goes
through SPD, whose detection loss flows back into the key-frame network. A budget term
``budget_weight * ((rate - key_rate) / key_rate)^2`` per map (``rate``: the mean of ``min(1, p +
m_uniform)`` along its reference axis) holds the kept share near ``key_rate``. With
``frozen_spd`` SPD keeps its initial weights (SKE trained as a separate stage against a fixed
detector).

Each epoch the held-out queries are localized against references thinned to their key frames
(``spd_train.validate`` with the live networks); the epoch with the best segment F1 is kept:
``out_dir/ske.pt`` and ``ske.onnx`` (key frames), ``spd.pt`` and ``spd.onnx`` (SPD, with its
calibrated threshold).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vcopy.checks import bounded_float, bounded_int, load_training_state
from vcopy.errors import MAX_CHECKPOINT_BYTES, VcopyError, read_torch_file
from vcopy.files import write_atomically
from vcopy.keyframes.model import KeyFrameNet, NetConfig, export_onnx, weights_record
from vcopy.keyframes.ske import SkeSettings, keep_rows, uniform_rows
from vcopy.localize.spd import BACKGROUND_CONTRAST, CONTRAST_RANGE, AxisScale, Rendering
from vcopy.localize.spd_model import TorchNetwork, build_model, checked_weights, load_weights, model_config
from vcopy.localize.spd_model import export_onnx as export_spd_onnx
from vcopy.localize.spd_train import (
    MapSampler,
    TrainConfig,
    box_targets,
    canvas_plans,
    load_training_data,
    read_dataset,
    save_torch,
    spd_weights,
    validate,
    validation_truth,
)

CHECKPOINT_FORMAT = "vcopy.ske-train/1"


@dataclass(frozen=True)
class CopyTrainConfig:
    """What ``vcopy train copy`` trains, and how (the maps and SPD's settings: ``spd``)."""

    spd: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=12))
    init_spd: Path | None = None  # SPD weights to start from; None: the shipped ones
    key_rate: float = 0.2  # target share of frames kept (uniform ones included)
    uniform_period: int = 10  # m_uniform: one frame in this many is always kept
    threshold: float = 0.5  # a frame this likely a key frame is kept
    budget_weight: float = 1.0
    key_learning_rate: float = 3e-3
    frozen_spd: bool = False  # train the key frames alone, against SPD's initial weights
    hidden: int = 48


@dataclass(frozen=True)
class CopyEpochLog:
    epoch: int
    steps: int
    seconds: float
    loss: dict[str, float]
    key_rate: float  # share of frames kept on the training maps (hard selection)
    validation: dict[str, float]
    validation_key_rate: float  # share of the held-out videos' frames kept
    score_threshold: float


def draw_axis(x: torch.Tensor, scale: AxisScale, dim: int) -> torch.Tensor:
    """``AxisScale.draw`` in torch (gradients reach the frames each pixel shows)."""
    if scale.frames_per_pixel <= 1:
        rows = torch.arange(scale.pixels, device=x.device) * scale.frames // scale.pixels
        return x.index_select(dim, rows)
    k = int(scale.frames_per_pixel)
    pad = scale.pixels * k - scale.frames
    moved = x.movedim(dim, -1)
    if pad:
        moved = torch.nn.functional.pad(moved, (0, pad), value=-math.inf)
    pooled = moved.reshape(*moved.shape[:-1], scale.pixels, k).amax(-1)
    return pooled.movedim(-1, dim)


def draw_maps(
    maps: Sequence[torch.Tensor],
    renderings: Sequence[Rendering],
    contrast_range: tuple[float, float] = CONTRAST_RANGE,
) -> torch.Tensor:
    """``vcopy.localize.spd.render_maps`` in torch: [B, 1, H, W] images of contrast maps."""
    lo, hi = contrast_range
    height = max(r.canvas[0] for r in renderings)
    width = max(r.canvas[1] for r in renderings)
    images = maps[0].new_zeros((len(maps), 1, height, width))
    for i, (m, r) in enumerate(zip(maps, renderings, strict=True)):
        image = draw_axis(draw_axis(m.T if r.transposed else m, r.y, 0), r.x, 1)
        median = image.detach().flatten().median()  # the lower median, as numpy's partition gives
        shifted = image - (median - BACKGROUND_CONTRAST + lo)
        images[i, 0, : r.y.pixels, : r.x.pixels] = torch.clamp(shifted / (hi - lo), 0.0, 1.0)
    return images


def key_mask(p: torch.Tensor, config: CopyTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(the mask SPD sees: hard selection with ``p``'s gradient, plus the uniform grid; the soft
    mask ``min(1, p + m_uniform)`` whose mean the budget holds)."""
    uniform = torch.zeros_like(p)
    uniform[torch.from_numpy(uniform_rows(len(p), config.uniform_period)).to(p.device)] = 1.0
    hard = (p >= config.threshold).float() + p - p.detach()
    return torch.clamp(hard + uniform, max=1.0), torch.clamp(p + uniform, max=1.0)


def _batch(
    sampler: MapSampler, net: KeyFrameNet, config: CopyTrainConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, float]:
    """A batch of masked maps drawn on one canvas, their boxes, each map's soft kept share (for
    the budget: every reference sequence, short or long, is held to it) and the hard kept share."""
    cfg = config.spd
    samples = [sampler.sample_with_frames() for _ in range(cfg.batch_size)]
    plans = canvas_plans([s[0].shape for s in samples], cfg)
    masked, soft, hard = [], [], []
    for similarity, _, _, reference_frames in samples:
        frames = torch.from_numpy(reference_frames).to(cfg.device)
        mask, soft_mask = key_mask(net(frames[None])[0], config)
        soft.append(soft_mask)
        hard.append(mask.detach())
        dense = torch.from_numpy(similarity).to(cfg.device)
        masked.append(BACKGROUND_CONTRAST + (dense - BACKGROUND_CONTRAST) * mask[None, :])
    images = draw_maps(masked, plans)
    targets = box_targets(plans, [s[1] for s in samples], cfg.device)
    return images, targets, torch.stack([m.mean() for m in soft]), float(torch.cat(hard).mean())


def selector(net: KeyFrameNet, config: CopyTrainConfig) -> Callable[[np.ndarray], np.ndarray]:
    """Key-frame selection with the live network, as ``LearnedKeyFrames.select`` does it."""

    def select(vectors: np.ndarray) -> np.ndarray:
        net.eval()
        with torch.inference_mode():
            frames = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).to(
                next(net.parameters()).device
            )
            p = net(frames[None])[0].cpu().numpy()
        return keep_rows(p, config.threshold, config.uniform_period)

    return select


def _record(config: CopyTrainConfig) -> dict[str, Any]:
    record = asdict(config)
    record["spd"] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in record["spd"].items() if k != "device"
    }
    record["init_spd"] = str(config.init_spd) if config.init_spd is not None else None
    return record


def _same_run(record: Any) -> Any:
    """The settings a resumed run must share with its checkpoint (more epochs may be asked for)."""
    if not isinstance(record, dict) or not isinstance(record.get("spd"), dict):
        return None
    return {**record, "spd": {k: v for k, v in record["spd"].items() if k != "epochs"}}


def _read_checkpoint(path: Path, config: CopyTrainConfig) -> dict[str, Any]:
    """A ``last.pt`` checked as data before anything is loaded from it."""
    state = read_torch_file(path, "a joint training checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise VcopyError(f"{path}: not a joint training checkpoint (format is not {CHECKPOINT_FORMAT})")
    if _same_run(state.get("train_config")) != _same_run(_record(config)):
        raise VcopyError(f"{path}: made with other training settings; start a new run (drop --resume)")
    try:
        state["spd"] = checked_weights(state["spd"], path)
        NetConfig.from_record(state["ske"]["net_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VcopyError(f"{path}: not a usable joint training checkpoint ({exc})") from None
    return state


def train_copy(
    gt_path: Path,
    out_dir: Path,
    config: CopyTrainConfig,
    resume: bool = False,
    command: str = "",
    on_video: Callable[[str], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[CopyEpochLog], None] | None = None,
) -> Path:
    """Train key frames and SPD together on the train split of the dataset at ``gt_path``; returns
    the path of the best key-frame weights (``out_dir/ske.onnx``, ``spd.onnx`` beside it)."""
    from vcopy.features import create_descriptor
    from vcopy.localize.spd import SimilarityPatternDetector, shipped_weights_path

    cfg = config.spd
    last, log_path = out_dir / "last.pt", out_dir / "train-log.jsonl"
    resumed = _read_checkpoint(last, config) if resume and last.is_file() else None  # before any work
    init_path = config.init_spd or shipped_weights_path(cfg.descriptor).with_suffix(".pt")
    initial = load_weights(init_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = read_dataset(gt_path)
    descriptor = create_descriptor(cfg.descriptor, device=cfg.device)
    if initial["descriptor"] != descriptor.name:
        raise VcopyError(
            f"{init_path}: SPD weights for descriptor {initial['descriptor']}, not {descriptor.name}"
        )
    data = load_training_data(gt_path, truth, out_dir / "features", descriptor, cfg, on_video)
    held_out_truth = validation_truth(gt_path, data)
    model = build_model(model_config(initial["widths"]))
    model.load_state_dict(initial["state_dict"])
    model.to(cfg.device)
    cfg = replace(cfg, widths=tuple(initial["widths"]))
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)  # type: ignore[assignment]
    net = KeyFrameNet(NetConfig(dim=descriptor.dim, hidden=config.hidden)).to(cfg.device)
    from ultralytics.utils.loss import v8DetectionLoss

    criterion = v8DetectionLoss(model)
    groups = [{"params": list(net.parameters()), "lr": config.key_learning_rate}]
    if not config.frozen_spd:
        groups.append({"params": list(model.parameters()), "lr": cfg.learning_rate / 4})
    for parameter in model.parameters():
        parameter.requires_grad_(not config.frozen_spd)
    optimizer = torch.optim.AdamW(groups, weight_decay=5e-4)
    total = cfg.epochs * cfg.steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    start_epoch, best_f1, threshold = 0, -1.0, float(initial["score_threshold"])

    def settings(validation: dict[str, float], key_rate: float) -> SkeSettings:
        return SkeSettings(
            threshold=config.threshold,
            uniform_period=config.uniform_period,
            descriptor=descriptor.name,
            spd_file="spd.onnx",
            validation_segment_f1=validation.get("segment_f1"),
            validation_key_rate=key_rate,
        )

    def provenance(epoch: int) -> dict[str, Any]:
        return {
            "train_config": _record(config),
            "command": command,
            "epoch": epoch,
            "init_spd": init_path.name,
        }

    def checkpoint(epoch: int) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "ske": weights_record(net, settings({}, 0.0), {}),
            "spd": spd_weights(model, cfg, descriptor.name, threshold, provenance(epoch)),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "best_f1": best_f1,
            "epoch": epoch,
            "train_config": _record(config),
        }
        save_torch(state, last)

    if resumed is not None:
        try:
            net.load_state_dict(resumed["ske"]["state_dict"])
            model.load_state_dict(resumed["spd"]["state_dict"])
            load_training_state(optimizer, schedule, resumed["optimizer"], resumed["schedule"])
            start_epoch = bounded_int(resumed["epoch"], "epoch", 0, cfg.epochs)
            best_f1 = bounded_float(resumed["best_f1"], "best_f1", -1, 1)
            threshold = bounded_float(resumed["spd"]["score_threshold"], "score_threshold", 0, 1)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise VcopyError(f"{last}: not a usable joint training checkpoint ({exc})") from None
    else:
        log_path.unlink(missing_ok=True)
        checkpoint(0)
    detector = SimilarityPatternDetector(weights_path=init_path)
    detector.network = TorchNetwork(model, cfg.device)
    thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    select = selector(net, config)
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        sampler = MapSampler(data, cfg, np.random.default_rng([cfg.seed, epoch]))
        torch.manual_seed(cfg.seed * 1000 + epoch)
        sums, kept = np.zeros(4), []
        for step in range(cfg.steps_per_epoch):
            net.train()
            model.train()
            if config.frozen_spd:  # its batch norms keep their statistics too
                for module in model.modules():
                    if isinstance(module, torch.nn.BatchNorm2d):
                        module.eval()
            images, targets, soft_rates, hard_rate = _batch(sampler, net, config)
            loss, items = criterion(model(images), targets)
            budget = config.budget_weight * (((soft_rates - config.key_rate) / config.key_rate) ** 2).sum()
            optimizer.zero_grad(set_to_none=True)
            (loss.sum() + budget).backward()
            torch.nn.utils.clip_grad_norm_([*net.parameters(), *model.parameters()], 10.0)
            optimizer.step()
            schedule.step()
            sums += np.array([*(float(v) for v in items.values()), float(budget.detach()) / cfg.batch_size])
            kept.append(hard_rate)
            if on_step is not None:
                on_step(epoch * cfg.steps_per_epoch + step + 1, total)
        threshold, val = validate(detector, data, held_out_truth, thresholds, select)
        validation = {k: v for k, v in asdict(val).items() if isinstance(v, float)}
        held_out = [data.videos[r].vectors[0] for r in data.references]
        val_rate = sum(len(select(v)) for v in held_out) / sum(len(v) for v in held_out)
        if val.segment_f1 > best_f1:
            best_f1 = val.segment_f1
            record = {**provenance(epoch + 1), "validation": validation}
            ske_settings = settings(validation, val_rate)
            save_torch(weights_record(net, ske_settings, record), out_dir / "ske.pt")
            write_atomically(out_dir / "ske.onnx", export_onnx(net, ske_settings))
            save_torch(spd_weights(model, cfg, descriptor.name, threshold, record), out_dir / "spd.pt")
            write_atomically(out_dir / "spd.onnx", export_spd_onnx(out_dir / "spd.pt"))
        checkpoint(epoch + 1)
        names = [*criterion.loss_names, "budget"]
        entry = CopyEpochLog(
            epoch + 1,
            (epoch + 1) * cfg.steps_per_epoch,
            time.perf_counter() - started,
            dict(zip(names, (sums / cfg.steps_per_epoch).round(4).tolist(), strict=True)),
            float(np.mean(kept)),
            validation,
            val_rate,
            threshold,
        )
        with log_path.open("a") as log:
            log.write(json.dumps(asdict(entry)) + "\n")
        if on_epoch is not None:
            on_epoch(entry)
    return out_dir / "ske.onnx"
