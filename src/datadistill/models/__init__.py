"""Model zoo behind a registry. Every model works with `torch.func.functional_call`.

A model factory is `(channels: int, num_classes: int, image_size: tuple[int, int], **kwargs)
-> nn.Module`, registered with `@MODELS.register("name")`; keyword arguments are the
architecture's options (e.g. convnet depth/width/norm/act/pool).
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..errors import ConfigError
from ..registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def get_model(
    name: str, *, channels: int, num_classes: int, image_size: tuple[int, int], **kwargs: Any
) -> nn.Module:
    """Build model `name` for inputs (N, channels, *image_size) and `num_classes` outputs."""
    factory = MODELS.get(name)
    try:
        return factory(channels, num_classes, tuple(image_size), **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise ConfigError(f"model {name!r}: {str(e).split(': ', 1)[-1]}") from None
        raise


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


from . import convnet as _convnet  # noqa: E402,F401
from . import zoo as _zoo  # noqa: E402,F401

__all__ = ["MODELS", "get_model", "list_models"]
