"""Components chosen by name: a registry maps a name to ``"module:factory"``, imported only when
one is built (so that the CLI checks a name before any heavy import). A component's full name is
its registry name, then a slash and what identifies its weights (a library records full names)."""

from __future__ import annotations

import importlib
from typing import Any

from vcopy.errors import VcopyError


def kind_of(name: str) -> str:
    """The registry name of a full name (``sscd_distilled/288px+…`` -> ``sscd_distilled``)."""
    return name.split("/", 1)[0]


def build(registry: dict[str, str], name: str, what: str, device: str) -> Any:
    """The component ``name`` (a registry name or a full name) of ``registry`` built on ``device``;
    a name it does not have, or a full name whose weights are not these, is a ``VcopyError``."""
    kind = kind_of(name)
    if kind not in registry:
        raise VcopyError(f"unknown {what} {name!r}; this vcopy has {', '.join(sorted(registry))}")
    module, _, factory = registry[kind].partition(":")
    component = getattr(importlib.import_module(module), factory)(device=device)
    if "/" in name and component.name != name:
        raise VcopyError(f"{what} {name}: not installed (this vcopy has {component.name})")
    return component
