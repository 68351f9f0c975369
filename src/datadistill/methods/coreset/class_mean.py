"""Class means: the average (normalised) image of each class, or of `ipc` groups of it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import RealData
from ...synthetic import SyntheticSet
from ..base import Callback, Method, MethodConfig, Progress, register
from ._common import check_class_sizes


@register
class ClassMean(Method):
    """ipc = 1: the mean training image of each class. ipc > 1: the class is shuffled (generator
    seeded by `seed`) and cut into `ipc` disjoint groups of near-equal size (sizes differ by at most
    one); each output image is the mean of one group. Means are taken in normalised space, which is
    the same as averaging pixels since normalisation is affine. Not a selection: the images are not
    training samples, so ipc must only not exceed the smallest class."""

    name = "class-mean"
    summary = "coreset: the mean image of each class (ipc 1), or of ipc groups of it"

    @dataclass(frozen=True)
    class Config(MethodConfig):
        """No options."""

    tags = frozenset()

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        check_class_sizes(self.name, real, ipc)
        g = torch.Generator().manual_seed(seed)
        images, labels, sizes = [], [], []
        for c, idx in enumerate(real.class_index):
            order = idx[torch.randperm(len(idx), generator=g)] if ipc > 1 else idx
            groups = torch.tensor_split(order, ipc)
            images += [real.train.x[grp].double().mean(0).float() for grp in groups]
            labels += [c] * ipc
            sizes.append([len(grp) for grp in groups])
            self.report(callbacks, Progress(c + 1, real.num_classes, message=f"class {c}"))
        return self.make_set(real, torch.stack(images), torch.tensor(labels, dtype=torch.int64), ipc, seed,
                             meta={"group_sizes": sizes})
