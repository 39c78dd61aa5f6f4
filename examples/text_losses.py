"""The published video-text training terms that did not beat InfoNCE alone on our fine-grained
set (docs/benchmarks.md), kept here to rerun the ablation (examples/text_ablation.py):

- NegNCE: an auxiliary term on the hard negatives of each batch;
- DMAE: an InfoNCE on the fine-grained word x frame similarity, words weighted by part of speech
  and rarity;
- TPM-CL: partial margins on texts and videos with their most important parts masked;
- HSCL: per-pair weights on a hard-sample curriculum.

``VariantTrainer`` (a ``vcopy.train.text.TextTrainer``) adds the terms a ``VariantConfig`` switches
on; run it with ``train_text(..., trainer_class=VariantTrainer)``. METHOD.md §2 has the formulas.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vcopy.train.text import Batch, CaptionedData, TextTrainConfig, TextTrainer, info_nce

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


@dataclass(frozen=True)
class VariantConfig(TextTrainConfig):
    """``TextTrainConfig`` with the published terms, each behind a switch."""

    negnce: bool = False
    negnce_r2: float = 0.5
    dmae: bool = False
    dmae_neighbour_weight: float = 0.5
    tpm: bool = False
    tpm_mass: float = 0.6
    tpm_margin: float = 0.6
    hscl: bool = False
    hscl_increments: int = 7  # p rises by 0.15 this many times over the run (published: every 5000 steps)

    @property
    def losses(self) -> str:
        switched = [("negnce", self.negnce), ("dmae", self.dmae), ("tpm", self.tpm), ("hscl", self.hscl)]
        return "+".join(["infonce"] + [name for name, on in switched if on])


def token_weights(data: CaptionedData) -> torch.Tensor:
    """[C, T] DMAE word weights of every caption's tokens, summing to 1 (0 on special tokens)."""
    idf = inverse_document_frequency(data.token_words)
    out = torch.zeros(data.token_mask.shape)
    for i, words in enumerate(data.token_words):
        out[i, : len(words)] = torch.from_numpy(word_weights(words, idf).astype(np.float32))
    return out


class VariantTrainer(TextTrainer):
    """InfoNCE plus the terms ``config`` (a ``VariantConfig``) switches on."""

    config: VariantConfig

    def make_extra_modules(self) -> nn.ModuleDict:
        self.token_weights = token_weights(self.data)
        self.importance = TokenImportance(self.data.tokens.shape[-1])
        return nn.ModuleDict({"importance": self.importance})

    def loss_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        cfg, similarity = self.config, batch.similarity
        weights = None
        if cfg.hscl:
            p = curriculum_probability(self.step, cfg.epochs * self.steps_per_epoch // cfg.hscl_increments)
            weights = hardness_weights(similarity, p)
        terms = {"infonce": info_nce(similarity * batch.scale, weights)}
        if cfg.negnce:
            terms["negnce"] = neg_nce(similarity, similarity * batch.scale, cfg.negnce_r2)
        token_weight = self.token_weights[batch.captions]
        if cfg.dmae:
            fine = dmae_similarity(
                F.normalize(batch.tokens, dim=-1),
                token_weight,
                batch.frames,
                batch.frame_mask,
                cfg.dmae_neighbour_weight,
            )
            terms["dmae"] = info_nce(fine * batch.scale, weights)
        if cfg.tpm:
            importance = self.importance
            words = batch.token_mask & (token_weight > 0)
            word_importance = importance.words(batch.tokens.detach(), words, batch.video.detach())
            frame_importance = importance.frames(batch.frames.detach(), batch.frame_mask, batch.text.detach())
            masked_text = masked_embedding(
                batch.tokens, batch.token_mask, top_mass_mask(word_importance, cfg.tpm_mass), word_importance
            )
            masked_video = masked_embedding(
                batch.frames,
                batch.frame_mask,
                top_mass_mask(frame_importance, cfg.tpm_mass),
                frame_importance,
            )
            full = similarity.diagonal()
            terms["tpm"] = partial_margin(full, (masked_text * batch.video).sum(-1), cfg.tpm_margin) + (
                partial_margin(full, (batch.text * masked_video).sum(-1), cfg.tpm_margin)
            )
        return terms


class TokenImportance(nn.Module):
    """TPM-CL's importance predictor: each word's weight given the video and each frame's weight
    given the sentence (softmax over the real entries, so each set sums to 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.word, self.video = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.frame, self.sentence = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.scale = dim**-0.5

    def words(self, tokens: torch.Tensor, mask: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        logits = (self.word(tokens) * self.video(video).unsqueeze(1)).sum(-1) * self.scale
        return logits.masked_fill(~mask, float("-inf")).softmax(-1)

    def frames(self, frames: torch.Tensor, mask: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        logits = (self.frame(frames) * self.sentence(sentence).unsqueeze(1)).sum(-1) * self.scale
        return logits.masked_fill(~mask, float("-inf")).softmax(-1)


def hard_negatives(similarity: torch.Tensor) -> torch.Tensor:
    """NegNCE's hard negatives [B, B]: (i, j != i) with S_ij > S_ii or S_ij > S_jj."""
    positive = similarity.diagonal()
    hard = (similarity > positive[:, None]) | (similarity > positive[None, :])
    return hard & ~torch.eye(len(similarity), dtype=torch.bool, device=similarity.device)


def neg_nce(similarity: torch.Tensor, logits: torch.Tensor, r2: float = 0.5) -> torch.Tensor:
    """NegNCE's auxiliary term: r2 * mean over hard negatives of -log(1 - P_ij), P the softmax of
    each row (both directions); zero when the batch has none."""
    hard = hard_negatives(similarity.detach())
    if not hard.any():
        return logits.new_zeros(())
    terms = []
    for rows, mask in ((logits, hard), (logits.T, hard.T)):
        p = rows.softmax(-1)[mask]
        terms.append(-torch.log1p(-p.clamp(max=1 - 1e-6)))
    return r2 * torch.cat(terms).mean()


def dmae_similarity(
    tokens: torch.Tensor,
    token_weights: torch.Tensor,
    frames: torch.Tensor,
    frame_mask: torch.Tensor,
    neighbour_weight: float = 0.5,
) -> torch.Tensor:
    """DMAE's fine-grained text x video similarity [B, B]: each word's best frame v* scores
    s(t, v*) + ``neighbour_weight`` * sim(v*, v2) * s(t, v2), v2 the frame of the same video most
    like v* (hard negatives spread to neighbouring frames); a text's score is the sum over its
    words weighted by ``token_weights`` [B, T] (part of speech x rarity, summing to 1; 0 on
    padding and special tokens). ``tokens`` [B, T, D] and ``frames`` [B, N, D] are normalised."""
    word_frame = torch.einsum("itd,jfd->ijtf", tokens, frames)
    word_frame = word_frame.masked_fill(~frame_mask[None, :, None, :], float("-inf"))
    best_score, best = word_frame.max(-1)  # [B, B, T]
    frame_frame = torch.einsum("jfd,jgd->jfg", frames, frames)
    eye = torch.eye(frames.shape[1], dtype=torch.bool, device=frames.device)
    frame_frame = frame_frame.masked_fill(eye | ~frame_mask[:, None, :], float("-inf"))
    neighbour_sim, neighbour = frame_frame.max(-1)  # [B(videos), N]
    n_videos = frames.shape[0]
    video_index = torch.arange(n_videos, device=frames.device)[None, :, None].expand_as(best)
    v2 = neighbour[video_index, best]
    sim_v2 = neighbour_sim[video_index, best]
    s_v2 = word_frame.gather(-1, v2.unsqueeze(-1)).squeeze(-1)
    usable = torch.isfinite(sim_v2) & torch.isfinite(s_v2)  # a one-frame video has no neighbour
    zero = torch.zeros_like(s_v2)  # (infinities kept out of the product: their gradient would be NaN)
    spread = neighbour_weight * torch.where(usable, sim_v2, zero) * torch.where(usable, s_v2, zero)
    return ((best_score + spread) * token_weights[:, None, :]).sum(-1)


def top_mass_mask(weights: torch.Tensor, mass: float = 0.6) -> torch.Tensor:
    """TPM-CL's mask [B, N]: the largest weights, taken in order until their sum reaches ``mass``
    (the one that crosses it included)."""
    order = torch.sort(weights, dim=-1, descending=True, stable=True).indices
    sorted_weights = weights.gather(-1, order)
    before = sorted_weights.cumsum(-1) - sorted_weights
    take_sorted = (before < mass) & (sorted_weights > 0)
    return torch.zeros_like(take_sorted).scatter(-1, order, take_sorted)


def masked_embedding(
    items: torch.Tensor, valid: torch.Tensor, masked: torch.Tensor, importance: torch.Tensor
) -> torch.Tensor:
    """TPM-CL's partial embedding: the importance-weighted sum of the kept (valid, not masked)
    unit-length items, not normalised again, so its score with the partner shrinks with the weight
    masked away (as in the published code). The predictor learns through the weights."""
    keep = (valid & ~masked).to(items.dtype) * importance
    return (F.normalize(items, dim=-1) * keep.unsqueeze(-1)).sum(1)


def partial_margin(full: torch.Tensor, masked: torch.Tensor, margin: float = 0.6) -> torch.Tensor:
    """max(0, margin - (s_full - s_masked)) averaged over matched pairs."""
    return F.relu(margin - (full - masked)).mean()


def curriculum_probability(step: int, steps_per_increment: int) -> float:
    """HSCL's hard-sample probability p = min(floor(step / steps_per_increment) * 0.15, 1)
    (published: 5000 steps per increment)."""
    return min(step // max(1, steps_per_increment) * 0.15, 1.0)


def hardness_weights(
    similarity: torch.Tensor, p: float, easy_margin: float = 0.2, floor: float = 0.2
) -> torch.Tensor:
    """HSCL's per-pair weights [B]: a hard pair (some negative scores at least its positive, in
    either direction) weighs 1 + p; a very easy one (positive ahead of every negative by more than
    ``easy_margin``) weighs max(``floor``, 1 - p); the rest 1."""
    s = similarity.detach()
    positive = s.diagonal()
    off = s.masked_fill(torch.eye(len(s), dtype=torch.bool, device=s.device), float("-inf"))
    margin = positive - torch.maximum(off.max(1).values, off.max(0).values)
    weights = torch.ones_like(positive)
    weights = torch.where(margin <= 0, torch.full_like(weights, 1 + p), weights)
    return torch.where(margin > easy_margin, torch.full_like(weights, max(floor, 1 - p)), weights)
