"""Shared pieces of the coreset baselines: per-class random draws, building a selection result, and
the feature space ("a network trained briefly on the train split") used by herding, k-center and
k-means."""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import torch

from ...data import RealData
from ...errors import ConfigError
from ...evaluation import accuracy, fit
from ...models import MODELS, get_model
from ...synthetic import SyntheticSet
from ..base import Callback, Method, MethodConfig, Progress

log = logging.getLogger(__name__)


def random_indices(real: RealData, ipc: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Per class c, `ipc` distinct indices into `real.train` drawn uniformly (one randperm per class)."""
    return [idx[torch.randperm(len(idx), generator=generator)[:ipc]] for idx in real.class_index]


def selection_set(method: Method, real: RealData, picks: Sequence[torch.Tensor], ipc: int, seed: int,
                  **meta: Any) -> SyntheticSet:
    """The SyntheticSet of the training images `picks[c]` (indices into `real.train`, class c), class
    by class; `meta["indices"]` records the indices so the selection can be reproduced and audited."""
    idx = torch.cat([p.long() for p in picks])
    return method.make_set(real, real.train.x[idx], real.train.y[idx].long(), ipc, seed,
                           meta={"indices": idx.tolist(), **meta})


def check_class_sizes(name: str, real: RealData, ipc: int) -> None:
    """For methods without the 'selection' tag that still split each class into `ipc` parts."""
    smallest = min(len(i) for i in real.class_index)
    if ipc > smallest:
        raise ConfigError(f"{name}: ipc {ipc} exceeds the smallest class ({smallest} training images)")


def squared_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(n, d), (k, d) -> (n, k) squared Euclidean distances (clamped at 0 against rounding)."""
    d = (x * x).sum(1, keepdim=True) - 2 * x @ c.T + (c * c).sum(1)
    return d.clamp_min_(0)


# ---- feature space ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FeatureConfig(MethodConfig):
    """Where distances are measured. `space='feature'`: the `embed` output of a `feature_model`
    (ConvNet width `feature_width`, depth `feature_depth`) trained for `feature_epochs` epochs on
    `feature_train_size` random training images (None: all) with SGD at `feature_lr`, as in the
    DC paper's herding / k-center baselines, which use a trained ConvNet's features. Pixel
    distances mostly measure brightness and stroke position; a trained network's features group
    images by what tells the classes apart. `space='pixel'`: flattened normalised images, no network.

    Cost on Fashion-MNIST with the defaults, measured on 2 shared CPU cores (AMD EPYC, no AMX):
    training 2 x 10,000 images at 360-770 img/s (eager bf16) is 25-55 s and reaches ~81%
    validation accuracy; embedding the 54,000 training images in batches of `embed_batch_size`
    under bf16 autocast takes ~30 s with `embed_compile` (~1,900 img/s after a ~8 s compile paid
    once per architecture and process; the last batch of each class is padded so every class
    reuses the compiled graph) against 65-75 s eager. `feature_compile` (training) is off by
    default: its ~30 s compile (two batch shapes) costs what it saves on one short run, but it pays
    off in a process that has already compiled the same ConvNet (the step cache is shared with
    evaluation).
    `width`/`depth` are passed only to 'convnet'; other models are built with their defaults.
    """

    space: Literal["feature", "pixel"] = "feature"
    feature_model: str = "convnet"
    feature_width: int = 128
    feature_depth: int = 3
    feature_epochs: int = 2
    feature_train_size: int | None = 10000
    feature_lr: float = 0.01
    feature_batch_size: int = 256
    feature_precision: Literal["bf16", "fp32"] = "bf16"
    feature_compile: bool = False
    embed_batch_size: int = 1000
    embed_compile: bool = True

    def validate(self) -> None:
        if self.space not in ("feature", "pixel"):
            raise ConfigError(f"space must be 'feature' or 'pixel', got {self.space!r}")
        if self.feature_model not in MODELS:
            raise ConfigError(f"feature_model {self.feature_model!r} is not a registered model; "
                              f"valid: {', '.join(MODELS.names())}")
        for key in ("feature_width", "feature_depth", "feature_epochs", "feature_batch_size", "embed_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if self.feature_train_size is not None and self.feature_train_size < 1:
            raise ConfigError(f"feature_train_size must be positive or None, got {self.feature_train_size}")
        if not self.feature_lr > 0:
            raise ConfigError(f"feature_lr must be positive, got {self.feature_lr}")
        if self.feature_precision not in ("bf16", "fp32"):
            raise ConfigError(f"feature_precision must be 'bf16' or 'fp32', got {self.feature_precision!r}")


def _embed(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model.embed(x).float().flatten(1)


@functools.cache
def _compiled_embed():  # built on first use: importing the package must not start the compiler
    # The model is an argument, so fresh models of one architecture share the compiled graph.
    return torch.compile(_embed, dynamic=False)


class FeatureSpace:
    """Maps training images to the vectors distances are measured on. Build with `build`."""

    def __init__(self, model: torch.nn.Module | None, batch_size: int, bf16: bool, compile: bool,
                 info: dict[str, Any]) -> None:
        self.model = model
        self.batch_size = batch_size
        self.bf16 = bf16
        self.compile = compile
        self.info = info

    @classmethod
    def build(cls, real: RealData, cfg: FeatureConfig, generator: torch.Generator) -> "FeatureSpace":
        """Pixel space, or train the feature network on a random subsample of `real.train`; all
        randomness (subsample, initialisation, batch order) comes from `generator`."""
        if cfg.space == "pixel":
            return cls(None, cfg.embed_batch_size, False, False, {"space": "pixel"})
        n = len(real.train)
        take = n if cfg.feature_train_size is None else min(n, cfg.feature_train_size)
        sub = torch.randperm(n, generator=generator)[:take]
        init_seed = int(torch.randint(2**62, (1,), generator=generator))
        kwargs = {"width": cfg.feature_width, "depth": cfg.feature_depth} if cfg.feature_model == "convnet" else {}
        # Parameter initialisation draws from the global RNG: seed it without disturbing the caller's state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            model = get_model(cfg.feature_model, channels=real.channels, num_classes=real.num_classes,
                              image_size=real.image_shape[1:], **kwargs)
        log.info("training the feature network (%s) on %d images for %d epochs", cfg.feature_model, take,
                 cfg.feature_epochs)
        fit(model, real.train.x[sub], real.train.y[sub], epochs=cfg.feature_epochs, lr=cfg.feature_lr,
            generator=generator, batch_size=cfg.feature_batch_size, precision=cfg.feature_precision,
            compile=cfg.feature_compile, fused_optimizer=False)  # the loop that chose the stored coresets (see fit)
        model.eval()
        info: dict[str, Any] = {"space": "feature", "model": cfg.feature_model, **kwargs,
                                "train_images": take, "epochs": cfg.feature_epochs}
        if len(real.val):  # a diagnostic only (is the space any good?): nothing is selected on it
            nv = min(len(real.val), 2000)
            acc, _ = accuracy(model, real.val.x[:nv], real.val.y[:nv], real.num_classes,
                              batch_size=cfg.embed_batch_size, precision=cfg.feature_precision)
            info.update(val_acc=round(100 * acc, 2), val_images=nv)
        largest = max(len(i) for i in real.class_index)
        return cls(model, min(cfg.embed_batch_size, largest), cfg.feature_precision == "bf16", cfg.embed_compile,
                   info)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) normalised images -> (n, d) float32 vectors."""
        if self.model is None:
            return x.flatten(1).float()
        fn = _compiled_embed() if self.compile else _embed
        outs = []
        for start in range(0, len(x), self.batch_size):
            xb = x[start:start + self.batch_size]
            n = len(xb)
            if self.compile and n < self.batch_size:  # one input shape: no recompilation per class
                xb = torch.cat([xb, xb.new_zeros((self.batch_size - n, *xb.shape[1:]))])
            outs.append(fn(self.model, xb, self.bf16)[:n])
        return torch.cat(outs)


def per_class(method: Method, real: RealData, space: FeatureSpace, callbacks: Sequence[Callback],
              select: Any) -> list[torch.Tensor]:
    """Run `select(c, features (n_c, d), class_indices (n_c,)) -> chosen positions into the class`
    for every class, reporting progress; returns the chosen indices into `real.train` per class."""
    picks = []
    total, start = real.num_classes, time.perf_counter()
    for c, idx in enumerate(real.class_index):
        pos = select(c, space.embed(real.train.x[idx]), idx)
        picks.append(idx[pos])
        method.report(callbacks, Progress(c + 1, total, elapsed=time.perf_counter() - start,
                                          message=f"class {c} ({real.class_names[c]})"))
    return picks


def report_start(method: Method, real: RealData, callbacks: Sequence[Callback], message: str) -> None:
    method.report(callbacks, Progress(0, real.num_classes, message=message))
