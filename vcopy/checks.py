"""Checks of values read from files (weights, checkpoints, a library's settings) before they are
used: a file is data, so every setting in it is checked against the type and range vcopy itself
would write, and a value that is not is a ``ValueError`` naming the setting."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def bounded_int(value: Any, what: str, lo: int, hi: int) -> int:
    """``value`` as an int if it is a whole number (not a bool) in ``lo..hi``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} is {_shown(value)}, not a whole number in {lo}..{hi}")
    return int(value)


def bounded_float(value: Any, what: str, lo: float, hi: float) -> float:
    """``value`` as a float if it is a finite number (not a bool) in ``lo..hi``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise ValueError(f"{what} is {_shown(value)}, not a finite number in {lo:g}..{hi:g}")
    return float(value)


def plain_bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} is {_shown(value)}, not true or false")
    return value


def known_keys(record: Any, what: str, allowed: set[str]) -> Mapping[str, Any]:
    """``record`` if it is a mapping whose keys are all in ``allowed``."""
    if not isinstance(record, Mapping):
        raise ValueError(f"{what} is not a mapping")
    unknown = sorted(str(k) for k in record if k not in allowed)
    if unknown:
        raise ValueError(f"{what} has unknown settings ({', '.join(unknown[:5])})")
    return record


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def load_training_state(optimizer: Any, schedule: Any, optimizer_state: Any, schedule_state: Any) -> None:
    """Load a checkpoint's optimizer and learning-rate schedule state, checked first: the
    schedule's state must hold the settings a schedule of this run holds (of the same types), and
    every tensor the optimizer keeps for a parameter must have that parameter's shape."""
    import torch

    ours = schedule.state_dict()
    known_keys(schedule_state, "the schedule state", set(ours))
    for key, value in ours.items():
        if key not in schedule_state or type(schedule_state[key]) is not type(value):
            raise ValueError(f"the schedule state's {key} is not what this run's schedule keeps")
    optimizer.load_state_dict(optimizer_state)
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for name, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != parameter.shape:
                    raise ValueError(f"the optimizer's {name} has the wrong shape")
    schedule.load_state_dict(schedule_state)
