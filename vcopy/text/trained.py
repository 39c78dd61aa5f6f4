"""The text space of a model made by ``vcopy train text``: its video encoder maps the frames the
library stores, its text head the MiniLM sentence embeddings (torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vcopy.errors import VcopyError
from vcopy.library import Library
from vcopy.text.encoder import TextEncoder
from vcopy.text.model import load_model
from vcopy.text.store import frame_layouts
from vcopy.text.zeroshot import zero_shot_space
from vcopy.video import sha256_file


class TrainedSpace:
    """The space of a model made by ``vcopy train text`` (``--model``)."""

    def __init__(self, model_path: Path, library: Library, encoder: TextEncoder | None = None) -> None:
        self.model, self.record = load_model(model_path)
        trained_on = self.record.get("descriptor")
        if trained_on != library.meta["descriptor"]:
            raise VcopyError(
                f"{model_path}: trained on descriptor {trained_on}, "
                f"the library uses {library.meta['descriptor']}"
            )
        self.zero_shot = zero_shot_space(library, encoder)
        self.encoder = self.zero_shot.encoder
        config = self.model.config
        if (config.descriptor_dim, config.text_dim) != (int(library.meta["dim"]), self.encoder.dim):
            raise VcopyError(
                f"{model_path}: made for {config.descriptor_dim}-d descriptors and {config.text_dim}-d "
                f"text, the library has {library.meta['dim']}-d and the text encoder {self.encoder.dim}-d"
            )
        self.sha256 = sha256_file(model_path)
        self.path = model_path
        self.name = f"trained/{self.sha256[:16]}"

    @property
    def models(self) -> list[dict[str, str]]:
        return [{"role": "text_space", "name": self.name, "file": str(self.path), "sha256": self.sha256}]

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.model.encode_sentences(torch.from_numpy(self.encoder.encode(texts))).numpy()

    @torch.no_grad()
    def library_frames(self, library: Library, video_id: int) -> np.ndarray | None:
        """The text-space vectors of a library video's frames; None when it was indexed without
        its classes or (for a model that reads them) its layouts."""
        zero_shot = self.zero_shot.library_frames(library, video_id)
        layouts = frame_layouts(library, video_id) if self.model.config.layout_dim else None
        if zero_shot is None or (self.model.config.layout_dim and layouts is None):
            return None
        descriptors, _ = library.frames_of(video_id)
        mask = torch.ones(1, len(descriptors), dtype=torch.bool)
        frames = self.model.video.frames(
            torch.from_numpy(descriptors)[None],
            torch.from_numpy(zero_shot.astype(np.float32))[None],
            mask,
            None if layouts is None else torch.from_numpy(layouts)[None],
        )
        return frames[0].numpy()
