"""The video-text training losses of METHOD.md §2, each on a batch of matched (text i, video i)
pairs. ``similarity`` is the [B, B] text x video cosine matrix (rows: texts)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over ``logits`` [B, B] (similarity / temperature), averaged over the
    text->video and video->text directions; ``weights`` [B] weight each pair (HSCL)."""
    target = torch.arange(len(logits), device=logits.device)
    per_pair = (
        F.cross_entropy(logits, target, reduction="none")
        + F.cross_entropy(logits.T, target, reduction="none")
    ) / 2
    if weights is None:
        return per_pair.mean()
    return (per_pair * weights).sum() / weights.sum()


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
