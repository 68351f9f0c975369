"""Dataset sources behind a registry. Every source returns a `RealData` with train / val / test.

A source is a function `(data_dir: Path | None, *, val_fraction: float, split_seed: int, **options)
-> RealData` registered with `@DATASETS.register("name")`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..registry import Registry
from .base import RealData, Split, carve_validation, normalise

DATASETS: Registry[Callable[..., RealData]] = Registry("dataset")


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    **options: Any,
) -> RealData:
    """Load dataset `name` (see `list_datasets()`); `data_dir` overrides where its files are."""
    source = DATASETS.get(name)
    path = Path(data_dir).expanduser() if data_dir is not None else None
    return source(path, val_fraction=val_fraction, split_seed=split_seed, **options)


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


# Sources register themselves on import.
from . import sources as _sources  # noqa: E402,F401

__all__ = ["DATASETS", "RealData", "Split", "carve_validation", "load_dataset", "list_datasets", "normalise"]
