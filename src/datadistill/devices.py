"""Where computation runs: checking a device name and naming a device in records."""
from __future__ import annotations

import torch

from .errors import ConfigError


def check_device(name: str | torch.device, *, here: bool = True) -> torch.device:
    """`name` as a device datadistill can use: cpu or cuda[:N], and (with `here`) one PyTorch sees
    on this machine. Anything else is a ConfigError with a one-line message."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {str(name)!r}; use cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {str(name)!r}: only cpu and cuda are supported")
    if here and device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(name)!r}: PyTorch sees no CUDA device here")
    return device


def device_name(device: torch.device) -> str:
    """'cuda (NVIDIA H200)' and the like: where a run computed."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
