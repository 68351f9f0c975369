"""Greedy k-center (farthest-point) selection (Sener & Savarese 2018; a baseline in the DC paper)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ...data import RealData
from ...errors import ConfigError
from ...synthetic import SyntheticSet
from ..base import Callback, Method, register
from ._common import FeatureConfig, FeatureSpace, per_class, report_start, selection_set


def k_center(features: torch.Tensor, k: int, first: int) -> torch.Tensor:
    """Greedy 2-approximate k-center on (n, d) `features`: start from position `first`, then
    repeatedly add the sample farthest from its nearest selected sample. Returns (k,) positions in
    pick order; ties go to the lowest position."""
    x = features.float()
    chosen = [first]
    nearest = (x - x[first]).pow(2).sum(1)
    for _ in range(1, k):
        nearest[chosen] = -1.0  # duplicates of a selected image are at distance 0, never re-picked
        i = int(nearest.argmax())
        chosen.append(i)
        nearest = torch.minimum(nearest, (x - x[i]).pow(2).sum(1))
    return torch.tensor(chosen, dtype=torch.long)


@register
class KCenter(Method):
    """Per class, greedy k-center in the feature space (see `FeatureConfig`). `start='mean'` begins
    from the sample nearest the class mean feature (deterministic given the features, and it avoids
    starting on an outlier); `start='random'` begins from a uniformly drawn sample."""

    name = "kcenter"
    summary = "coreset: greedy k-center (farthest-point) selection in a feature space (Sener & Savarese 2018)"

    @dataclass(frozen=True)
    class Config(FeatureConfig):
        start: Literal["mean", "random"] = "mean"

        def validate(self) -> None:
            super().validate()
            if self.start not in ("mean", "random"):
                raise ConfigError(f"start must be 'mean' or 'random', got {self.start!r}")

    tags = frozenset({"selection"})

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        g = torch.Generator().manual_seed(seed)
        report_start(self, real, callbacks, f"building the {self.config.space} space")
        space = FeatureSpace.build(real, self.config, g)

        def select(c: int, f: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            if self.config.start == "random":
                first = int(torch.randint(len(f), (1,), generator=g))
            else:
                first = int((f - f.mean(0)).pow(2).sum(1).argmin())
            return k_center(f, ipc, first)

        picks = per_class(self, real, space, callbacks, select)
        return selection_set(self, real, picks, ipc, seed, feature_space=space.info)
