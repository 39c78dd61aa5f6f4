"""Training maps: ``MapSampler`` draws random contrast maps with their ground-truth boxes from
the encoded train split (``vcopy.train.data``), and they are drawn as the detector sees them.

- real pairs: a query against a reference it copies, or against a hard negative (a reference that
  retrieval would rank high but that it does not copy);
- composites: several queries laid end to end against many references laid end to end, up to
  long-form sizes, sometimes with the same reference twice (repeated content), with runs of one
  repeated frame (static content), and with query pieces resampled (rescaling in time);
- chains: the copied parts of several queries laid end to end against their sources in the same
  order (one long copy) between unrelated videos.

Some maps have their copies faded towards the background; then Gaussian noise and band dropout
(rows or columns replaced by background). Every probability is named in ``MapMix``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from vcopy.localize.spd import BACKGROUND_CONTRAST, CONTRAST_RANGE, AxisScale, Rendering, canvas_width
from vcopy.train.config import MapMix
from vcopy.train.data import Piece, TrainingData, contrast, copy_boxes, part


def _resampled(piece: Piece, rng: np.random.Generator) -> Piece:
    """The piece played at another rate: frames repeated (slower) or skipped (faster)."""
    rate = float(rng.choice([0.5, 0.75, 1.5, 2.0]))
    idx = np.floor(np.arange(0, len(piece.times_s), rate)).astype(int)
    return Piece(piece.key, piece.vectors[:, idx], piece.times_s[idx], piece.background[:, idx])


def _log_uniform(rng: np.random.Generator, high: int) -> int:
    """A whole number in 1..``high``, small ones as likely as large ones in log scale."""
    return int(np.exp(rng.uniform(0, np.log(high + 1))))


def _static(source: Piece, rng: np.random.Generator) -> Piece:
    """A run of one repeated frame (a still image, a title card): matches nothing as a copy."""
    i, n = int(rng.integers(len(source.times_s))), int(rng.integers(5, 40))
    return Piece(
        "static",
        np.repeat(source.vectors[:, i : i + 1], n, 1),
        np.zeros(n),
        np.repeat(source.background[:, i : i + 1], n, 1),
    )


class MapSampler:
    """Random training maps with their boxes (normalised xywh), as described in the module doc."""

    def __init__(self, data: TrainingData, mix: MapMix, rng: np.random.Generator) -> None:
        self.data, self.mix, self.rng = data, mix, rng

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """A contrast map and its ground-truth boxes (inclusive first/last row, first/last column)."""
        similarity, boxes, _, _ = self.sample_with_frames()
        return similarity, boxes

    def sample_with_frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``sample()``, and the frame vectors along each axis (query [n, dim], reference [m, dim]:
        each frame's own vector, as a key-frame network reads them)."""
        kind, cfg = self.rng.random(), self.mix
        chained = np.zeros((0, 4))
        if kind < cfg.chain:
            query, reference, chained = self._chain()
        elif kind < cfg.chain + cfg.composite:
            query, reference = self._composite()
        else:
            query, reference = self._pair()
        similarity = contrast(query, reference)
        boxes = np.concatenate([copy_boxes(query, reference, self.data.copies), chained])
        if self.rng.random() < cfg.faint:
            _fade(similarity, boxes, float(self.rng.uniform(0.35, 1.0)))
        frames = [np.concatenate([p.vectors[0] for p in side]) for side in (query, reference)]
        return self._augment(similarity), boxes, frames[0], frames[1]

    def _pair(self) -> tuple[list[Piece], list[Piece]]:
        d, rng = self.data, self.rng
        q = d.train_queries[rng.integers(len(d.train_queries))]
        copied = [c.reference for c in d.copies[q]]
        if copied and rng.random() < self.mix.pair_copied:
            r = copied[rng.integers(len(copied))]
        elif (
            hard := [r for r in d.candidates[q] if r not in copied]
        ) and rng.random() < self.mix.pair_hard_negative:
            r = hard[rng.integers(len(hard))]
        else:
            r = d.references[rng.integers(len(d.references))]
        query = [d.videos[q]] if rng.random() >= self.mix.pair_resampled else [_resampled(d.videos[q], rng)]
        return query, [d.videos[r]]

    def _composite(self) -> tuple[list[Piece], list[Piece]]:
        d, rng, cfg = self.data, self.rng, self.mix
        n_q = min(len(d.train_queries), _log_uniform(rng, cfg.max_composite_queries))
        n_r = min(len(d.references), _log_uniform(rng, cfg.max_composite_references))
        queries = [d.videos[d.train_queries[i]] for i in rng.choice(len(d.train_queries), n_q, replace=False)]
        queries = [_resampled(p, rng) if rng.random() < cfg.composite_resampled else p for p in queries]
        refs = [d.references[i] for i in rng.choice(len(d.references), n_r, replace=False)]
        copied = [c.reference for q in queries for c in d.copies.get(q.key, [])]
        if copied and rng.random() < cfg.composite_has_copy:
            refs[rng.integers(n_r)] = copied[rng.integers(len(copied))]
        if rng.random() < cfg.repeated_reference:
            refs.insert(int(rng.integers(n_r + 1)), refs[rng.integers(n_r)])
        reference = [d.videos[r] for r in refs]
        for seq in (queries, reference):
            if rng.random() < cfg.static_run:
                seq.insert(int(rng.integers(len(seq) + 1)), _static(seq[rng.integers(len(seq))], rng))
        return queries, reference

    def _chain(self) -> tuple[list[Piece], list[Piece], np.ndarray]:
        """One long copy: the copied parts of several queries laid end to end against their source
        parts in the same order (a band as long as all of them), between unrelated videos."""
        d, rng, cfg = self.data, self.rng, self.mix
        with_copies = [q for q in d.train_queries if d.copies[q]]
        n = min(len(with_copies), int(rng.integers(2, cfg.max_chain + 1)))
        query_parts, reference_parts, sources = [], [], set()
        for i in rng.choice(len(with_copies), n, replace=False):
            c = d.copies[with_copies[i]][rng.integers(len(d.copies[with_copies[i]]))]
            q, r = d.videos[with_copies[i]], d.videos[c.reference]
            rows = (q.times_s >= c.query_start_s) & (q.times_s <= c.query_end_s)
            cols = (r.times_s >= c.reference_start_s) & (r.times_s <= c.reference_end_s)
            if c.reference not in sources and rows.any() and cols.any():
                query_parts.append(part(q, rows))
                reference_parts.append(part(r, cols))
                sources.add(c.reference)
        unrelated_queries = [q for q in d.train_queries if not {c.reference for c in d.copies[q]} & sources]
        unrelated_references = [r for r in d.references if r not in sources]
        n_q = min(len(unrelated_queries), _log_uniform(rng, cfg.max_composite_queries + 1) - 1)
        n_r = min(len(unrelated_references), _log_uniform(rng, cfg.max_composite_references + 1) - 1)
        query_pad = [d.videos[unrelated_queries[i]] for i in rng.choice(len(unrelated_queries), n_q, False)]
        reference_pad = [
            d.videos[unrelated_references[i]] for i in rng.choice(len(unrelated_references), n_r, False)
        ]
        q_cut, r_cut = int(rng.integers(n_q + 1)), int(rng.integers(n_r + 1))
        query = query_pad[:q_cut] + query_parts + query_pad[q_cut:]
        reference = reference_pad[:r_cut] + reference_parts + reference_pad[r_cut:]
        row0 = sum(len(p.times_s) for p in query_pad[:q_cut])
        col0 = sum(len(p.times_s) for p in reference_pad[:r_cut])
        rows_total = sum(len(p.times_s) for p in query_parts)
        cols_total = sum(len(p.times_s) for p in reference_parts)
        box = np.array([[row0, row0 + rows_total - 1, col0, col0 + cols_total - 1]], dtype=np.float64)
        return query, reference, box if query_parts else np.zeros((0, 4))

    def _augment(self, similarity: np.ndarray) -> np.ndarray:
        rng = self.rng
        out = similarity + rng.normal(0, rng.uniform(0, self.mix.max_noise), similarity.shape).astype(
            np.float32
        )
        if rng.random() < self.mix.band_dropout:
            axis = int(rng.integers(2))
            n = out.shape[axis]
            width = int(rng.integers(1, max(2, n // 8)))
            start = int(rng.integers(0, max(1, n - width)))
            band = (
                (slice(start, start + width), slice(None))
                if axis == 0
                else (slice(None), slice(start, start + width))
            )
            out[band] = BACKGROUND_CONTRAST + rng.normal(0, self.mix.max_noise, out[band].shape)
        return out


def _fade(similarity: np.ndarray, boxes: np.ndarray, strength: float) -> None:
    """Move the contrast inside each box towards the background, in place: heavily re-encoded or
    cropped copies give faint bands (a 2-minute copy in a 20 x 30-minute map is then a few dim
    pixels)."""
    for r0, r1, c0, c1 in boxes.astype(int):
        region = similarity[r0 : r1 + 1, c0 : c1 + 1]
        region -= BACKGROUND_CONTRAST
        region *= strength
        region += BACKGROUND_CONTRAST


def canvas_plans(shapes: list[tuple[int, int]], input_size: int, max_aspect: int) -> list[Rendering]:
    """How a batch of maps is drawn: on one canvas, the width their median map would get."""
    widths = sorted(canvas_width(shape, input_size, max_aspect) for shape in shapes)
    return [Rendering.plan(shape, input_size, widths[len(widths) // 2]) for shape in shapes]


def box_targets(
    plans: list[Rendering], frame_boxes: list[np.ndarray], device: str
) -> dict[str, torch.Tensor]:
    """The detector's targets: each map's boxes (inclusive frame ranges) on its canvas."""
    boxes = [
        np.array([plan.box_xywh((b[0], b[1]), (b[2], b[3])) for b in found], dtype=np.float32).reshape(-1, 4)
        for plan, found in zip(plans, frame_boxes, strict=True)
    ]
    batch_idx = torch.cat([torch.full((len(b),), float(i)) for i, b in enumerate(boxes)])
    return {
        "batch_idx": batch_idx.to(device),
        "cls": torch.zeros(len(batch_idx), 1, device=device),
        "bboxes": torch.from_numpy(np.concatenate(boxes)).to(device),
    }


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
