"""Application handlers named `module:function`, and finding them."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def resolve(spec: str) -> Callable[..., Any]:
    """Import `module:attr.attr` and return it; raise ImportError, AttributeError or
    TypeError with the reason when it cannot be used."""
    module_name, _, attr = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable")
    return target  # type: ignore[no-any-return]


def unresolvable(spec: str) -> str | None:
    """Why `spec` cannot be loaded, or None."""
    try:
        resolve(spec)
    except Exception as exc:  # any import-time failure of the user's module counts
        return f"cannot load {spec}: {type(exc).__name__}: {exc}"
    return None
