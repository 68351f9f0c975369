"""Best of K random subsets, chosen on the validation split (never the test split)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ...data import RealData
from ...errors import ConfigError
from ...evaluation import PRESETS, evaluate, get_protocol
from ...synthetic import SyntheticSet
from ..base import Callback, Method, MethodConfig, register
from ._common import random_indices, selection_set


@register
class BestOfRandom(Method):
    """Draw `candidates` random subsets (`ipc` per class, as `random` does; candidate 0 is exactly
    `random`'s set for the same seed) and keep the one whose models score best on the VALIDATION
    split under a short protocol: preset `protocol` with `epochs` epochs and `num_models` models,
    model seed = `seed` for every candidate (so candidates differ only in their images). Ties keep
    the earliest candidate. Every candidate's validation accuracy is recorded in
    `meta["candidate_val_acc"]`.

    Cost: `candidates` x `num_models` trainings of `epochs` epochs on the subset plus one pass
    over the validation split each; with the defaults at IPC 10 on Fashion-MNIST about 10-15 s
    per candidate on 2 CPU cores (plus one ~20 s compile when `compile`)."""

    name = "best-of-random"
    summary = "coreset: the best of K random subsets, chosen on the validation split"

    @dataclass(frozen=True)
    class Config(MethodConfig):
        candidates: int = 10
        protocol: str = "dc"
        epochs: int = 100
        num_models: int = 1
        compile: bool = True

        def validate(self) -> None:
            if self.candidates < 1:
                raise ConfigError(f"candidates must be positive, got {self.candidates}")
            if self.protocol not in PRESETS:
                raise ConfigError(f"unknown protocol {self.protocol!r}; valid: {', '.join(sorted(PRESETS))}")
            if self.epochs < 1 or self.num_models < 1:
                raise ConfigError(f"epochs and num_models must be positive, got {self.epochs}, {self.num_models}")

    tags = frozenset({"selection"})

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        cfg = self.config
        if len(real.val) == 0:
            raise ConfigError(f"{self.name} selects on the validation split, and {real.name} has none")
        protocol = get_protocol(cfg.protocol, epochs=cfg.epochs, num_models=cfg.num_models, compile=cfg.compile,
                                seed=seed)
        g = torch.Generator().manual_seed(seed)
        best, best_picks, scores = self.keep_best(
            cfg.candidates, lambda _k: random_indices(real, ipc, g),
            lambda picks: evaluate(selection_set(self, real, picks, ipc, seed), real, protocol, split="val").mean,
            callbacks, "candidate (val)")
        return selection_set(self, real, best_picks, ipc, seed, candidate_val_acc=scores, best_candidate=best,
                             selection_split="val", selection_protocol=protocol.as_dict())
