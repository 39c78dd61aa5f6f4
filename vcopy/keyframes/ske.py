"""SKE, learned key frames, as inference runs them: the key-frame network (``vcopy.keyframes.model``)
through ONNX Runtime (no torch at index or query time).

A frame is kept where its key-frame probability reaches ``threshold``, and on a fixed uniform grid
of one frame in ``uniform_period`` (the ``m_uniform`` of training, which keeps every stretch of a
video represented however plain it is), and the first frame. Weights trained with hold (``holds``
in their settings; those before it have none) make each key frame stand for the span to the next.
The ONNX file's metadata (``SkeSettings``) names the descriptor whose vectors the network reads
and the SPD weights trained jointly with it (a file beside it), which ``vcopy query`` then uses on
such a library's maps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vcopy.checks import bounded_float, bounded_int, plain_bool
from vcopy.errors import VcopyError
from vcopy.keyframes import with_first

SETTINGS_KEY = "vcopy.ske"
ONNX_FORMAT = "vcopy.ske-onnx/1"
SHIPPED_WEIGHTS = "ske.onnx"
_PROBE_FRAMES = 8  # frames of zeros a weights file is tried on when it is loaded


@dataclass(frozen=True)
class SkeSettings:
    """How key frames are chosen from the network's probabilities, and what they go with."""

    threshold: float = 0.5  # a frame this likely a key frame is kept
    uniform_period: int = 10  # and one frame in this many, whatever its probability
    descriptor: str = ""  # the descriptor whose vectors the network reads
    spd_file: str = "spd.onnx"  # the SPD weights trained with it, in the same folder
    holds: bool = False  # a key frame stands for the span to the next one (else its own step)
    validation_segment_f1: float | None = None
    validation_key_rate: float | None = None

    @classmethod
    def from_record(cls, record: Any, path: Path) -> SkeSettings:
        if not isinstance(record, dict) or record.get("format") != ONNX_FORMAT:
            raise VcopyError(f"{path}: not SKE weights made by vcopy (settings format)")
        try:
            spd_file, descriptor = record["spd_file"], record["descriptor"]
            for name, value in (("spd_file", spd_file), ("descriptor", descriptor)):
                if not isinstance(value, str) or not 0 < len(value) <= 200:
                    raise ValueError(f"{name} is not a name")
            if Path(spd_file).name != spd_file:
                raise ValueError("spd_file must be a file name")
            return cls(
                threshold=bounded_float(record["threshold"], "threshold", 0.0, 1.0),
                uniform_period=bounded_int(record["uniform_period"], "uniform_period", 1, 10_000),
                descriptor=descriptor,
                spd_file=spd_file,
                holds=plain_bool(record.get("holds", False), "holds"),
                validation_segment_f1=_optional(record.get("validation_segment_f1")),
                validation_key_rate=_optional(record.get("validation_key_rate")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise VcopyError(f"{path}: not SKE weights made by vcopy ({exc})") from None

    def record(self) -> dict[str, Any]:
        return {
            "format": ONNX_FORMAT,
            "threshold": self.threshold,
            "uniform_period": self.uniform_period,
            "descriptor": self.descriptor,
            "spd_file": self.spd_file,
            "holds": self.holds,
            "validation_segment_f1": self.validation_segment_f1,
            "validation_key_rate": self.validation_key_rate,
        }


def _optional(value: Any) -> float | None:
    return None if value is None else bounded_float(value, "a validation figure", -1.0, 1.0)


def shipped_weights_path() -> Path:
    from vcopy.weights import shipped

    return shipped(SHIPPED_WEIGHTS)


def uniform_rows(n_frames: int, period: int) -> np.ndarray:
    """The fixed uniform grid: one frame in ``period``, from the first."""
    return np.arange(0, n_frames, period)


def keep_rows(probabilities: np.ndarray, threshold: float, uniform_period: int) -> np.ndarray:
    """The rows kept from key-frame probabilities [N]: those reaching ``threshold``, and the
    uniform grid (which starts at the first frame)."""
    n = len(probabilities)
    return with_first(
        np.concatenate([np.flatnonzero(probabilities >= threshold), uniform_rows(n, uniform_period)]), n
    )


class LearnedKeyFrames:
    """``select(vectors)``: the rows SKE keeps (see the module doc)."""

    def __init__(self, weights_path: Path | None = None, device: str = "cpu") -> None:
        from vcopy.runtime import onnx_session, read_model_file

        self.weights_path = Path(weights_path) if weights_path is not None else shipped_weights_path()
        model = read_model_file(self.weights_path, "SKE weights")
        try:
            self._session = onnx_session(model, device, bounded=True)
            record = json.loads(self._session.get_modelmeta().custom_metadata_map[SETTINGS_KEY])
        except VcopyError:
            raise
        except Exception as exc:  # ONNX Runtime's errors have no common base class; a missing key
            raise VcopyError(f"{self.weights_path}: not SKE weights ({type(exc).__name__})") from None
        self.settings = SkeSettings.from_record(record, self.weights_path)
        self.dim = self._checked_network()
        self.sha256 = hashlib.sha256(model).hexdigest()
        self.name = f"ske/{self.sha256[:8]}"

    def _checked_network(self) -> int:
        """The vector size the network takes, once it is known to be vcopy's: one input
        ``vectors`` [batch, frames, dim], one output [batch, frames] of probabilities, run once."""
        from vcopy.runtime import run_failure

        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if (
            len(inputs) != 1
            or inputs[0].name != "vectors"
            or len(shape) != 3
            or not isinstance(shape[2], int)
        ):
            raise VcopyError(f"{self.weights_path}: not SKE weights made by vcopy (its network's input)")
        if len(outputs) != 1 or len(outputs[0].shape) != 2:
            raise VcopyError(f"{self.weights_path}: not SKE weights made by vcopy (its network's output)")
        dim = int(shape[2])
        if not 1 <= dim <= 1 << 16:
            raise VcopyError(f"{self.weights_path}: not SKE weights made by vcopy (vectors of {dim})")
        try:
            probe = self.probabilities(np.zeros((_PROBE_FRAMES, dim), np.float32))
        except Exception as exc:  # ONNX Runtime's errors have no common base class
            reason = run_failure(exc)
            raise VcopyError(
                f"{self.weights_path}: not SKE weights (its network does not run: {reason})"
            ) from None
        if probe.shape != (_PROBE_FRAMES,) or not np.all((probe >= 0) & (probe <= 1)):
            raise VcopyError(
                f"{self.weights_path}: not SKE weights made by vcopy (its network's output for "
                f"{_PROBE_FRAMES} frames is {probe.shape}, not one probability per frame)"
            )
        return dim

    def check_descriptor(self, name: str) -> None:
        """Key frames are learned on one descriptor's vectors: another's is a VcopyError."""
        if self.settings.descriptor != name:
            raise VcopyError(
                f"{self.weights_path}: SKE weights learned on descriptor {self.settings.descriptor}, "
                f"not {name}"
            )

    @property
    def holds(self) -> bool:
        """Whether a key frame stands for the span to the next one (weights trained with hold)."""
        return self.settings.holds

    @property
    def models(self) -> list[dict[str, str]]:
        return [{"role": "keyframes", "path": str(self.weights_path), "sha256": self.sha256}]

    @property
    def spd_weights(self) -> Path:
        """The SPD weights trained jointly with these key frames."""
        return self.weights_path.parent / self.settings.spd_file

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Each frame's key-frame probability [N] from its vectors [N, dim]."""
        if len(vectors) == 0:
            return np.zeros(0, dtype=np.float32)
        batch = np.ascontiguousarray(vectors, dtype=np.float32)[None]
        return np.asarray(self._session.run(None, {"vectors": batch})[0][0], dtype=np.float32)

    def select(self, vectors: np.ndarray) -> np.ndarray:
        return keep_rows(self.probabilities(vectors), self.settings.threshold, self.settings.uniform_period)


def jointly_trained_spd(keyframes: str) -> Path | None:
    """The SPD weights for maps against a library of key frames ``keyframes`` (a full name): the
    ones trained with the shipped learned key frames; None for key frames without a model."""
    from vcopy.keyframes import keyframer_kind

    if keyframer_kind(keyframes) != "ske":
        return None
    shipped = LearnedKeyFrames()
    if shipped.name != keyframes:
        raise VcopyError(
            f"the library's key frames {keyframes} are not the shipped ones ({shipped.name}); pass the SPD "
            "weights trained with them (--spd-weights RUN/spd.onnx of their `vcopy train copy` run)"
        )
    return shipped.spd_weights
