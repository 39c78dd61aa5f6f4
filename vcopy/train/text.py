"""``vcopy train text``: train the video-text model (``vcopy.text.model``) on captioned videos.

Videos are indexed into a library first (unchanged ones are never decoded again) and training reads
what the library stores: each frame's descriptor and top ImageNet classes. Captions are embedded
once by the frozen MiniLM (token embeddings). Videos are split into train and held-out parts
(captions follow their video); each epoch sees every training video once, with one of its captions,
in batches of distinct videos. After each epoch the held-out captions rank the held-out videos
(R@1/5/10, R@sum, median and mean rank); the best epoch is kept.

The loss is symmetric InfoNCE (METHOD.md §2). The published extra terms (NegNCE, DMAE, TPM-CL,
HSCL) did not beat it on our fine-grained set; they live in ``examples/text_losses.py``, a
``TextTrainer`` subclass that adds them through ``loss_terms``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vcopy.checks import bounded_float, bounded_int, known_keys
from vcopy.errors import VcopyError
from vcopy.indexing import index_videos
from vcopy.library import Library
from vcopy.pipeline import PipelineSpec
from vcopy.text.captions import Caption
from vcopy.text.encoder import TextEncoder
from vcopy.text.metrics import RetrievalMetrics, retrieval_metrics
from vcopy.text.model import ModelConfig, VideoTextModel, masked_mean, save_model, write_onnx
from vcopy.text.store import frame_layouts
from vcopy.text.zeroshot import zero_shot_space
from vcopy.train import loop
from vcopy.train.config import TextTrainConfig

NEIGHBOURS_PER_SEED = 3  # with caption-neighbour batches, videos come in groups of 1 + this


@dataclass
class CaptionedData:
    """Padded tensors of the videos and captions a run trains and validates on."""

    paths: list[str]  # per video
    descriptors: torch.Tensor  # [V, N, d]
    layouts: torch.Tensor  # [V, N, L]
    zeroshot: torch.Tensor  # [V, N, D]
    frame_mask: torch.Tensor  # [V, N] real frames
    caption_video: torch.Tensor  # [C] the video of each caption
    caption_texts: list[str]
    tokens: torch.Tensor  # [C, T, D] MiniLM token embeddings (their mean is the sentence embedding)
    token_mask: torch.Tensor  # [C, T] real tokens (special tokens included)
    token_words: list[list[str]]  # [C][T] the word each token belongs to ("" for special tokens)
    train_videos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    held_out_videos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def word_of(text: str) -> str:
    return re.sub(r"[^a-z0-9']", "", text.lower())


def caption_tokens(encoder: TextEncoder, texts: Sequence[str]) -> list[tuple[np.ndarray, list[str]]]:
    """Per text: MiniLM's token embeddings [T, D] and the word each token belongs to ("" for
    special tokens; a word split into pieces is named on each piece)."""
    return [
        (t.embeddings, ["" if span is None else word_of(text[span[0] : span[1]]) for span in t.word_spans])
        for text, t in zip(texts, encoder.tokens(texts), strict=True)
    ]


def load_captioned_data(
    library: Library,
    video_paths: dict[str, Path],
    captions: Sequence[Caption],
    encoder: TextEncoder,
    config: TextTrainConfig,
) -> CaptionedData:
    """Frames (from the library) and caption tokens of every captioned video the library holds,
    split into train and held-out videos."""
    space = zero_shot_space(library, encoder)
    by_path = {v.path: v for v in library.videos()}
    video_rows: dict[str, int] = {}
    descriptors: list[np.ndarray] = []
    layouts: list[np.ndarray] = []
    zeroshot: list[np.ndarray] = []
    for video_id, path in video_paths.items():
        video = by_path.get(str(path.resolve()))
        frame_vectors = None if video is None else space.library_frames(library, video.id)
        stored_layouts = None if video is None else frame_layouts(library, video.id)
        if video is None or frame_vectors is None or stored_layouts is None:
            continue
        vectors, _ = library.frames_of(video.id)
        keep = np.unique(
            np.linspace(0, len(vectors) - 1, min(len(vectors), config.max_frames)).round().astype(int)
        )
        video_rows[video_id] = len(descriptors)
        descriptors.append(vectors[keep])
        layouts.append(stored_layouts[keep])
        zeroshot.append(frame_vectors[keep])
    kept = [c for c in captions if c.video in video_rows]
    if len(video_rows) < 4:
        raise VcopyError(f"only {len(video_rows)} captioned videos could be read; at least 4 are needed")
    tokenised = caption_tokens(encoder, [c.text for c in kept])
    n_frames = max(len(d) for d in descriptors)
    n_tokens = max(len(t) for t, _ in tokenised)
    data = CaptionedData(
        paths=[str(video_paths[v]) for v in video_rows],
        descriptors=_padded([torch.from_numpy(d) for d in descriptors], n_frames),
        layouts=_padded([torch.from_numpy(x) for x in layouts], n_frames),
        zeroshot=_padded([torch.from_numpy(z.astype(np.float32)) for z in zeroshot], n_frames),
        frame_mask=_mask([len(d) for d in descriptors], n_frames),
        caption_video=torch.tensor([video_rows[c.video] for c in kept]),
        caption_texts=[c.text for c in kept],
        tokens=_padded([torch.from_numpy(t) for t, _ in tokenised], n_tokens),
        token_mask=_mask([len(t) for t, _ in tokenised], n_tokens),
        token_words=[words for _, words in tokenised],
    )
    order = np.random.default_rng(config.split_seed).permutation(len(video_rows))
    n_held = max(2, round(len(order) * config.validation_fraction))
    data.held_out_videos, data.train_videos = np.sort(order[:n_held]), np.sort(order[n_held:])
    return data


def _padded(items: Sequence[torch.Tensor], length: int) -> torch.Tensor:
    out = torch.zeros(len(items), length, items[0].shape[-1])
    for i, x in enumerate(items):
        out[i, : len(x)] = x
    return out


def _mask(lengths: Sequence[int], length: int) -> torch.Tensor:
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]


@torch.no_grad()
def retrieval_scores(
    model: VideoTextModel, data: CaptionedData, videos: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scores [captions, videos] of ``videos``' captions against ``videos``, and the column of
    each caption's own video."""
    model.eval()
    index = torch.from_numpy(videos)
    frames = model.video.frames(
        data.descriptors[index], data.zeroshot[index], data.frame_mask[index], data.layouts[index]
    )
    video = model.video.pool(frames, data.frame_mask[index])
    column = {int(v): i for i, v in enumerate(videos)}
    captions = [i for i, v in enumerate(data.caption_video.tolist()) if v in column]
    c = torch.tensor(captions)
    text = model.sentences(data.tokens[c], data.token_mask[c])
    positive = np.array([column[int(data.caption_video[i])] for i in captions])
    return (text @ video.T).numpy(), positive


def evaluate(model: VideoTextModel, data: CaptionedData, videos: np.ndarray) -> RetrievalMetrics:
    """Text->video retrieval of ``videos``' captions among ``videos``."""
    return retrieval_metrics(*retrieval_scores(model, data, videos))


class TextTrainer:
    """One training run's model, temperature and optimiser; ``loss_terms`` is the loss (a subclass
    may add terms and ``extra_modules`` with their own parameters)."""

    def __init__(self, config: TextTrainConfig, data: CaptionedData) -> None:
        self.config, self.data = config, data
        self.model = VideoTextModel(
            ModelConfig(
                descriptor_dim=data.descriptors.shape[-1],
                layout_dim=data.layouts.shape[-1] if config.layouts else 0,
                text_dim=data.tokens.shape[-1],
                temporal=config.temporal,
                max_frames=config.max_frames,
                text_head=config.text_head,
            )
        )
        self.extra_modules = self.make_extra_modules()
        learned = config.temperature is None
        start = 0.05 if config.temperature is None else config.temperature
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / start)), requires_grad=learned)
        self.parameters = [*self.model.parameters(), *self.extra_modules.parameters()] + (
            [self.log_scale] if learned else []
        )
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.learning_rate, weight_decay=0.01)
        self.steps_per_epoch = math.ceil(len(data.train_videos) / config.batch_size)
        total = config.epochs * self.steps_per_epoch
        self.schedule = loop.warmup_cosine(self.optimizer, total, total // 20)
        self.step = 0
        self._caption_neighbours: np.ndarray | None = None

    def make_extra_modules(self) -> torch.nn.ModuleDict:
        """Modules a subclass's loss terms train beside the model (none here)."""
        return torch.nn.ModuleDict()

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "extra_modules": self.extra_modules.state_dict(),
            "log_scale": self.log_scale.detach(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "step": self.step,
        }

    def load_state(self, state: dict[str, Any], epochs: int) -> loop.Progress:
        """Continue from a checkpoint of a run with the same settings (checked: a checkpoint is
        data); the progress it records."""
        self.model.load_state_dict(state["model"])
        self.extra_modules.load_state_dict(state["extra_modules"])
        if not isinstance(state["log_scale"], torch.Tensor) or state["log_scale"].shape != ():
            raise ValueError("log_scale is not one number")
        with torch.no_grad():
            self.log_scale.copy_(state["log_scale"])
        self.step = bounded_int(state["step"], "step", 0, 1 << 40)
        return loop.resumed_progress(state, epochs, self.optimizer, self.schedule)

    def epoch(self, epoch: int, on_step: Callable[[int, int], None] | None = None) -> dict[str, float]:
        """One pass over the training videos; the mean of each loss term."""
        cfg, data = self.config, self.data
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1000 + epoch)
        self.model.train()
        order = (
            self._neighbour_order(rng)
            if cfg.caption_neighbour_batches
            else rng.permutation(data.train_videos)
        )
        captions_of: dict[int, list[int]] = {}
        for i, v in enumerate(data.caption_video.tolist()):
            captions_of.setdefault(v, []).append(i)
        sums: Counter[str] = Counter()
        for start in range(0, len(order), cfg.batch_size):
            videos = order[start : start + cfg.batch_size]
            if len(videos) < 2:
                continue
            captions = torch.tensor(
                [captions_of[int(v)][rng.integers(len(captions_of[int(v)]))] for v in videos]
            )
            terms = self.loss_terms(self.batch(torch.from_numpy(videos), captions))
            loop.optimiser_step(
                sum(terms.values(), torch.zeros(())), self.optimizer, self.schedule, self.parameters
            )
            with torch.no_grad():
                self.log_scale.clamp_(max=math.log(100))
            self.step += 1
            sums.update({k: float(v.detach()) for k, v in terms.items()})
            if on_step is not None:
                on_step(self.step, cfg.epochs * self.steps_per_epoch)
        n = max(1, math.ceil(len(order) / cfg.batch_size))
        return {k: round(v / n, 4) for k, v in sums.items()}

    def _neighbour_order(self, rng: np.random.Generator) -> np.ndarray:
        """The training videos in an order where each one is followed by the videos whose captions
        read most like its own (up to ``NEIGHBOURS_PER_SEED``), so batches hold hard negatives."""
        videos = self.data.train_videos
        if self._caption_neighbours is None:
            sentences = F.normalize(masked_mean(self.data.tokens, self.data.token_mask), dim=-1)
            centre = torch.zeros(len(self.data.paths), sentences.shape[-1]).index_add_(
                0, self.data.caption_video, sentences
            )
            centre = F.normalize(centre[torch.from_numpy(videos)], dim=-1)
            similarity = (centre @ centre.T).fill_diagonal_(-2.0)
            self._caption_neighbours = similarity.argsort(dim=1, descending=True).numpy()
        used = np.zeros(len(videos), dtype=bool)
        order: list[int] = []
        for seed in rng.permutation(len(videos)):
            if used[seed]:
                continue
            neighbours = [int(n) for n in self._caption_neighbours[seed] if not used[n]]
            group = [int(seed), *neighbours[:NEIGHBOURS_PER_SEED]]
            used[group] = True
            order += group
        return videos[np.array(order)]

    def batch(self, videos: torch.Tensor, captions: torch.Tensor) -> Batch:
        """The model's outputs on a batch of videos and one caption of each."""
        data, model = self.data, self.model
        frame_mask = data.frame_mask[videos]
        frames = model.video.frames(
            data.descriptors[videos], data.zeroshot[videos], frame_mask, data.layouts[videos]
        )
        token_mask = data.token_mask[captions]
        tokens, text = model.texts(data.tokens[captions], token_mask)
        video = model.video.pool(frames, frame_mask)
        return Batch(
            videos, captions, frames, frame_mask, video, tokens, token_mask, text, self.log_scale.exp()
        )

    def loss_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The loss, by term: symmetric InfoNCE."""
        return {"infonce": info_nce(batch.similarity * batch.scale)}


@dataclass(frozen=True)
class Batch:
    """A training batch through the model (rows: captions i of videos i)."""

    videos: torch.Tensor  # [B] video rows of ``CaptionedData``
    captions: torch.Tensor  # [B] caption rows
    frames: torch.Tensor  # [B, N, D] frame embeddings
    frame_mask: torch.Tensor  # [B, N]
    video: torch.Tensor  # [B, D] pooled video embeddings
    tokens: torch.Tensor  # [B, T, D] token embeddings
    token_mask: torch.Tensor  # [B, T]
    text: torch.Tensor  # [B, D] sentence embeddings
    scale: torch.Tensor  # 1 / temperature

    @property
    def similarity(self) -> torch.Tensor:
        """[B, B] text x video cosine similarity."""
        return self.text @ self.video.T


def info_nce(logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over ``logits`` [B, B] (similarity / temperature), averaged over the
    text->video and video->text directions; ``weights`` [B] weight each pair."""
    target = torch.arange(len(logits), device=logits.device)
    per_pair = (
        F.cross_entropy(logits, target, reduction="none")
        + F.cross_entropy(logits.T, target, reduction="none")
    ) / 2
    if weights is None:
        return per_pair.mean()
    return (per_pair * weights).sum() / weights.sum()


class RetrievalValidator:
    """Text->video retrieval of the held-out videos' captions; the score is R@sum."""

    def __init__(self, model: VideoTextModel, data: CaptionedData) -> None:
        self.model, self.data = model, data

    def __call__(self) -> loop.Validation:
        metrics = evaluate(self.model, self.data, self.data.held_out_videos)
        return loop.Validation(metrics.rsum, {**asdict(metrics), "rsum": metrics.rsum})


def train_text(
    data: CaptionedData,
    out_dir: Path,
    config: TextTrainConfig,
    record: dict[str, Any],
    resume: bool = False,
    hooks: loop.Hooks = loop.NO_HOOKS,
    trainer_class: type[TextTrainer] = TextTrainer,
) -> tuple[Path, dict[str, float]]:
    """Train on ``data``; writes ``out_dir/text-model.pt`` (the epoch with the best held-out
    R@sum) and ``text-model.onnx`` (the same, as search runs it), ``last.pt`` (for ``resume``) and
    ``train-log.jsonl``. ``record`` (how the data was made, the command) is saved with the
    weights. Returns the best weights and their metrics."""
    run = loop.RunFolder(out_dir, loop.settings_record(config))
    resumed = run.checkpoint_to_resume(resume)
    run.start(resumed)
    torch.manual_seed(config.seed)
    trainer = trainer_class(config, data)  # data, model and loss
    validate = RetrievalValidator(trainer.model, data)  # evaluation
    best = out_dir / "text-model.pt"
    best_metrics = validate().metrics  # epoch 0: zero-shot
    progress = loop.Progress()

    def keep_best(epoch: int, validation: loop.Validation) -> None:  # checkpoint
        nonlocal best_metrics
        best_metrics = validation.metrics
        save_model(
            trainer.model,
            best,
            {**record, "train_config": asdict(config), "epoch": epoch, "validation": validation.metrics},
        )

    if resumed is not None:
        try:
            progress = trainer.load_state(resumed, config.epochs)
            best_metrics = known_metrics(resumed["best"])
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise VcopyError(f"{run.last}: not a usable text-training checkpoint ({exc})") from None
    else:
        keep_best(0, loop.Validation(best_metrics["rsum"], best_metrics))
        progress = loop.Progress(0, best_metrics["rsum"])
        run.save_checkpoint({**trainer.state(), "best": best_metrics}, progress)
    loop.run_epochs(
        run,
        progress,
        config.epochs,
        lambda: trainer.steps_per_epoch,
        lambda epoch: trainer.epoch(epoch, hooks.on_step),
        validate,
        keep_best,
        lambda: {**trainer.state(), "best": best_metrics},
        hooks.on_epoch,
    )
    write_onnx(best)  # the model as search runs it
    return best, best_metrics


def known_metrics(record: Any) -> dict[str, float]:
    """A checkpoint's best metrics, checked to be the retrieval metrics as numbers."""
    names = {f.name for f in dataclasses.fields(RetrievalMetrics)} | {"rsum"}
    return {k: bounded_float(v, k, 0, 1e9) for k, v in known_keys(record, "best", names).items()}


@dataclass(frozen=True)
class PreparedData:
    data: CaptionedData
    missing: list[str]  # captioned video ids with no file
    failed: list[tuple[str, str]]  # files that could not be indexed, and why
    descriptor: str
    text_encoder_sha256: str


def prepare_data(
    captions_file: Path,
    videos_dir: Path,
    library_root: Path,
    config: TextTrainConfig,
    on_video: Callable[[str, str], None] | None = None,
) -> PreparedData:
    """Read the captions, index their videos into the library at ``library_root`` (unchanged
    ones are skipped, never decoded again) and load what training needs."""
    from vcopy.features import create_descriptor
    from vcopy.text.captions import read_captions, resolve_videos

    captions = read_captions(captions_file)
    found, missing = resolve_videos(captions, videos_dir)
    if not found:
        raise VcopyError(
            f"{videos_dir}: none of the {len(set(c.video for c in captions))} captioned videos is there"
        )
    descriptor = create_descriptor(config.descriptor, device=config.device)
    with Library.open(library_root, write=True, spec=PipelineSpec.of(descriptor)) as library:
        summary = index_videos(library, sorted(set(found.values())), descriptor, on_video=on_video)
        encoder = TextEncoder(device=config.device)
        data = load_captioned_data(library, found, captions, encoder, config)
    return PreparedData(data, missing, summary.failed, descriptor.name, encoder.sha256)
