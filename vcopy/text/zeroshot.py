"""The zero-shot text space of video frames, with no training: a frame's ImageNet class
probabilities become the probability-weighted sum of the text embeddings of the class names (a
convex combination of semantic embeddings), and a video is the mean of its frames.

Class names are torchvision's ImageNet-1k categories, each embedded as ``CLASS_PROMPT``; a frame
uses its ``TOP_CLASSES`` most probable classes, renormalised. Both ship in ``vcopy.weights``
(``SHIPPED_CLASSES``, made by ``examples/export_runtime_models.py``), so that a library's text
index is built without running the text encoder; embeddings of another encoder are computed and
kept in the library's text folder.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcopy.errors import VcopyError
from vcopy.features import FrameClasses
from vcopy.files import atomic_path
from vcopy.library import Library
from vcopy.text.encoder import TextEncoder
from vcopy.text.store import frame_classes

CLASS_PROMPT = "a photo of a {}"
TEXT_DIR = "text"  # a library's text search files, under its folder
SHIPPED_CLASSES = "imagenet-classes.npz"  # names, embeddings [1000, 384], encoder_sha256
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ShippedClasses:
    names: list[str]  # in class-index order
    embeddings: np.ndarray  # [classes, dim] float32, each name's CLASS_PROMPT embedded
    encoder_sha256: str  # of the text encoder weights that embedded them


@functools.cache
def shipped_classes() -> ShippedClasses:
    """The shipped class names and their embeddings (checked)."""
    from vcopy.weights import shipped

    path = shipped(SHIPPED_CLASSES)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            names = [str(n) for n in arrays["names"]]
            embeddings = arrays["embeddings"]
            encoder_sha256 = str(arrays["encoder_sha256"])
    except (OSError, ValueError, KeyError, EOFError):
        raise VcopyError(f"{path}: not vcopy's ImageNet classes (reinstall vcopy)") from None
    if (
        len(names) != IMAGENET_CLASSES
        or embeddings.shape[0] != IMAGENET_CLASSES
        or embeddings.dtype != np.float32
    ):
        raise VcopyError(f"{path}: not vcopy's ImageNet classes (reinstall vcopy)")
    return ShippedClasses(names, embeddings, encoder_sha256)


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order."""
    return list(shipped_classes().names)


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
        if shipped_classes().encoder_sha256 == encoder.sha256:
            self.class_embeddings = shipped_classes().embeddings
        elif cached is not None:
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


def zero_shot_space(library: Library, encoder: TextEncoder | None = None) -> ZeroShotSpace:
    """The zero-shot space, its class embeddings cached in the library's text folder."""
    return ZeroShotSpace(encoder or TextEncoder(), cache_dir=library.root / TEXT_DIR)
