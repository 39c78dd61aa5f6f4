"""The text space of a model made by ``vcopy train text``, run with ONNX Runtime: its video encoder
maps the frames the library stores, its text head the MiniLM sentence embeddings. ``vcopy train
text`` writes the model as ONNX (``RUN/text-model.onnx``) beside its torch weights; a ``.pt`` given
instead is exported when it is loaded (which needs torch: ``vcopy[train]``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vcopy.errors import VcopyError, check_torch_archive
from vcopy.library import Library
from vcopy.runtime import onnx_session, read_model_file, run_failure
from vcopy.text import MAX_TEXT_MODEL_BYTES, TEXT_MODEL_ONNX_FORMAT, TEXT_MODEL_RECORD_KEY
from vcopy.text.encoder import TextEncoder
from vcopy.text.store import frame_layouts
from vcopy.text.zeroshot import zero_shot_space
from vcopy.video import sha256_file

FRAME_INPUTS = ("descriptors", "zeroshot", "layouts")  # "layouts" only for a model that reads them


def _onnx_model(path: Path) -> bytes:
    """The model's ONNX bytes: the file itself, or a torch weights file exported."""
    if path.suffix == ".onnx":
        return read_model_file(path, "a text model", MAX_TEXT_MODEL_BYTES)
    check_torch_archive(path, "text-model weights")  # before torch is imported
    try:
        from vcopy.text.model import export_onnx, load_model
    except ImportError:
        raise VcopyError(
            f'{path}: torch weights need vcopy\'s training extra to read (pip install "vcopy[train]"); '
            f"pass {path.with_suffix('.onnx').name}, written beside them, instead"
        ) from None
    model, record = load_model(path)
    return export_onnx(model, record)


class TrainedSpace:
    """The space of a model made by ``vcopy train text`` (``--model``)."""

    def __init__(self, model_path: Path, library: Library, encoder: TextEncoder | None = None) -> None:
        try:
            self.session: Any = onnx_session(_onnx_model(model_path), bounded=True)
            self.record = json.loads(self.session.get_modelmeta().custom_metadata_map[TEXT_MODEL_RECORD_KEY])
        except VcopyError:
            raise
        except Exception as exc:  # ONNX Runtime's errors have no common base class
            raise VcopyError(f"{model_path}: not a text model made by vcopy ({run_failure(exc)})") from None
        if not isinstance(self.record, dict) or self.record.get("format") != TEXT_MODEL_ONNX_FORMAT:
            raise VcopyError(
                f"{model_path}: not a text model made by vcopy (format is not {TEXT_MODEL_ONNX_FORMAT})"
            )
        trained_on = self.record.get("descriptor")
        if trained_on != library.meta["descriptor"]:
            raise VcopyError(
                f"{model_path}: trained on descriptor {str(trained_on)[:80]}, "
                f"the library uses {library.meta['descriptor']}"
            )
        self.zero_shot = zero_shot_space(library, encoder)
        self.encoder = self.zero_shot.encoder
        widths: dict[str, int] = {i.name: i.shape[-1] for i in self.session.get_inputs()}
        expected = {"sentences": self.encoder.dim, "descriptors": int(library.meta["dim"])}
        expected["zeroshot"] = self.encoder.dim
        self.reads_layouts = "layouts" in widths
        self.blank_frame = {  # fed beside texts: the graph computes both sides, this one is not read
            name: np.zeros((1, widths[name]), np.float32) for name in FRAME_INPUTS if name in widths
        }
        if {k: widths.get(k) for k in expected} != expected or set(widths) - {*expected, "layouts"}:
            raise VcopyError(
                f"{model_path}: made for inputs {widths}; the library has {library.meta['dim']}-d "
                f"descriptors and the text encoder {self.encoder.dim}-d embeddings"
            )
        self.sha256 = sha256_file(model_path)
        self.path = model_path
        self.name = f"trained/{self.sha256[:16]}"

    @property
    def models(self) -> list[dict[str, str]]:
        return [{"role": "text_space", "name": self.name, "file": str(self.path), "sha256": self.sha256}]

    def _run(self, sentences: np.ndarray, frames: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Text embeddings of ``sentences`` and frame embeddings of one video's ``frames``."""
        feed = {"sentences": sentences.astype(np.float32), **frames}
        text, embedded = self.session.run(["text", "frames"], feed)
        return np.asarray(text, np.float32), np.asarray(embedded, np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self._run(self.encoder.encode(texts), self.blank_frame)[0]

    def library_frames(self, library: Library, video_id: int) -> np.ndarray | None:
        """The text-space vectors of a library video's frames; None when it was indexed without
        its classes or (for a model that reads them) its layouts."""
        zero_shot = self.zero_shot.library_frames(library, video_id)
        layouts = frame_layouts(library, video_id) if self.reads_layouts else None
        if zero_shot is None or (self.reads_layouts and layouts is None):
            return None
        descriptors, _ = library.frames_of(video_id)
        frames = {"descriptors": descriptors.astype(np.float32), "zeroshot": zero_shot.astype(np.float32)}
        if layouts is not None:
            frames["layouts"] = layouts
        return self._run(np.zeros((0, self.encoder.dim), np.float32), frames)[1]
