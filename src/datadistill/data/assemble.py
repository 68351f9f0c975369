"""Shared by every source: raw pixels + labels -> a normalised `RealData`.

Sources hand over *raw* pixel tensors (N, C, H, W): uint8 in 0..255, or float already on the
scale the source chose (usually [0, 1]). Splitting happens on the raw pixels so that computed
statistics come from the training part only, and normalising is done once, in place.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import RealData, Split, carve_validation

# Seed of the fixed test split carved from sources that have no official one; independent of
# `split_seed` so that every run of every method is tested on the same images.
TEST_SPLIT_SEED = 20240601
TEST_FRACTION = 0.2
_STATS_CHUNK = 4096


def reject_options(dataset: str, options: dict[str, Any], valid: Iterable[str] = ()) -> None:
    """Raise ConfigError for options a source does not take (instead of a TypeError)."""
    if options:
        names = ", ".join(sorted(options))
        allowed = ", ".join(valid) or "none"
        raise ConfigError(f"dataset {dataset!r} has no option(s) {names}; valid: {allowed}")


def raw_split(x: np.ndarray, y: np.ndarray) -> Split:
    """numpy pixels (N, C, H, W) and labels (N,) -> a Split of raw tensors (labels int64)."""
    x = x if x.flags.writeable else x.copy()
    return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)))


def check_labels(y: np.ndarray, num_classes: int, where: str | Path) -> None:
    """Labels must be integers in [0, num_classes); the message names the file."""
    if y.size == 0:
        return
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise DataError(f"{where}: label {bad} outside [0, {num_classes})")


def check_counts(n_images: int, n_labels: int, images: str | Path, labels: str | Path) -> None:
    if n_images != n_labels:
        raise DataError(f"{images} holds {n_images} images but {labels} holds {n_labels} labels")


def carve_test(train: Split, num_classes: int) -> tuple[Split, Split]:
    """Fixed stratified (train, test) split for sources without an official test set."""
    return carve_validation(train.x, train.y, num_classes, TEST_FRACTION, TEST_SPLIT_SEED)


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Raw pixels -> a new float32 tensor (uint8 scaled to [0, 1])."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32, copy=True)


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of raw pixels (N, C, H, W), in float64, chunked to bound memory.
    A constant channel gets std 1 so that normalising never divides by zero."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(x), _STATS_CHUNK):
        chunk = _as_float(x[start : start + _STATS_CHUNK]).double()
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = max(1, len(x) * x.shape[2] * x.shape[3])
    mean = total / count
    var = (squares / count - mean.square()).clamp_min(0.0)
    std = [math.sqrt(v) if v > 1e-12 else 1.0 for v in var.tolist()]
    return tuple(mean.tolist()), tuple(std)


def normalised(split: Split, mean: Sequence[float], std: Sequence[float]) -> Split:
    """Raw split -> float32 split normalised with per-channel mean/std (one copy, in place)."""
    x = _as_float(split.x)
    x.sub_(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
    x.div_(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
    return Split(x, split.y)


def _check_classes_present(y: torch.Tensor, class_names: Sequence[str], source: str) -> None:
    counts = torch.bincount(y, minlength=len(class_names)).tolist()
    empty = [class_names[c] for c, n in enumerate(counts) if n == 0]
    if empty:
        raise DataError(f"{source}: no training images for class(es) {', '.join(map(str, empty))}")


def assemble(
    name: str,
    train: Split,
    test: Split,
    class_names: Sequence[str],
    *,
    val_fraction: float,
    split_seed: int,
    source: str | Path,
    flip: bool,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
    info: dict[str, Any] | None = None,
) -> RealData:
    """Carve validation from `train` (raw pixels), compute stats on what is left unless `stats`
    is given, normalise all three splits and wrap them in a RealData."""
    class_names = [str(c) for c in class_names]
    _check_classes_present(train.y, class_names, str(source))
    fit, val = carve_validation(train.x, train.y, len(class_names), val_fraction, split_seed)
    mean, std = stats if stats is not None else channel_stats(fit.x)
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    details = {"source": str(source), "val_fraction": val_fraction, "split_seed": split_seed}
    details.update(info or {})
    details["flip"] = flip
    return RealData(
        name=name,
        train=normalised(fit, mean, std),
        val=normalised(val, mean, std),
        test=normalised(test, mean, std),
        class_names=class_names,
        mean=mean,
        std=std,
        info=details,
    )
