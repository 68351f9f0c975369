"""Any image folder with one sub-folder per class (`root/<class>/<image>`).

With `root/train/` and `root/test/` both present, they are the two splits (same class
sub-folders); otherwise a fixed stratified 20% test split is carved. Hidden files are ignored;
anything else that PIL cannot open is an error naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError
from . import DATASETS
from .assemble import assemble, carve_test, raw_split, reject_options
from .base import RealData, Split

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_GREY = {"1", "L", "I", "I;16", "I;16B", "I;16L", "F"}


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def class_folders(root: Path) -> list[Path]:
    """The class sub-folders of `root`, sorted by name (files at the top level are ignored)."""
    folders = [p for p in _visible(root) if p.is_dir()]
    if not folders:
        raise DataError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    return folders


def _image_files(folder: Path) -> list[Path]:
    files = _visible(folder)
    for path in files:
        if not path.is_file():
            raise DataError(f"{path}: not an image file (class folders hold images only)")
    if not files:
        raise DataError(f"{folder}: empty class folder")
    return files


def _target_mode(first: Path, channels: int | None) -> str:
    """PIL mode every image is converted to: from `channels`, else from the first image."""
    if channels is not None:
        if channels not in _MODES:
            raise ConfigError(f"channels must be one of {sorted(_MODES)}, got {channels}")
        return _MODES[channels]
    mode = _open(first).mode
    return "L" if mode in _GREY else "RGBA" if mode in ("RGBA", "LA", "PA") else "RGB"


def _open(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e.__class__.__name__})") from None


def read_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image -> uint8 (C, H, W), converted to `mode` and resized to `size` (W, H) if given."""
    img = _open(path)
    if img.mode != mode:
        img = img.convert(mode)
    if size is not None and img.size != size:
        img = img.resize(size, Image.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_images(files: Sequence[Path], mode: str, image_size: int | None) -> np.ndarray:
    """Images -> (N, C, H, W) uint8. Without `image_size` all must match the first one's size."""
    resize = (image_size, image_size) if image_size else None
    first = read_image(files[0], mode, resize)
    out = np.empty((len(files), *first.shape), dtype=np.uint8)
    out[0] = first
    for i, path in enumerate(files[1:], start=1):
        img = read_image(path, mode, resize)
        if img.shape != first.shape:
            raise DataError(
                f"{path}: size {img.shape[2]}x{img.shape[1]} differs from {files[0].name} "
                f"({first.shape[2]}x{first.shape[1]}); pass image_size to resize"
            )
        out[i] = img
    return out


def read_split(root: Path, class_names: Sequence[str], mode: str, image_size: int | None) -> Split:
    """Every image under root/<class>/ for the given classes -> raw Split."""
    files: list[Path] = []
    labels: list[int] = []
    for c, name in enumerate(class_names):
        folder = root / name
        if folder.is_dir():
            found = _image_files(folder)
            files += found
            labels += [c] * len(found)
    if not files:
        raise DataError(f"{root}: no images")
    return raw_split(read_images(files, mode, image_size), np.asarray(labels, dtype=np.int64))


def _check_test_classes(train_root: Path, test_root: Path) -> list[str]:
    names = [p.name for p in class_folders(train_root)]
    extra = sorted({p.name for p in class_folders(test_root)} - set(names))
    if extra:
        raise DataError(f"{test_root}: class folder(s) {', '.join(extra)} not in {train_root}")
    return names


@DATASETS.register("folder")
def image_folder(
    data_dir: Path | None,
    *,
    val_fraction: float,
    split_seed: int,
    image_size: int | None = None,
    channels: int | None = None,
    **options: Any,
) -> RealData:
    """Images from `data_dir/<class>/` (or `data_dir/{train,test}/<class>/`); class names are the
    sorted sub-folder names; mean/std are computed on the training split."""
    reject_options("folder", options, ["image_size", "channels"])
    if data_dir is None or not data_dir.is_dir():
        raise DataError(
            f"folder dataset needs --data-dir pointing to an image folder, got {data_dir}"
        )
    split_dirs = (data_dir / "train").is_dir() and (data_dir / "test").is_dir()
    train_root = data_dir / "train" if split_dirs else data_dir
    if split_dirs:
        class_names = _check_test_classes(train_root, data_dir / "test")
    else:
        class_names = [p.name for p in class_folders(data_dir)]
    first = _image_files(train_root / class_names[0])[0]
    mode = _target_mode(first, channels)
    train = read_split(train_root, class_names, mode, image_size)
    if split_dirs:
        test = read_split(data_dir / "test", class_names, mode, image_size)
        test_note = "test/ folder"
        _check_same_shape(train, test, data_dir / "test")
    else:
        train, test = carve_test(train, len(class_names))
        test_note = "carved"
    return assemble(
        "folder", train, test, class_names, val_fraction=val_fraction, split_seed=split_seed,
        source=data_dir, flip=True,
        info={"test": test_note, "image_size": image_size, "mode": mode},
    )


def _check_same_shape(train: Split, test: Split, where: Path) -> None:
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(
            f"{where}: images of shape {tuple(test.x.shape[1:])}, training images are "
            f"{tuple(train.x.shape[1:])}; pass image_size"
        )
