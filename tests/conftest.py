"""Shared fixtures: tiny structured datasets that train in seconds on CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datadistill.data import RealData, Split


def make_tiny_real(num_classes: int = 4, per_class: int = 24, size: int = 12, channels: int = 1,
                   seed: int = 0, name: str = "tiny") -> RealData:
    """Each class is a bright square at its own position plus noise: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)

    def split(n_per: int) -> Split:
        xs, ys = [], []
        for c in range(num_classes):
            x = 0.3 * torch.randn(n_per, channels, size, size, generator=g)
            r, col = divmod(c, 2)
            x[:, :, r * size // 2:(r + 1) * size // 2, col * size // 2:(col + 1) * size // 2] += 2.0
            xs.append(x)
            ys.append(torch.full((n_per,), c, dtype=torch.long))
        return Split(torch.cat(xs), torch.cat(ys))

    return RealData(name=name, train=split(per_class), val=split(6), test=split(8),
                    class_names=[f"class{c}" for c in range(num_classes)], mean=(0.5,) * channels,
                    std=(0.5,) * channels, info={"flip": True})


@pytest.fixture
def tiny_real() -> RealData:
    return make_tiny_real()


def write_tiny_npz(path, num_classes: int = 4, per_class: int = 30, size: int = 12, seed: int = 0) -> None:
    """A `tensors` dataset file (uint8 images, int labels) for CLI and bench tests."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(num_classes):
        x = rng.integers(0, 60, size=(per_class, size, size), dtype=np.uint8)
        r, col = divmod(c, 2)
        x[:, r * size // 2:(r + 1) * size // 2, col * size // 2:(col + 1) * size // 2] += 180
        xs.append(x)
        ys.append(np.full(per_class, c))
    np.savez(path, x=np.concatenate(xs), y=np.concatenate(ys))


def make_dm_defaults_tiny(monkeypatch) -> None:
    """A method init stage runs DM with its defaults: make those tiny for the test's duration."""
    from dataclasses import dataclass

    from datadistill.methods.dm import DM

    @dataclass(frozen=True)
    class TinyDMConfig(DM.Config):
        iterations: int = 4
        width: int = 8
        batch_real: int = 8
        pool_size: int = 2
        refresh_every: int = 2
        compile: bool = False
        checkpoint_every: int = 2

    monkeypatch.setattr(DM, "Config", TinyDMConfig)
