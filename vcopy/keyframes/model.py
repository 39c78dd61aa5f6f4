"""SKE's network in torch, its weights file and its export to the ONNX file inference runs.

The network reads a video's frame vectors laid out along time as one long signal ([B, N, dim])
and gives each frame its probability of being a key frame: each vector, with its similarity to
the previous and the next frame (where the picture changes), is projected to ``hidden`` channels,
then dilated 1-D convolutions (receptive field ``1 + 2 * sum(dilations)`` frames) and a 1x1 head.
It is small (about 52 k parameters at 512-d), so it costs next to nothing beside the descriptor.

Weights (``vcopy.ske/1``): the network's config, its state dict and the selection settings
(``SkeSettings``); the ONNX file carries the settings in its metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vcopy.checks import bounded_int
from vcopy.errors import VcopyError, read_torch_file
from vcopy.keyframes.ske import SETTINGS_KEY, SkeSettings
from vcopy.runtime import onnx_export

WEIGHTS_FORMAT = "vcopy.ske/1"


@dataclass(frozen=True)
class NetConfig:
    """The shape of the key-frame network."""

    dim: int = 512  # the descriptor's dimension
    hidden: int = 48
    dilations: tuple[int, ...] = (1, 2, 4, 8)

    @classmethod
    def from_record(cls, record: Any) -> NetConfig:
        """A config from a weights file, every size bounded before anything is allocated."""
        if not isinstance(record, dict) or set(record) != {"dim", "hidden", "dilations"}:
            raise ValueError("its network config is not vcopy's")
        dilations = record["dilations"]
        if not isinstance(dilations, list | tuple) or not 1 <= len(dilations) <= 8:
            raise ValueError("dilations must be 1 to 8 numbers")
        return cls(
            dim=bounded_int(record["dim"], "dim", 1, 4096),
            hidden=bounded_int(record["hidden"], "hidden", 1, 512),
            dilations=tuple(bounded_int(d, "a dilation", 1, 64) for d in dilations),
        )


class KeyFrameNet(nn.Module):
    """[B, N, dim] L2-normalised frame vectors -> [B, N] key-frame probabilities."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.project = nn.Conv1d(config.dim + 2, config.hidden, 1)
        self.body = nn.ModuleList(
            nn.Conv1d(config.hidden, config.hidden, 3, padding=d, dilation=d) for d in config.dilations
        )
        self.head = nn.Conv1d(config.hidden, 1, 1)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        x = vectors.transpose(1, 2)  # [B, dim, N]
        change = (x[:, :, 1:] * x[:, :, :-1]).sum(1, keepdim=True)  # similarity of neighbours
        ones = torch.ones_like(change[:, :, :1])
        h = self.project(torch.cat([x, torch.cat([ones, change], 2), torch.cat([change, ones], 2)], 1))
        h = torch.relu(h)
        for conv in self.body:
            h = h + torch.relu(conv(h))
        return torch.sigmoid(self.head(h)).squeeze(1)


def weights_record(net: KeyFrameNet, settings: SkeSettings, extra: dict[str, Any]) -> dict[str, Any]:
    """What a ``.pt`` weights file holds."""
    config = asdict(net.config)
    config["dilations"] = list(config["dilations"])
    return {
        "format": WEIGHTS_FORMAT,
        "net_config": config,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "settings": settings.record(),
        **extra,
    }


SKE_WEIGHTS_KEYS = frozenset(
    {"format", "net_config", "settings", "state_dict", "command", "epoch", "init_spd", "train_config"}
    | {"validation"}
)


def load_net(path: Path) -> tuple[KeyFrameNet, SkeSettings, dict[str, Any]]:
    """The network and settings of a ``.pt`` weights file (checked: a weights file is data)."""
    weights = read_torch_file(path, "SKE weights", keys=SKE_WEIGHTS_KEYS)
    if not isinstance(weights, dict) or weights.get("format") != WEIGHTS_FORMAT:
        raise VcopyError(f"{path}: not SKE weights (format is not {WEIGHTS_FORMAT})")
    try:
        net = KeyFrameNet(NetConfig.from_record(weights["net_config"]))
        settings = SkeSettings.from_record(weights["settings"], path)
        net.load_state_dict(weights["state_dict"], strict=True)
    except KeyError as exc:
        raise VcopyError(f"{path}: not SKE weights ({exc} is missing)") from None
    except (ValueError, TypeError, RuntimeError) as exc:
        raise VcopyError(f"{path}: not SKE weights made by vcopy ({exc})") from None
    return net.eval(), settings, weights


def export_onnx(net: KeyFrameNet, settings: SkeSettings) -> bytes:
    """The ONNX file of ``net``: input ``vectors`` [batch, frames, dim], output ``key`` [batch,
    frames], batch and frames free; ``settings`` in the metadata."""
    return onnx_export(
        net.eval(),
        torch.zeros(1, 16, net.config.dim, device=next(net.parameters()).device),
        {"vectors": {0: "batch", 1: "frames"}},
        {"key": {0: "batch", 1: "frames"}},
        {SETTINGS_KEY: settings.record()},
    )
