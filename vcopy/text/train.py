"""``vcopy train text``: train the video-text model (``vcopy.text.model``) on captioned videos.

Videos are indexed into a library first (unchanged ones are never decoded again) and training reads
what the library stores: each frame's descriptor and top ImageNet classes. Captions are embedded
once by the frozen MiniLM (token embeddings). Videos are split into train and held-out parts
(captions follow their video); each epoch sees every training video once, with one of its captions,
in batches of distinct videos. After each epoch the held-out captions rank the held-out videos
(R@1/5/10, R@sum, median and mean rank); the best epoch is kept.

The loss is symmetric InfoNCE plus, each behind a switch: NegNCE, DMAE (an InfoNCE on the
fine-grained word x frame similarity, words weighted by part of speech and rarity), TPM-CL (partial
margins on masked texts and videos) and HSCL (per-pair weights on a hard-sample curriculum). See
``vcopy.text.losses`` and METHOD.md §2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vcopy.checks import bounded_float, bounded_int, known_keys, load_training_state
from vcopy.errors import MAX_CHECKPOINT_BYTES, VcopyError, read_torch_file
from vcopy.features import DEFAULT_DESCRIPTOR
from vcopy.files import atomic_path
from vcopy.indexing import index_videos
from vcopy.library import Library
from vcopy.text import losses
from vcopy.text.captions import Caption
from vcopy.text.encoder import TextEncoder
from vcopy.text.metrics import RetrievalMetrics, retrieval_metrics
from vcopy.text.model import ModelConfig, TokenImportance, VideoTextModel, masked_mean, save_model
from vcopy.text.search import zero_shot_space
from vcopy.text.store import frame_layouts

# Words that carry little of what is visible (articles, prepositions, pronouns, auxiliaries,
# conjunctions): DMAE's offline part-of-speech heuristic gives them FUNCTION_WORD_WEIGHT.
_FUNCTION_WORD_LIST = """
a an the this that these those there here some any each every of in on at to from by with
    without into onto over under above below across along around through between behind near
    beside against about for as and or but nor so than then while it its it's they them their he him
    his she her we us our you your i me my is are was were be been being am do does did has have
    had will would can could shall should may might must not no very just also too up down out off
    again which who whom whose what when where why how"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORD_LIST.split())
FUNCTION_WORD_WEIGHT = 0.1
NEIGHBOURS_PER_SEED = 3  # with caption-neighbour batches, videos come in groups of 1 + this


@dataclass(frozen=True)
class TextTrainConfig:
    """What ``vcopy train text`` trains, and how."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    temporal: bool = False  # the video encoder's temporal transformer layer (else mean pooling only)
    text_head: bool = True  # learn a correction on top of the frozen text encoder
    layouts: bool = True  # the video encoder reads frame layouts and their changes (places, motions)
    temperature: float | None = None  # None: learned (starting at 0.05); else fixed
    # the four techniques are off by default: on the fine-grained set none beat InfoNCE alone
    # (docs/benchmarks.md)
    negnce: bool = False
    negnce_r2: float = 0.5
    dmae: bool = False
    dmae_neighbour_weight: float = 0.5
    tpm: bool = False
    tpm_mass: float = 0.6
    tpm_margin: float = 0.6
    hscl: bool = False
    caption_neighbour_batches: bool = False  # batch videos with others whose captions read alike
    hscl_increments: int = 7  # p rises by 0.15 this many times over the run (published: every 5000 steps)
    validation_fraction: float = 0.2
    split_seed: int = 0  # which videos are held out (kept apart from ``seed`` so seeds share a split)
    max_frames: int = 64
    seed: int = 0
    descriptor: str = DEFAULT_DESCRIPTOR  # registry name of the library's frame descriptor
    device: str = "cpu"

    @property
    def losses(self) -> str:
        parts = ["infonce"] + [
            n
            for n, on in (
                ("negnce", self.negnce),
                ("dmae", self.dmae),
                ("tpm", self.tpm),
                ("hscl", self.hscl),
            )
            if on
        ]
        return "+".join(parts)


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
    token_weights: torch.Tensor  # [C, T] DMAE word weights, summing to 1 (0 on special tokens)
    train_videos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    held_out_videos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass(frozen=True)
class TextEpochLog:
    epoch: int
    steps: int
    seconds: float
    loss: dict[str, float]
    validation: dict[str, float]


def word_of(text: str) -> str:
    return re.sub(r"[^a-z0-9']", "", text.lower())


def word_weights(words: Sequence[str], idf: dict[str, float]) -> np.ndarray:
    """DMAE's text-side weights: part of speech (function words down-weighted) x rarity (IDF over
    the training captions), normalised to sum 1 over the caption's words."""
    weights = np.array(
        [
            0.0
            if not w
            else (FUNCTION_WORD_WEIGHT if w in FUNCTION_WORDS else 1.0)
            * idf.get(w, max(idf.values(), default=1.0))
            for w in words
        ]
    )
    return weights / weights.sum() if weights.sum() > 0 else weights


def inverse_document_frequency(texts: Sequence[list[str]]) -> dict[str, float]:
    counts = Counter(w for words in texts for w in set(words) if w)
    n = len(texts)
    return {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in counts.items()}


def caption_tokens(encoder: TextEncoder, texts: Sequence[str]) -> list[tuple[np.ndarray, list[str]]]:
    """Per text: MiniLM's token embeddings [T, D] and the word each token belongs to ("" for
    special tokens; a word split into pieces is named on each piece)."""
    model = encoder.model
    embeddings = model.encode(
        list(texts), output_value="token_embeddings", batch_size=128, show_progress_bar=False
    )
    out = []
    for text, emb in zip(texts, embeddings, strict=True):
        encoded = model.tokenizer(
            text, truncation=True, max_length=model.max_seq_length, return_offsets_mapping=True
        )
        spans: dict[int, tuple[int, int]] = {}
        for word_id, (start, end) in zip(encoded.word_ids(), encoded["offset_mapping"], strict=True):
            if word_id is not None:
                s, e = spans.get(word_id, (start, end))
                spans[word_id] = (min(s, start), max(e, end))
        words = ["" if w is None else word_of(text[spans[w][0] : spans[w][1]]) for w in encoded.word_ids()]
        out.append((emb.detach().cpu().numpy().astype(np.float32)[: len(words)], words))
    return out


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
    idf = inverse_document_frequency([words for _, words in tokenised])
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
        token_weights=_padded(
            [torch.from_numpy(word_weights(w, idf).astype(np.float32))[:, None] for _, w in tokenised],
            n_tokens,
        )[..., 0],
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


class Trainer:
    """One training run's model, importance predictor, temperature and optimiser."""

    def __init__(self, config: TextTrainConfig, data: CaptionedData) -> None:
        self.config, self.data = config, data
        dim = data.tokens.shape[-1]
        self.model = VideoTextModel(
            ModelConfig(
                descriptor_dim=data.descriptors.shape[-1],
                layout_dim=data.layouts.shape[-1] if config.layouts else 0,
                text_dim=dim,
                temporal=config.temporal,
                max_frames=config.max_frames,
                text_head=config.text_head,
            )
        )
        self.importance = TokenImportance(dim)
        learned = config.temperature is None
        start = 0.05 if config.temperature is None else config.temperature
        self.log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / start)), requires_grad=learned)
        params = [*self.model.parameters(), *self.importance.parameters()] + (
            [self.log_scale] if learned else []
        )
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
        self.steps_per_epoch = math.ceil(len(data.train_videos) / config.batch_size)
        total = config.epochs * self.steps_per_epoch
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: (
                min(1.0, (s + 1) / max(1, total // 20))
                * 0.5
                * (1 + math.cos(math.pi * min(s, total) / total))
            ),
        )
        self.step = 0
        self._caption_neighbours: np.ndarray | None = None

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "importance": self.importance.state_dict(),
            "log_scale": self.log_scale.detach(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "step": self.step,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state()`` of a run with the same settings (checked: a checkpoint is data)."""
        self.model.load_state_dict(state["model"])
        self.importance.load_state_dict(state["importance"])
        if not isinstance(state["log_scale"], torch.Tensor) or state["log_scale"].shape != ():
            raise ValueError("log_scale is not one number")
        with torch.no_grad():
            self.log_scale.copy_(state["log_scale"])
        load_training_state(self.optimizer, self.schedule, state["optimizer"], state["schedule"])
        self.step = bounded_int(state["step"], "step", 0, 1 << 40)

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
            terms = self._loss_terms(torch.from_numpy(videos), captions)
            loss = sum(terms.values(), torch.zeros(()))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
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

    def _loss_terms(self, videos: torch.Tensor, captions: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, data, model = self.config, self.data, self.model
        frame_mask = data.frame_mask[videos]
        frames = model.video.frames(
            data.descriptors[videos], data.zeroshot[videos], frame_mask, data.layouts[videos]
        )
        video = model.video.pool(frames, frame_mask)
        token_mask = data.token_mask[captions]
        tokens, text = model.texts(data.tokens[captions], token_mask)
        similarity = text @ video.T
        scale = self.log_scale.exp()
        weights = None
        if cfg.hscl:
            p = losses.curriculum_probability(
                self.step, cfg.epochs * self.steps_per_epoch // cfg.hscl_increments
            )
            weights = losses.hardness_weights(similarity, p)
        terms = {"infonce": losses.info_nce(similarity * scale, weights)}
        if cfg.negnce:
            terms["negnce"] = losses.neg_nce(similarity, similarity * scale, cfg.negnce_r2)
        if cfg.dmae:
            fine = losses.dmae_similarity(
                F.normalize(tokens, dim=-1),
                data.token_weights[captions],
                frames,
                frame_mask,
                cfg.dmae_neighbour_weight,
            )
            terms["dmae"] = losses.info_nce(fine * scale, weights)
        if cfg.tpm:
            words = token_mask & (data.token_weights[captions] > 0)
            word_importance = self.importance.words(tokens.detach(), words, video.detach())
            frame_importance = self.importance.frames(frames.detach(), frame_mask, text.detach())
            masked_text = losses.masked_embedding(
                tokens, token_mask, losses.top_mass_mask(word_importance, cfg.tpm_mass), word_importance
            )
            masked_video = losses.masked_embedding(
                frames, frame_mask, losses.top_mass_mask(frame_importance, cfg.tpm_mass), frame_importance
            )
            full = similarity.diagonal()
            terms["tpm"] = losses.partial_margin(
                full, (masked_text * video).sum(-1), cfg.tpm_margin
            ) + losses.partial_margin(full, (text * masked_video).sum(-1), cfg.tpm_margin)
        return terms


def train_text(
    data: CaptionedData,
    out_dir: Path,
    config: TextTrainConfig,
    record: dict[str, Any],
    resume: bool = False,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[TextEpochLog], None] | None = None,
) -> tuple[Path, RetrievalMetrics]:
    """Train on ``data``; writes ``out_dir/text-model.pt`` (the epoch with the best held-out
    R@sum), ``last.pt`` (for ``resume``) and ``train-log.jsonl``. ``record`` (how the data was
    made, the command) is saved with the weights. Returns the best weights and their metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    trainer = Trainer(config, data)
    last, best, log_path = out_dir / "last.pt", out_dir / "text-model.pt", out_dir / "train-log.jsonl"
    settings = _run_settings(config)
    start_epoch = 0
    best_metrics = evaluate(trainer.model, data, data.held_out_videos)  # epoch 0: zero-shot
    if resume and last.is_file():
        state = read_checkpoint(last, config)
        try:
            trainer.load_state(state["trainer"])
            start_epoch = bounded_int(state["epoch"], "epoch", 0, config.epochs)
            names = {f.name for f in dataclasses.fields(RetrievalMetrics)}
            record_best = known_keys(state["best"], "best", names)
            best_metrics = RetrievalMetrics(
                **{k: bounded_float(v, k, 0, 1e9) for k, v in record_best.items() if k != "queries"},
                queries=bounded_int(record_best["queries"], "queries", 0, 1 << 40),
            )
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise VcopyError(f"{last}: not a usable text-training checkpoint ({exc})") from None
    else:
        log_path.unlink(missing_ok=True)
        _save_best(trainer.model, best, record, config, 0, best_metrics)
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        loss = trainer.epoch(epoch, on_step)
        metrics = evaluate(trainer.model, data, data.held_out_videos)
        if metrics.rsum > best_metrics.rsum:
            best_metrics = metrics
            _save_best(trainer.model, best, record, config, epoch + 1, metrics)
        state = {
            "trainer": trainer.state(),
            "epoch": epoch + 1,
            "settings": settings,
            "best": asdict(best_metrics),
        }
        with atomic_path(last) as tmp:
            torch.save(state, tmp)
        entry = TextEpochLog(
            epoch + 1, trainer.step, round(time.perf_counter() - started, 2), loss, _metrics_record(metrics)
        )
        with log_path.open("a") as log:
            log.write(json.dumps(asdict(entry)) + "\n")
        if on_epoch is not None:
            on_epoch(entry)
    return best, best_metrics


def _run_settings(config: TextTrainConfig) -> dict[str, Any]:
    """The settings a resumed run must share with its checkpoint (more epochs may be asked for)."""
    return {k: v for k, v in asdict(config).items() if k not in ("device", "epochs")}


def read_checkpoint(path: Path, config: TextTrainConfig) -> dict[str, Any]:
    """A run's ``last.pt`` if it is a text-training checkpoint of a run with ``config``'s settings
    (its contents are checked again as they are loaded); ``vcopy train text --resume`` calls it
    before any work."""
    state = read_torch_file(path, "a text-training checkpoint", max_bytes=MAX_CHECKPOINT_BYTES)
    if not isinstance(state, dict) or state.get("settings") != _run_settings(config):
        raise VcopyError(f"{path}: made with other training settings; start a new run (drop --resume)")
    return state


def _metrics_record(m: RetrievalMetrics) -> dict[str, float]:
    return {**asdict(m), "rsum": m.rsum}


def _save_best(
    model: VideoTextModel,
    path: Path,
    record: dict[str, Any],
    config: TextTrainConfig,
    epoch: int,
    metrics: RetrievalMetrics,
) -> None:
    save_model(
        model,
        path,
        {**record, "train_config": asdict(config), "epoch": epoch, "validation": _metrics_record(metrics)},
    )


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
    from vcopy.video import SamplingConfig

    captions = read_captions(captions_file)
    found, missing = resolve_videos(captions, videos_dir)
    if not found:
        raise VcopyError(
            f"{videos_dir}: none of the {len(set(c.video for c in captions))} captioned videos is there"
        )
    descriptor = create_descriptor(config.descriptor, device=config.device)
    sampling = SamplingConfig(frame_size=descriptor.frame_size)
    with Library.open(library_root, write=True, descriptor=descriptor, sampling=sampling) as library:
        summary = index_videos(library, sorted(set(found.values())), descriptor, on_video=on_video)
        encoder = TextEncoder(device=config.device)
        data = load_captioned_data(library, found, captions, encoder, config)
    return PreparedData(data, missing, summary.failed, descriptor.name, encoder.sha256)
