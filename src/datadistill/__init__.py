"""datadistill: dataset distillation, with one fair evaluation protocol and a portable format.

    import datadistill as dd
    real = dd.load_dataset("fashion-mnist")
    syn = dd.distill(real, method="random", ipc=10, seed=0)
    result = dd.evaluate(syn, real, protocol="dc")
    syn.save("runs/fmnist-random-10")
"""
from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path
from typing import Any

from .data import RealData, list_datasets, load_dataset
from .errors import DatadistillError
from .evaluation import EvalResult, Protocol, evaluate
from .methods import get_method, list_methods
from .models import get_model, list_models
from .synthetic import SyntheticSet
from ._runtime import tune_allocator


def distill(real: RealData, method: str, ipc: int, *, seed: int = 0, run_dir: str | Path | None = None,
            callbacks=(), teacher: Any = None, group: Any = None, **config: Any) -> SyntheticSet:
    """Distil `real` with registered `method` to `ipc` images per class; `config` overrides defaults.
    Methods that need a teacher use `teacher` (`datadistill.teachers.get_teacher`). `group`: the
    torchrun processes to split the classes across (`datadistill.distributed.from_env()`)."""
    from .distributed import SINGLE

    return get_method(method, **config).distill(real, ipc, seed=seed, run_dir=run_dir, callbacks=callbacks,
                                                teacher=teacher, group=group or SINGLE)


def load(directory: str | Path) -> SyntheticSet:
    """Load a distilled-set directory (safetensors + manifest.json)."""
    return SyntheticSet.load(directory)


__all__ = [
    "DatadistillError", "EvalResult", "Protocol", "RealData", "SyntheticSet", "__version__", "distill",
    "evaluate", "get_method", "get_model", "list_datasets", "list_methods", "list_models", "load",
    "load_dataset", "tune_allocator",
]
