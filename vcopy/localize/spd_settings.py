"""What SPD inference needs to know of trained weights besides the network (``SpdSettings``), and
where an ONNX file keeps it; shared by inference (``spd``) and the trainer's export (``spd_model``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vcopy.checks import bounded_float, bounded_int
from vcopy.errors import VcopyError

ONNX_FORMAT = "vcopy.spd-onnx/1"
SETTINGS_KEY = "vcopy.spd"  # the ONNX metadata entry holding SpdSettings as JSON


@dataclass(frozen=True)
class SpdSettings:
    """What inference needs to know of trained weights besides the network."""

    input_size: int  # canvas height in pixels
    max_aspect: int  # canvas width is at most input_size * max_aspect
    contrast_range: tuple[float, float]  # contrast values drawn as image values 0..1
    score_threshold: float  # calibrated on the train split: what counts as a match
    descriptor: str  # the descriptor whose maps the network was trained on
    validation_segment_f1: float | None = None

    @classmethod
    def from_record(cls, record: Any, path: Path) -> SpdSettings:
        """Checked settings from their JSON record; a one-line VcopyError naming ``path`` otherwise."""
        try:
            if not isinstance(record, dict) or record.get("format") != ONNX_FORMAT:
                raise ValueError(f"its settings are not {ONNX_FORMAT}")
            lo, hi = (bounded_float(v, "contrast_range", -1, 1) for v in record["contrast_range"])
            if lo >= hi:
                raise ValueError("contrast_range is empty")
            if not isinstance(record["descriptor"], str):
                raise ValueError("descriptor is not a name")
            f1 = record.get("validation_segment_f1")
            return cls(
                input_size=bounded_int(record["input_size"], "input_size", 32, 1024),
                max_aspect=bounded_int(record["max_aspect"], "max_aspect", 1, 16),
                contrast_range=(lo, hi),
                score_threshold=bounded_float(record["score_threshold"], "score_threshold", 0, 1),
                descriptor=record["descriptor"],
                validation_segment_f1=None if f1 is None else bounded_float(f1, "validation F1", 0, 1),
            )
        except KeyError as exc:
            raise VcopyError(f"{path}: not SPD weights ({exc} is missing)") from None
        except (ValueError, TypeError) as exc:
            raise VcopyError(f"{path}: not SPD weights made by vcopy ({exc})") from None

    def record(self) -> dict[str, Any]:
        return {
            "format": ONNX_FORMAT,
            "input_size": self.input_size,
            "max_aspect": self.max_aspect,
            "contrast_range": list(self.contrast_range),
            "score_threshold": self.score_threshold,
            "descriptor": self.descriptor,
            "validation_segment_f1": self.validation_segment_f1,
        }
