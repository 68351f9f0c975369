"""k-means per class (k = ipc): the real images nearest the centroids, or the cluster means."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ...data import RealData
from ...errors import ConfigError
from ...synthetic import SyntheticSet
from ..base import Callback, Method, Progress, register
from ._common import FeatureConfig, FeatureSpace, check_class_sizes, report_start, squared_distances


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) on (n, d) `x`: (k,) distinct positions."""
    n = len(x)
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    d2 = (x - x[chosen[0]]).pow(2).sum(1).double()
    for _ in range(1, k):
        d2[chosen] = 0.0
        if float(d2.sum()) > 0:
            i = int(torch.multinomial(d2 / d2.sum(), 1, generator=generator))
        else:  # every remaining point duplicates a seed: pick any unchosen one
            free = torch.ones(n, dtype=torch.bool)
            free[chosen] = False
            cand = torch.nonzero(free).flatten()
            i = int(cand[torch.randint(len(cand), (1,), generator=generator)])
        chosen.append(i)
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1).double())
    return torch.tensor(chosen, dtype=torch.long)


def lloyd(x: torch.Tensor, k: int, generator: torch.Generator, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means++ seeding, then at most `iterations` Lloyd steps (stops when no assignment changes).
    An emptied cluster is re-seeded at the point farthest from its centroid. Returns centroids
    (k, d) and the final assignment (n,) of each point to its nearest centroid."""
    x = x.float()
    centroids = x[kmeans_pp(x, k, generator)].clone()
    assign = squared_distances(x, centroids).argmin(1)
    for _ in range(iterations):
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        centroids = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
        empty = torch.nonzero(counts == 0).flatten().tolist()
        if empty:
            far = squared_distances(x, centroids).gather(1, assign[:, None]).squeeze(1)
            for j, p in zip(empty, far.argsort(descending=True, stable=True).tolist()):
                centroids[j] = x[p]
        new = squared_distances(x, centroids).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
    return centroids, assign


def nearest_distinct(dist: torch.Tensor) -> torch.Tensor:
    """(n, k) distances -> (k,) distinct positions: centroid j (in order) gets its nearest point not
    already given to an earlier centroid."""
    order = dist.argsort(dim=0, stable=True)
    taken: set[int] = set()
    out = []
    for j in range(dist.shape[1]):
        p = next(int(q) for q in order[:, j] if int(q) not in taken)
        taken.add(p)
        out.append(p)
    return torch.tensor(out, dtype=torch.long)


@register
class KMeans(Method):
    """Per class, k-means with k = ipc (k-means++ seeding, Lloyd iterations; seeded by `seed`) in
    the feature space (`space='feature'`, the default: see `FeatureConfig`) or on pixels.

    `output='nearest'` (default) returns the distinct real training image nearest each centroid (a
    selection); `output='centroid'` returns each cluster's mean image in normalised pixel space
    (not real samples: the set then loses the 'selection' tag)."""

    name = "kmeans"
    summary = "coreset: per class, the real images nearest the k-means centroids (k = ipc), or the means"

    @dataclass(frozen=True)
    class Config(FeatureConfig):
        output: Literal["nearest", "centroid"] = "nearest"
        iterations: int = 100

        def validate(self) -> None:
            super().validate()
            if self.output not in ("nearest", "centroid"):
                raise ConfigError(f"output must be 'nearest' or 'centroid', got {self.output!r}")
            if self.iterations < 0:
                raise ConfigError(f"iterations must be >= 0, got {self.iterations}")

    tags = frozenset({"selection"})

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        if self.config.output == "centroid":  # a config-derived fact: the images are not real samples
            self.tags = self.tags - {"selection"}  # type: ignore[misc]

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        cfg = self.config
        check_class_sizes(self.name, real, ipc)
        g = torch.Generator().manual_seed(seed)
        report_start(self, real, callbacks, f"building the {cfg.space} space")
        space = FeatureSpace.build(real, cfg, g)
        images, picks, sizes, start = [], [], [], time.perf_counter()
        for c, idx in enumerate(real.class_index):
            f = space.embed(real.train.x[idx])
            centroids, assign = lloyd(f, ipc, g, cfg.iterations)
            if cfg.output == "nearest":
                picks.append(idx[nearest_distinct(squared_distances(f, centroids))])
            else:
                # A cluster left empty (only after duplicates or a capped iteration count) falls
                # back to its nearest real image rather than a NaN mean.
                nearest = squared_distances(f, centroids).argmin(0)
                members = [idx[assign == j] if bool((assign == j).any()) else idx[nearest[j:j + 1]]
                           for j in range(ipc)]
                images += [real.train.x[m].double().mean(0).float() for m in members]
            sizes.append(torch.bincount(assign, minlength=ipc).tolist())
            self.report(callbacks, Progress(c + 1, real.num_classes, elapsed=time.perf_counter() - start,
                                            message=f"class {c} ({real.class_names[c]})"))
        meta: dict[str, Any] = {"cluster_sizes": sizes, "feature_space": space.info}
        if cfg.output == "nearest":
            idx_all = torch.cat(picks)
            x, y = real.train.x[idx_all], real.train.y[idx_all].long()
            meta["indices"] = idx_all.tolist()
        else:
            x = torch.stack(images)
            y = torch.arange(real.num_classes).repeat_interleave(ipc)
        return self.make_set(real, x, y, ipc, seed, meta=meta)
