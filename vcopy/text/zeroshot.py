"""The zero-shot text space of video frames, with no training: a frame's ImageNet class
probabilities become the probability-weighted sum of the text embeddings of the class names (a
convex combination of semantic embeddings), and a video is the mean of its frames.

Class names are torchvision's ImageNet-1k categories (in its package, no download), each embedded
as ``CLASS_PROMPT``; a frame uses its ``TOP_CLASSES`` most probable classes, renormalised.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from vcopy.features import FrameClasses
from vcopy.files import atomic_path
from vcopy.library import Library
from vcopy.text.encoder import TextEncoder
from vcopy.text.store import frame_classes

CLASS_PROMPT = "a photo of a {}"


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order."""
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def video_vector(frame_vectors: np.ndarray) -> np.ndarray:
    """[dim] L2-normalised text-space vector of a whole video: the mean of its frames' vectors."""
    return _normalized(frame_vectors.mean(axis=0))


def _read_cache(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """Cached class embeddings, or None where there are none or they are damaged (they are then
    computed again and the cache replaced)."""
    try:
        embeddings = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if embeddings.shape != shape or embeddings.dtype != np.float32 or not np.isfinite(embeddings).all():
        return None
    return embeddings


def _write_cache(path: Path, embeddings: np.ndarray) -> None:
    """Keep the class embeddings for later runs, where the library folder can be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            np.save(tmp, embeddings)
    except OSError:
        pass  # a read-only library: computed again next time


class ZeroShotSpace:
    """Maps frames (their top ImageNet classes) and videos into the text encoder's space.
    ``cache_dir``, when given, keeps the class embeddings between runs."""

    def __init__(self, encoder: TextEncoder, cache_dir: Path | None = None) -> None:
        self.encoder = encoder
        prompts = [CLASS_PROMPT.format(name) for name in imagenet_class_names()]
        key = hashlib.sha256("\n".join([encoder.sha256, *prompts]).encode()).hexdigest()[:16]
        self.name = f"zeroshot/imagenet-classes/{key}"
        cache = None if cache_dir is None else cache_dir / f"class-embeddings-{key}.npy"
        cached = _read_cache(cache, (len(prompts), encoder.dim)) if cache is not None else None
        if cached is not None:
            self.class_embeddings = cached
        else:
            self.class_embeddings = encoder.encode(prompts)
            if cache is not None:
                _write_cache(cache, self.class_embeddings)

    @property
    def models(self) -> list[dict[str, str]]:
        return [{"role": "text_space", "name": self.name}]

    def frame_vectors(self, classes: FrameClasses) -> np.ndarray:
        """[N, dim] L2-normalised text-space vectors of frames."""
        weights = classes.probabilities / np.maximum(classes.probabilities.sum(axis=1, keepdims=True), 1e-12)
        return _normalized(np.einsum("nk,nkd->nd", weights, self.class_embeddings[classes.ids]))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def library_frames(self, library: Library, video_id: int) -> np.ndarray | None:
        """The text-space vectors of a library video's frames; None when it has no stored classes."""
        classes = frame_classes(library, video_id)
        return None if classes is None or len(classes.ids) == 0 else self.frame_vectors(classes)
