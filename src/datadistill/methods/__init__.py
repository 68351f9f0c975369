"""Distillation and selection methods behind one registry (see `base.Method`)."""
from __future__ import annotations

from typing import Any

from .base import METHODS, Callback, Method, MethodConfig, Progress, register


def get_method(name: str, **overrides: Any) -> Method:
    """Instantiate method `name` with its paper-default config and `overrides` applied."""
    return METHODS.get(name).with_overrides(overrides)


def list_methods(pattern: str = "*") -> list[str]:
    return METHODS.names(pattern)


from . import coreset as _coreset  # noqa: F401
from . import dc as _dc  # noqa: F401
from . import dm as _dm  # noqa: F401
from . import rded as _rded  # noqa: F401
from . import sre2l as _sre2l  # noqa: F401

__all__ = ["METHODS", "Callback", "Method", "MethodConfig", "Progress", "get_method", "list_methods", "register"]
