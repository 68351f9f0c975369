"""Arrays in one `.npz` or `.safetensors` file (never unpickled).

Keys: `x` images (N, H, W), (N, C, H, W) or (N, H, W, C), uint8 (0..255) or float (taken as
pixel values as they are); `y` integer labels (N,); optionally `x_test` / `y_test` (else a fixed
stratified 20% test split is carved) and, in `.npz`, `class_names` as a string array.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import safetensors
import safetensors.numpy

from ..errors import ConfigError, DataError
from . import DATASETS
from .assemble import assemble, carve_test, check_counts, check_labels, raw_split, reject_options
from .base import RealData, Split

_CHANNELS = (1, 3, 4)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a `.npz` / `.safetensors` file, by key."""
    if not path.is_file():
        raise DataError(
            f"{path}: no such file (tensors dataset needs --data-dir FILE.npz|.safetensors)"
        )
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        if path.suffix == ".safetensors":
            return safetensors.numpy.load_file(str(path))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, safetensors.SafetensorError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    raise DataError(f"{path}: expected a .npz or .safetensors file")


def to_nchw(x: np.ndarray, layout: str | None, where: str) -> np.ndarray:
    """(N, H, W) / (N, C, H, W) / (N, H, W, C) -> (N, C, H, W). `layout` ('nchw' or 'nhwc')
    settles 4-d arrays; without it a last axis of 1, 3 or 4 next to a larger second axis is NHWC."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: images must be (N, H, W) or 4-d, got shape {x.shape}")
    if layout not in (None, "nchw", "nhwc"):
        raise ConfigError(f"layout must be 'nchw' or 'nhwc', got {layout!r}")
    if layout is None:
        nhwc = x.shape[3] in _CHANNELS and x.shape[1] not in _CHANNELS
        layout = "nhwc" if nhwc else "nchw"
    return x.transpose(0, 3, 1, 2) if layout == "nhwc" else x


def check_images(x: np.ndarray, where: str) -> np.ndarray:
    """uint8 stays; float becomes float32 and must be finite; anything else is an error."""
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{where}: images must be uint8 or float, got {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: images contain NaN or infinite values")
    return x


def check_label_array(y: np.ndarray, where: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be a 1-d integer array, got {y.dtype} {y.shape}")
    return y


def _split(
    arrays: dict[str, np.ndarray], xk: str, yk: str, path: Path, layout: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Checked (images (N, C, H, W), labels (N,)) from keys xk / yk."""
    where = f"{path}[{xk}]"
    x = to_nchw(check_images(arrays[xk], where), layout, where)
    y = check_label_array(arrays[yk], f"{path}[{yk}]")
    check_counts(len(x), len(y), where, f"{path}[{yk}]")
    return x, y


def _class_names(
    arrays: dict[str, np.ndarray], given: Sequence[str] | None, labels: list[np.ndarray]
) -> list[str]:
    """The `class_names` option, else a string array stored in the file, else '0'..'K-1'."""
    if given is not None:
        return [str(c) for c in given]
    stored = arrays.get("class_names")
    if stored is not None and stored.dtype.kind == "U":
        return [str(c) for c in stored.tolist()]
    top = max((int(y.max()) for y in labels if y.size), default=-1)
    return [str(c) for c in range(top + 1)]


@DATASETS.register("tensors")
def tensors(
    data_dir: Path | None,
    *,
    val_fraction: float,
    split_seed: int,
    class_names: Sequence[str] | None = None,
    layout: str | None = None,
    **options: Any,
) -> RealData:
    """Images and labels from one `.npz` / `.safetensors` file (`data_dir` is the file path);
    mean/std are computed on the training split."""
    reject_options("tensors", options, ["class_names", "layout"])
    if data_dir is None:
        raise DataError("tensors dataset needs --data-dir FILE.npz|.safetensors holding x and y")
    arrays = load_arrays(data_dir)
    missing = [k for k in ("x", "y") if k not in arrays]
    has_test = [k in arrays for k in ("x_test", "y_test")]
    if missing or any(has_test) != all(has_test):
        raise DataError(
            f"{data_dir}: needs x and y (and x_test with y_test, or neither); "
            f"has {', '.join(sorted(arrays))}"
        )
    x, y = _split(arrays, "x", "y", data_dir, layout)
    if len(x) == 0:
        raise DataError(f"{data_dir}[x]: no images")
    test_arrays = _split(arrays, "x_test", "y_test", data_dir, layout) if all(has_test) else None
    names = _class_names(arrays, class_names, [y] + ([test_arrays[1]] if test_arrays else []))
    check_labels(y, len(names), f"{data_dir}[y]")
    train = raw_split(x, y)
    if test_arrays is not None:
        check_labels(test_arrays[1], len(names), f"{data_dir}[y_test]")
        test = raw_split(*test_arrays)
        _check_shapes(train, test, data_dir)
    else:
        train, test = carve_test(train, len(names))
    return assemble(
        "tensors", train, test, names, val_fraction=val_fraction, split_seed=split_seed,
        source=data_dir, flip=True, info={"test": "x_test" if test_arrays else "carved"},
    )


def _check_shapes(train: Split, test: Split, path: Path) -> None:
    if train.x.shape[1:] != test.x.shape[1:] or train.x.dtype != test.x.dtype:
        raise DataError(
            f"{path}: x_test is {test.x.dtype} {tuple(test.x.shape[1:])} but x is "
            f"{train.x.dtype} {tuple(train.x.shape[1:])}"
        )
