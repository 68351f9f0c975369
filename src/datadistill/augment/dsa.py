"""Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021).

Each call picks one operation family from the strategy (e.g. 'color_crop_cutout_flip_scale_rotate')
and applies it with sampled parameters. Every op is differentiable w.r.t. the images. Siamese use:
sample `DSAParams` once with `sample(...)` and apply the same parameters to the real and the
synthetic batch (`batch_shared=True` gives every image of a batch the same parameters, as the
reference does during matching); evaluation uses per-image parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"


@dataclass(frozen=True)
class DSAConfig:
    """Reference magnitudes (DSA paper / VICO-UoE code)."""

    strategy: str = DEFAULT_STRATEGY
    crop: float = 0.125
    scale: float = 1.2
    rotate: float = 15.0  # degrees
    cutout: float = 0.5
    flip: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5

    @property
    def ops(self) -> tuple[str, ...]:
        ops = tuple(o for o in self.strategy.split("_") if o)
        bad = [o for o in ops if o not in OPS]
        if bad or not ops:
            raise ConfigError(f"unknown DSA op(s) {bad} in strategy {self.strategy!r}; valid: {OPS}")
        return ops

    def without(self, op: str) -> "DSAConfig":
        from dataclasses import replace

        return replace(self, strategy="_".join(o for o in self.ops if o != op))


@dataclass(frozen=True)
class DSAParams:
    """Sampled parameters of one augmentation call: `op` and per-image tensors (length n)."""

    op: str
    values: dict


def sample(cfg: DSAConfig, n: int, hw: tuple[int, int], generator: torch.Generator,
           batch_shared: bool = False) -> DSAParams:
    """Sample one op and its parameters for n images of size hw. With `batch_shared`, all images
    share one draw (the reference's Siamese batch mode)."""
    ops = cfg.ops
    op = ops[int(torch.randint(len(ops), (1,), generator=generator))]
    m = 1 if batch_shared else n
    H, W = hw

    def u(*shape):
        return torch.rand(m, *shape, generator=generator)

    if op == "color":
        v = {"brightness": (u() - 0.5) * cfg.brightness, "saturation": u() * cfg.saturation,
             "contrast": u() + cfg.contrast}
    elif op == "crop":
        sx, sy = int(H * cfg.crop + 0.5), int(W * cfg.crop + 0.5)
        v = {"tx": torch.randint(-sx, sx + 1, (m,), generator=generator),
             "ty": torch.randint(-sy, sy + 1, (m,), generator=generator)}
    elif op == "cutout":
        ch, cw = int(H * cfg.cutout + 0.5), int(W * cfg.cutout + 0.5)
        v = {"ox": torch.randint(0, H + (1 - ch % 2), (m,), generator=generator),
             "oy": torch.randint(0, W + (1 - cw % 2), (m,), generator=generator), "size": (ch, cw)}
    elif op == "flip":
        v = {"flip": u() < cfg.flip}
    elif op == "scale":
        r = cfg.scale
        v = {"sx": u() * (r - 1.0 / r) + 1.0 / r, "sy": u() * (r - 1.0 / r) + 1.0 / r}
    else:  # rotate
        v = {"theta": (u() - 0.5) * 2 * cfg.rotate / 180 * math.pi}
    if batch_shared:
        v = {k: (t.expand(n, *t.shape[1:]) if isinstance(t, torch.Tensor) else t) for k, t in v.items()}
    return DSAParams(op, v)


def apply(x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    """Apply sampled parameters to x (N, C, H, W); N must equal the sampled n (or 1-shared)."""
    n = x.shape[0]
    v = {k: (t[:n] if isinstance(t, torch.Tensor) else t) for k, t in p.values.items()}
    dt, dev = x.dtype, x.device
    if p.op == "color":
        x = x + v["brightness"].to(dev, dt).view(n, 1, 1, 1)
        mean_c = x.mean(dim=1, keepdim=True)
        x = (x - mean_c) * v["saturation"].to(dev, dt).view(n, 1, 1, 1) + mean_c
        mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean_all) * v["contrast"].to(dev, dt).view(n, 1, 1, 1) + mean_all
    if p.op == "crop":
        return _translate(x, v["tx"].to(dev), v["ty"].to(dev))
    if p.op == "cutout":
        return _cutout(x, v["ox"].to(dev), v["oy"].to(dev), v["size"])
    if p.op == "flip":
        return torch.where(v["flip"].to(dev).view(n, 1, 1, 1), x.flip(3), x)
    if p.op == "scale":
        z = torch.zeros(n, dtype=dt, device=dev)
        sx, sy = v["sx"].to(dev, dt), v["sy"].to(dev, dt)
        theta = torch.stack([torch.stack([sx, z, z], 1), torch.stack([z, sy, z], 1)], 1)
    else:
        t = v["theta"].to(dev, dt)
        c, s = torch.cos(t), torch.sin(t)
        z = torch.zeros(n, dtype=dt, device=dev)
        theta = torch.stack([torch.stack([c, -s, z], 1), torch.stack([s, c, z], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def _map(p: DSAParams, fn) -> DSAParams:
    return DSAParams(p.op, {k: (fn(v) if isinstance(v, torch.Tensor) else v) for k, v in p.values.items()})


def broadcast(p: DSAParams, n: int) -> DSAParams:
    """The first image's parameters for all n images (the siamese batch mode of the reference)."""
    return _map(p, lambda v: v[:1].expand(n, *v.shape[1:]))


def take(p: DSAParams, c: int) -> DSAParams:
    """Entry c of per-group parameters (e.g. the parameters of class c)."""
    return _map(p, lambda v: v[c:c + 1])


def take_range(p: DSAParams, start: int, stop: int) -> DSAParams:
    """Entries start .. stop - 1 of per-group parameters (e.g. those of a block of classes)."""
    return _map(p, lambda v: v[start:stop])


def expand_params(p: DSAParams, counts: int) -> DSAParams:
    """Per-class parameters (one entry per class) -> per-image parameters for images grouped by
    class, `counts` images per class."""
    return _map(p, lambda v: v.repeat_interleave(counts, 0))


def augment(x: torch.Tensor, cfg: DSAConfig, generator: torch.Generator, batch_shared: bool = False) -> torch.Tensor:
    """Sample and apply in one call (no Siamese partner)."""
    return apply(x, sample(cfg, x.shape[0], tuple(x.shape[2:]), generator, batch_shared))


def _translate(x: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    # Shift each image by (tx, ty) pixels with zero fill, as the reference's padded gather.
    n, c, h, w = x.shape
    gi = torch.arange(h, device=x.device).view(1, h, 1) + tx.view(n, 1, 1) + 1
    gj = torch.arange(w, device=x.device).view(1, 1, w) + ty.view(n, 1, 1) + 1
    gi = gi.clamp(0, h + 1).expand(n, h, w)
    gj = gj.clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, [1, 1, 1, 1])
    flat = padded.reshape(n, c, (h + 2) * (w + 2))
    idx = (gi * (w + 2) + gj).reshape(n, 1, h * w).expand(n, c, h * w)
    return flat.gather(2, idx).reshape(n, c, h, w)


def _cutout(x: torch.Tensor, ox: torch.Tensor, oy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = size
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top = (ox - ch // 2).view(n, 1, 1)
    left = (oy - cw // 2).view(n, 1, 1)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).to(x.dtype).unsqueeze(1)
