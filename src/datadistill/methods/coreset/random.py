"""Random real images: the baseline every distillation method must beat."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import RealData
from ...synthetic import SyntheticSet
from ..base import Callback, Method, MethodConfig, Progress, register
from ._common import random_indices, selection_set


@register
class Random(Method):
    """`ipc` training images per class drawn uniformly without replacement (one `torch.Generator`
    seeded by `seed`; classes drawn in order, so candidate 0 of `best-of-random` is this set)."""

    name = "random"
    summary = "coreset: random real images per class, the baseline every method must beat"

    @dataclass(frozen=True)
    class Config(MethodConfig):
        """No options."""

    tags = frozenset({"selection"})

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        picks = random_indices(real, ipc, torch.Generator().manual_seed(seed))
        self.report(callbacks, Progress(real.num_classes, real.num_classes, message="sampled"))
        return selection_set(self, real, picks, ipc, seed)
