"""Gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021) and DSA (Zhao & Bilen, ICML 2021).

Each iteration draws a fresh network and alternates, `outer_loop` times: (1) per class, match the
gradient of the training loss w.r.t. the network's weights on a real batch and on the class's
synthetic images (layer-wise sum over output channels of 1 - cosine similarity; biases and norm
parameters are ignored, as in the reference) and take one SGD step on the images; (2) train the
network on the current synthetic set for `inner_loop` epochs. DSA applies the same sampled
augmentation to the real and the synthetic batch of a class (and augments the inner training).

Speed: the real side (the largest batch) runs as one compiled first-order forward/backward per
class under bf16 autocast, the synthetic side (double backward) in eager bf16, and the inner
training reuses the evaluation's compiled training step. The reference's loops per IPC are the
defaults (`outer_loop` / `inner_loop` = 0 picks them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..augment.dsa import apply, broadcast, sample
from ..errors import ConfigError
from ..evaluation.train import fit
from ._matching import MatchingConfig, MatchingMethod, MatchingState
from .base import register

# The reference's (outer_loop, inner_loop) per images per class (VICO-UoE utils.get_loops).
_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def reference_loops(ipc: int) -> tuple[int, int]:
    if ipc in _LOOPS:
        return _LOOPS[ipc]
    below = max(k for k in _LOOPS if k <= ipc) if ipc >= 1 else 1
    return _LOOPS[below]


def gradient_distance(gw_syn: list[torch.Tensor], gw_real: list[torch.Tensor]) -> torch.Tensor:
    """The reference's 'ours' distance: per weight tensor with >= 2 dims, viewed as (out, rest),
    sum over output rows of 1 - cos(real row, synthetic row); 1-D tensors (biases, norms) ignored."""
    total = torch.zeros((), dtype=torch.float32)
    for gs, gr in zip(gw_syn, gw_real):
        if gs.ndim < 2:
            continue
        gs = gs.float().reshape(gs.shape[0], -1)
        gr = gr.float().reshape(gr.shape[0], -1)
        cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


@register
class DC(MatchingMethod):
    """Gradient matching without augmentation (DC). Defaults: the reference's (1,000 iterations,
    image lr 0.1 with momentum 0.5, 256 real images per class, network lr 0.01, real init, the
    reference's outer / inner loops for the IPC)."""

    name = "dc"

    @dataclass(frozen=True)
    class Config(MatchingConfig):
        iterations: int = 1000
        lr_img: float = 0.1
        momentum_img: float = 0.5
        batch_real: int = 256
        dsa: bool = False
        lr_net: float = 0.01
        outer_loop: int = 0  # 0: the reference's value for the IPC
        inner_loop: int = 0  # 0: the reference's value for the IPC
        batch_train: int = 256  # batch of the inner training on the synthetic set
        checkpoint_every: int = 10

        def validate(self) -> None:
            super().validate()
            if self.outer_loop < 0 or self.inner_loop < 0:
                raise ConfigError(f"outer_loop and inner_loop must be 0 (reference) or more, got "
                                  f"{self.outer_loop}, {self.inner_loop}")
            if not self.lr_net > 0:
                raise ConfigError(f"lr_net must be positive, got {self.lr_net}")
            if self.batch_train < 1:
                raise ConfigError(f"batch_train must be at least 1, got {self.batch_train}")

    tags = frozenset({"iterative"})

    def loops(self, ipc: int) -> tuple[int, int]:
        ref_outer, ref_inner = reference_loops(ipc)
        return self.config.outer_loop or ref_outer, self.config.inner_loop or ref_inner

    def setup(self, state: MatchingState) -> None:
        cfg = self.config
        template = self.network(state.real)
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in template.modules()):
            raise ConfigError(f"{self.name}: batch norm is not supported during matching; use norm=instance")

        def real_loss(params, buffers, x, y):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=state.bf16):
                out = functional_call(template, (params, buffers), (x,))
            return F.cross_entropy(out.float(), y)

        state.extra["real_loss"] = torch.compile(real_loss, dynamic=False) if cfg.compile else real_loss

    def iteration(self, state: MatchingState, it: int) -> float:
        cfg, real = self.config, state.real
        outer, inner = self.loops(state.ipc)
        g = state.generator
        net = self.network(real, g)
        net.train()
        names = [n for n, _ in net.named_parameters()]
        buffers = dict(net.named_buffers())
        hw = tuple(real.image_shape[1:])
        total = 0.0
        for ol in range(outer):
            params = {n: p for n, p in net.named_parameters()}
            loss = torch.zeros(())
            for c in range(real.num_classes):
                x_real = real.sample_class(c, cfg.batch_real, g)
                x_syn = state.class_images(c)
                if state.dsa is not None:
                    aug = sample(state.dsa, 1, hw, g, batch_shared=True)
                    x_real = apply(x_real, broadcast(aug, len(x_real)))
                    x_syn = apply(x_syn, broadcast(aug, len(x_syn)))
                y_real = torch.full((len(x_real),), c, dtype=torch.long)
                detached = {n: p.detach().requires_grad_(True) for n, p in params.items()}
                loss_real = state.extra["real_loss"](detached, buffers, x_real, y_real)
                gw_real = torch.autograd.grad(loss_real, [detached[n] for n in names])
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=state.bf16):
                    out = functional_call(net, (params, buffers), (x_syn,))
                loss_syn = F.cross_entropy(out.float(), torch.full((len(x_syn),), c, dtype=torch.long))
                gw_syn = torch.autograd.grad(loss_syn, [params[n] for n in names], create_graph=True)
                loss = loss + gradient_distance(list(gw_syn), gw_real)
            total += state.update(loss)
            if ol == outer - 1:
                break
            fit(net, state.images.detach().clone(), state.labels, epochs=inner, lr=cfg.lr_net, generator=g,
                momentum=0.0, weight_decay=0.0, batch_size=cfg.batch_train, decay_at=None, dsa=state.dsa,
                precision=cfg.precision, compile=cfg.compile)
        return total / outer


@register
class DSA(DC):
    """DC with differentiable siamese augmentation (the same sampled parameters on the real and
    the synthetic batch of a class; the inner training augments too)."""

    name = "dsa"

    @dataclass(frozen=True)
    class Config(DC.Config):
        dsa: bool = True
