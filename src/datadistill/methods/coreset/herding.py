"""Herding selection (Welling 2009; the greedy mean-matching form of Rebuffi et al. 2017 used as a
baseline in the DC paper, Zhao et al. 2021)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import RealData
from ...synthetic import SyntheticSet
from ..base import Callback, Method, register
from ._common import FeatureConfig, FeatureSpace, per_class, report_start, selection_set


def herd(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy herding on (n, d) `features`: step t picks the unselected sample whose addition brings
    the mean of the t selected features closest (Euclidean) to the mean of all n. Returns (k,)
    positions in pick order; ties go to the lowest position, so the result is deterministic."""
    x = features.double()  # late steps compare gaps that differ by ~1e-7 relative
    mu = x.mean(0)
    sq = (x * x).sum(1)
    total = torch.zeros_like(mu)
    taken = torch.zeros(len(x), dtype=torch.bool)
    chosen = []
    for t in range(1, k + 1):
        # ||(total + x_i)/t - mu||^2 = ||x_i||^2/t^2 + 2/t <x_i, total/t - mu> + (same for every i)
        gap = sq / t**2 + (2 / t) * (x @ (total / t - mu))
        gap[taken] = float("inf")
        i = int(gap.argmin())
        chosen.append(i)
        taken[i] = True
        total += x[i]
    return torch.tensor(chosen, dtype=torch.long)


@register
class Herding(Method):
    """Per class, herding in the feature space (see `FeatureConfig`: a ConvNet trained briefly on
    the train split, or pixels). The seed only affects the feature network."""

    name = "herding"
    summary = "coreset: herding, greedy matching of the class mean in a feature space (Welling 2009)"

    @dataclass(frozen=True)
    class Config(FeatureConfig):
        pass

    tags = frozenset({"selection"})

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        report_start(self, real, callbacks, f"building the {self.config.space} space")
        space = FeatureSpace.build(real, self.config, torch.Generator().manual_seed(seed))
        picks = per_class(self, real, space, callbacks, lambda c, f, idx: herd(f, ipc))
        return selection_set(self, real, picks, ipc, seed, feature_space=space.info)
