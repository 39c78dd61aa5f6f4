"""Joint SKE + SPD training from unlabeled videos: ``train_copy(dataset, out_dir, config)``.

The maps are SPD's training maps (``vcopy.train.maps.MapSampler``) with the frame vectors along
each axis. Only library videos are thinned (a suspect's frames are never stored), so the key-frame
axis is the reference axis. Selection is not differentiable, so, as published: the key-frame
network gives each reference frame a probability ``p``; frames with ``p >= threshold`` are kept,
and one frame in ``uniform_period`` from the first (``m_uniform``); each kept frame then fills the
columns of the span it stands for, up to the next kept frame ("hold", as ``vcopy query`` draws a
key-frame library's maps), with a straight-through gradient of the soft hold (``held_map``), so
dropping a frame that looks like its key frame costs SPD nothing. The map is drawn differentiably
(``draw_maps``) and goes through SPD, whose detection loss flows back into the key-frame network.
A budget term ``budget_weight * batch * ((rate - key_rate) / key_rate)^2`` (``rate``: the mean of
``min(1, p + m_uniform)`` over every reference frame of the batch) holds the kept share near
``key_rate`` over the batch, so static footage can give up frames that fast footage keeps. With
``frozen_spd`` SPD keeps its initial weights (SKE trained as a separate stage against a fixed
detector).

Each epoch the held-out queries are localized against references thinned to their key frames
(``SpdValidator`` with the live networks); the epoch with the best segment F1 is kept:
``out_dir/ske.pt`` and ``ske.onnx`` (key frames), ``spd.pt`` and ``spd.onnx`` (SPD, with its
calibrated threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcopy.errors import VcopyError
from vcopy.features import create_descriptor
from vcopy.files import write_atomically
from vcopy.keyframes.model import KeyFrameNet, NetConfig, export_onnx, weights_record
from vcopy.keyframes.ske import SkeSettings, keep_rows, uniform_rows
from vcopy.localize.spd import shipped_weights_path
from vcopy.localize.spd_model import build_model, load_weights, model_config
from vcopy.train import loop
from vcopy.train.config import CopyTrainConfig
from vcopy.train.data import TrainingData, load_training_data, validation_truth
from vcopy.train.maps import MapSampler, box_targets, canvas_plans, draw_maps
from vcopy.train.spd import SpdValidator, detection_loss, save_spd, spd_weights


def held_map(
    dense: torch.Tensor, p: torch.Tensor, config: CopyTrainConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the map SPD sees, the hard mask, the soft mask ``min(1, p + m_uniform)`` whose mean the
    budget holds) of a dense map [rows, cols] whose reference frames have key-frame probabilities
    ``p`` [cols].

    Forward: frames with ``p >= threshold`` and the uniform grid are kept, and every column shows
    its last kept frame's column (a key frame fills its span, as ``vcopy.keyframes.grid_map`` draws
    it). Backward, the soft hold ``H_j = m_j C_j + (1 - m_j) H_{j-1}`` differentiated at the hard
    mask: ``p_j`` moves every column from ``j`` to the next kept frame by ``C_j - H_{j-1}``, what
    keeping frame ``j`` shows instead of holding the key frame before it; so a frame that looks like
    that key frame earns nothing by being kept, and the budget drops it."""
    n = len(p)
    columns = torch.arange(n, device=p.device)
    uniform = torch.zeros_like(p)
    uniform[torch.from_numpy(uniform_rows(n, config.uniform_period)).to(p.device)] = 1.0
    kept = (p.detach() >= config.threshold) | (uniform > 0)
    owner = torch.cummax(torch.where(kept, columns, 0), 0).values  # the last kept frame <= j
    held = dense[:, owner]
    before = held[:, (columns - 1).clamp(min=0)]  # H_{j-1}
    gate = (p - p.detach()) * (1 - uniform)  # zero forward, p's gradient where p decides
    moves = torch.cumsum(gate[None, :] * (dense - before), 1)  # summed from each span's start
    start = torch.cat([moves.new_zeros(len(dense), 1), moves[:, :-1]], 1)[:, owner]
    hard = kept.float() + gate
    return held + (moves - start), hard, torch.clamp(p + uniform, max=1.0)


def selector(net: KeyFrameNet, config: CopyTrainConfig) -> Callable[[np.ndarray], np.ndarray]:
    """Key-frame selection with the live network, as ``LearnedKeyFrames.select`` does it."""

    def select(vectors: np.ndarray) -> np.ndarray:
        net.eval()
        with torch.inference_mode():
            frames = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
            p = net(frames[None].to(next(net.parameters()).device))[0].cpu().numpy()
        return keep_rows(p, config.threshold, config.uniform_period)

    return select


class KeyFrameValidator(SpdValidator):
    """``SpdValidator`` on references thinned by the live key-frame network; the details add the
    share of the held-out references' frames kept."""

    def __init__(
        self,
        net: KeyFrameNet,
        config: CopyTrainConfig,
        model: torch.nn.Module,
        descriptor: str,
        data: TrainingData,
        truth: dict[str, Any],
    ) -> None:
        super().__init__(model, config.spd, descriptor, data, truth, selector(net, config), holds=True)

    def __call__(self) -> loop.Validation:
        validation = super().__call__()
        assert self.keyframes is not None
        references = [self.data.videos[r].vectors[0] for r in self.data.references]
        kept = sum(len(self.keyframes(v)) for v in references) / sum(len(v) for v in references)
        return replace(validation, details={**validation.details, "key_rate": kept})


def train_copy(
    gt_path: Path,
    out_dir: Path,
    config: CopyTrainConfig,
    resume: bool = False,
    hooks: loop.Hooks = loop.NO_HOOKS,
) -> Path:
    """Train key frames and SPD together on the train split of the dataset at ``gt_path``; returns
    the path of the best key-frame weights (``out_dir/ske.onnx``, ``spd.onnx`` beside it)."""
    run = loop.RunFolder(out_dir, loop.settings_record(config))
    resumed = run.checkpoint_to_resume(resume)  # checked before any work
    init_path = config.init_spd or shipped_weights_path(config.spd.descriptor).with_suffix(".pt")
    initial = load_weights(init_path)
    cfg = replace(config.spd, widths=tuple(initial["widths"]))
    run.start(resumed)
    # data
    descriptor = create_descriptor(cfg.descriptor, device=cfg.device)
    if initial["descriptor"] != descriptor.name:
        raise VcopyError(
            f"{init_path}: SPD weights for descriptor {initial['descriptor']}, not {descriptor.name}"
        )
    data = load_training_data(gt_path, out_dir / "features", descriptor, cfg.split, hooks.on_video)
    # models
    model = build_model(model_config(cfg.widths))
    model.load_state_dict(initial["state_dict"])
    model.to(cfg.device).requires_grad_(not config.frozen_spd)
    net = KeyFrameNet(NetConfig(dim=descriptor.dim, hidden=config.hidden)).to(cfg.device)
    groups = [{"params": list(net.parameters()), "lr": config.key_learning_rate}]
    if not config.frozen_spd:
        groups.append({"params": list(model.parameters()), "lr": cfg.learning_rate / 4})
    optimizer = torch.optim.AdamW(groups, weight_decay=5e-4)
    total = cfg.epochs * cfg.steps_per_epoch
    schedule = loop.warmup_cosine(optimizer, total, 0)
    progress = loop.Progress()
    if resumed is not None:
        try:
            net.load_state_dict(resumed["ske"])
            model.load_state_dict(resumed["model"])
            progress = loop.resumed_progress(resumed, cfg.epochs, optimizer, schedule)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise VcopyError(f"{run.last}: not a usable joint training checkpoint ({exc})") from None
    # loss
    criterion = detection_loss(model)

    def budget(soft_masks: list[torch.Tensor]) -> torch.Tensor:
        """The kept share of the whole batch's reference frames held near ``key_rate`` (not each
        map's: static footage gives up frames, fast footage keeps them), scaled by the batch size."""
        rate = torch.cat(soft_masks).mean()
        return config.budget_weight * len(soft_masks) * ((rate - config.key_rate) / config.key_rate) ** 2

    # step
    def train_epoch(epoch: int) -> dict[str, float]:
        sampler = MapSampler(data, cfg.maps, np.random.default_rng([cfg.seed, epoch]))
        torch.manual_seed(cfg.seed * 1000 + epoch)
        sums, kept = np.zeros(4), []
        for step in range(cfg.steps_per_epoch):
            net.train()
            model.train()
            if config.frozen_spd:  # its batch norms keep their statistics too
                for module in model.modules():
                    if isinstance(module, torch.nn.BatchNorm2d):
                        module.eval()
            samples = [sampler.sample_with_frames() for _ in range(cfg.batch_size)]
            plans = canvas_plans([s[0].shape for s in samples], cfg.input_size, cfg.max_aspect)
            held, soft = [], []
            for similarity, _, _, reference_frames in samples:
                p = net(torch.from_numpy(reference_frames).to(cfg.device)[None])[0]
                drawn, mask, soft_mask = held_map(torch.from_numpy(similarity).to(cfg.device), p, config)
                held.append(drawn)
                soft.append(soft_mask)
                kept.append(float(mask.detach().mean()))
            loss, items = criterion(
                model(draw_maps(held, plans)), box_targets(plans, [s[1] for s in samples], cfg.device)
            )
            kept_budget = budget(soft)
            loop.optimiser_step(
                loss.sum() + kept_budget, optimizer, schedule, [*net.parameters(), *model.parameters()]
            )
            sums += np.array(
                [*(float(v) for v in items.values()), float(kept_budget.detach()) / cfg.batch_size]
            )
            if hooks.on_step is not None:
                hooks.on_step(epoch * cfg.steps_per_epoch + step + 1, total)
        names = [*criterion.loss_names, "budget"]
        return {
            **dict(zip(names, (sums / cfg.steps_per_epoch).round(4).tolist(), strict=True)),
            "kept": round(float(np.mean(kept)), 4),
        }

    # evaluation
    validate = KeyFrameValidator(net, config, model, descriptor.name, data, validation_truth(gt_path, data))
    provenance = {"train_config": run.settings, "command": hooks.command, "init_spd": init_path.name}

    # checkpoint
    def keep_best(epoch: int, validation: loop.Validation) -> None:
        record = {**provenance, "epoch": epoch, "validation": validation.metrics}
        settings = SkeSettings(
            threshold=config.threshold,
            uniform_period=config.uniform_period,
            descriptor=descriptor.name,
            spd_file="spd.onnx",
            holds=True,
            validation_segment_f1=validation.metrics.get("segment_f1"),
            validation_key_rate=validation.details["key_rate"],
        )
        loop.save_torch(weights_record(net, settings, record), out_dir / "ske.pt")
        write_atomically(out_dir / "ske.onnx", export_onnx(net, settings))
        threshold = validation.details["score_threshold"]
        save_spd(out_dir / "spd.pt", spd_weights(model, cfg, descriptor.name, threshold, record))

    def state() -> dict[str, Any]:
        return {
            "ske": net.state_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
        }

    if resumed is None:
        run.save_checkpoint(state(), progress)
    loop.run_epochs(
        run,
        progress,
        cfg.epochs,
        lambda: cfg.steps_per_epoch,
        train_epoch,
        validate,
        keep_best,
        state,
        hooks.on_epoch,
    )
    return out_dir / "ske.onnx"
