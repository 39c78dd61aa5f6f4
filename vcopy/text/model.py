"""The trained video-text model: a video encoder that pools a video's frames into the text
encoder's space, and a light head on top of the (frozen) MiniLM text encoder.

A frame enters as its copy descriptor (what the library stores) next to its zero-shot text vector
(its ImageNet classes as a convex combination of class-name embeddings, ``ZeroShotSpace``) and,
when the model reads layouts (``layout_dim`` > 0), its layout (where things are in the picture)
and how that layout changes around it (the next frame's minus the previous one's: which way things
move). The frame embedding is the zero-shot vector plus a learned correction (an MLP whose last layer starts
at zero), optionally passed through one temporal transformer layer (behind a gate that starts at
zero), and a video is the mean of its frame embeddings. The text side adds a learned linear
correction (starting at zero) to MiniLM's token embeddings. An untrained model is therefore
exactly zero-shot search, and training only has to learn what zero-shot misses.

Weights files (``vcopy.text-model/1``) are written by ``vcopy train text``, with the model
exported to ONNX beside them (``export_onnx``: what ``vcopy search-text --model`` runs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vcopy.checks import bounded_int, known_keys, plain_bool
from vcopy.errors import VcopyError, read_torch_file
from vcopy.files import atomic_path, write_atomically
from vcopy.runtime import onnx_export
from vcopy.text import (
    MAX_TEXT_MODEL_BYTES,
    TEXT_MODEL_FORMAT,
    TEXT_MODEL_ONNX_FORMAT,
    TEXT_MODEL_RECORD_KEY,
)


@dataclass(frozen=True)
class ModelConfig:
    descriptor_dim: int = 128
    layout_dim: int = 0  # 0: the model does not read frame layouts (models made before them)
    text_dim: int = 384
    hidden: int = 512
    temporal: bool = False  # one transformer layer over the frames before mean pooling
    max_frames: int = 64  # position embeddings of the temporal layer
    text_head: bool = True  # learned correction on top of the text encoder


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` [B, N, D] over the entries where ``mask`` [B, N] is true."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1e-6)


def layout_motion(layouts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each frame's next real frame's layout minus its previous one's [B, N, L] (at a video's first
    and last frame, the frame itself stands in for the missing neighbour)."""
    n = layouts.shape[1]
    last = (mask.sum(1, keepdim=True) - 1).clamp_min(0)  # [B, 1]
    position = torch.arange(n, device=layouts.device)[None, :]
    after = torch.minimum(position + 1, last)
    before = torch.minimum((position - 1).clamp_min(0), last)
    width = layouts.shape[-1]
    change = layouts.gather(1, after[..., None].expand(-1, -1, width)) - layouts.gather(
        1, before[..., None].expand(-1, -1, width)
    )
    return change * mask[..., None].to(layouts.dtype)


class VideoEncoder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.correction = nn.Sequential(
            nn.Linear(config.descriptor_dim + 2 * config.layout_dim + config.text_dim, config.hidden),
            nn.GELU(),
            nn.Linear(config.hidden, config.text_dim),
        )
        last = self.correction[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.temporal: nn.TransformerEncoderLayer | None = None
        if config.temporal:
            self.temporal = nn.TransformerEncoderLayer(
                config.text_dim, nhead=4, dim_feedforward=2 * config.text_dim, dropout=0.1, batch_first=True
            )
            self.positions = nn.Parameter(torch.zeros(config.max_frames, config.text_dim))
            self.gate = nn.Parameter(torch.zeros(()))
        self.max_frames = config.max_frames
        self.layout_dim = config.layout_dim

    def frames(
        self,
        descriptors: torch.Tensor,
        zeroshot: torch.Tensor,
        mask: torch.Tensor,
        layouts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """L2-normalised frame embeddings [B, N, D] from descriptors [B, N, d], zero-shot vectors
        [B, N, D], the mask of real (not padding) frames [B, N] and layouts [B, N, L] (read only
        by a model with ``layout_dim`` L > 0)."""
        parts = [descriptors]
        if self.layout_dim:
            if layouts is None or layouts.shape[-1] != self.layout_dim:
                raise ValueError(f"this model reads frame layouts of {self.layout_dim} values")
            parts += [layouts, layout_motion(layouts, mask)]
        x = zeroshot + self.correction(torch.cat([*parts, zeroshot], -1))
        if self.temporal is not None:
            n = min(x.shape[1], self.max_frames)
            positions = torch.cat([self.positions[:n], self.positions[-1:].expand(x.shape[1] - n, -1)])
            mixed = self.temporal(x + positions, src_key_padding_mask=~mask)
            x = x + self.gate * mixed
        return F.normalize(x, dim=-1)

    @staticmethod
    def pool(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised video embeddings [B, D]: the mean of the real frames."""
        return F.normalize(masked_mean(frames, mask), dim=-1)


class TextHead(nn.Module):
    """A learned linear correction of MiniLM's token (or, being linear, sentence) embeddings."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x)


class VideoTextModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.video = VideoEncoder(config)
        self.text = TextHead(config.text_dim) if config.text_head else nn.Identity()

    def texts(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrected token embeddings [B, T, D] and L2-normalised sentence embeddings [B, D] from
        MiniLM token embeddings [B, T, D] (MiniLM's sentence embedding is their mean)."""
        corrected = self.text(tokens)
        return corrected, F.normalize(masked_mean(corrected, mask), dim=-1)

    def sentences(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised sentence embeddings [B, D] from MiniLM token embeddings [B, T, D]."""
        return self.texts(tokens, mask)[1]

    def encode_sentences(self, minilm: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings of MiniLM sentence embeddings [B, D] (normalised or not: the
        head is linear)."""
        return F.normalize(self.text(minilm), dim=-1)


class OnnxTextModel(nn.Module):
    """What search runs: MiniLM sentence embeddings [B, text_dim] -> text embeddings [B, D], and
    one video's frames (descriptors [N, d], zero-shot vectors [N, D], layouts [N, L] for a model
    that reads them) -> frame embeddings [N, D]."""

    def __init__(self, model: VideoTextModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        sentences: torch.Tensor,
        descriptors: torch.Tensor,
        zeroshot: torch.Tensor,
        layouts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.ones(1, descriptors.shape[0], dtype=torch.bool)
        frames = self.model.video.frames(
            descriptors[None], zeroshot[None], mask, None if layouts is None else layouts[None]
        )
        return self.model.encode_sentences(sentences), frames[0]


def onnx_inputs(config: ModelConfig) -> dict[str, int]:
    """The ONNX graph's inputs and their widths."""
    inputs = {"sentences": config.text_dim, "descriptors": config.descriptor_dim, "zeroshot": config.text_dim}
    return {**inputs, "layouts": config.layout_dim} if config.layout_dim else inputs


def export_onnx(model: VideoTextModel, record: dict[str, Any]) -> bytes:
    """``model`` as ONNX bytes (``OnnxTextModel``), its config and ``record`` in the metadata."""
    widths = onnx_inputs(model.config)
    example = tuple(torch.zeros(2 + (name != "sentences"), width) for name, width in widths.items())
    metadata = {**record, "format": TEXT_MODEL_ONNX_FORMAT, "config": asdict(model.config)}
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused transformer layer has no ONNX form
    try:
        return onnx_export(
            OnnxTextModel(model).eval(),
            example,
            {name: {0: "texts" if name == "sentences" else "frames"} for name in widths},
            {"text": {0: "texts"}, "frames": {0: "frames"}},
            {TEXT_MODEL_RECORD_KEY: metadata},
            dynamo=True,  # the temporal layer's attention has the number of frames in its shapes
        )
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)


def save_model(model: VideoTextModel, path: Path, record: dict[str, Any]) -> None:
    """Write weights (format ``vcopy.text-model/1``) atomically, with how they were made."""
    payload = {
        "format": TEXT_MODEL_FORMAT,
        "config": asdict(model.config),
        "state_dict": model.state_dict(),
        **record,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def write_onnx(path: Path) -> Path:
    """Export the weights at ``path`` to ONNX beside them (``path`` with the suffix ``.onnx``):
    what search runs."""
    model, record = load_model(path)
    onnx_path = path.with_suffix(".onnx")
    write_atomically(onnx_path, export_onnx(model, record))
    return onnx_path


TEXT_MODEL_KEYS = frozenset(
    {"format", "config", "state_dict", "descriptor", "text_encoder_sha256", "command", "captions"}
    | {"train_config", "epoch", "validation"}
)


def load_model(path: Path) -> tuple[VideoTextModel, dict[str, Any]]:
    """A trained model (in eval mode) and the record saved with it."""
    payload = read_torch_file(
        path, "text-model weights", max_bytes=MAX_TEXT_MODEL_BYTES, keys=TEXT_MODEL_KEYS
    )
    if not isinstance(payload, dict) or payload.get("format") != TEXT_MODEL_FORMAT:
        raise VcopyError(
            f"{path}: not text-model weights (format is not {TEXT_MODEL_FORMAT}; made by `vcopy train text`)"
        )
    try:
        config = checked_config(payload.get("config"))
    except ValueError as exc:
        raise VcopyError(f"{path}: not text-model weights made by vcopy ({exc})") from None
    model = VideoTextModel(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, AttributeError, RuntimeError):
        raise VcopyError(f"{path}: text-model weights that do not fit their network") from None
    return model.eval(), {k: v for k, v in payload.items() if k not in ("state_dict",)}


_CONFIG_LIMITS = {  # the largest sizes a weights file may ask for (a model of ~200 MB at most)
    "descriptor_dim": (1, 2048),
    "layout_dim": (0, 4096),
    "text_dim": (1, 1024),
    "hidden": (1, 4096),
    "max_frames": (1, 4096),
}


def checked_config(record: Any) -> ModelConfig:
    """The ``ModelConfig`` a weights file records, every size within ``_CONFIG_LIMITS`` (checked
    before anything is allocated); ValueError otherwise."""
    fields = known_keys(record, "its config", {f.name for f in dataclasses.fields(ModelConfig)})
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name in _CONFIG_LIMITS:
            values[name] = bounded_int(value, name, *_CONFIG_LIMITS[name])
        else:
            values[name] = plain_bool(value, name)
    config = ModelConfig(**values)
    if config.temporal and config.text_dim % 4:
        raise ValueError("text_dim of a temporal model must be a multiple of its 4 heads")
    return config
