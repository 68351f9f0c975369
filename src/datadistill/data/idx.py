"""IDX files (the MNIST family's format), read directly: Fashion-MNIST and MNIST.

An IDX file is: two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of
dimensions, one big-endian uint32 per dimension, then the values. Files may be gzipped.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from . import DATASETS
from .assemble import assemble, check_counts, check_labels, raw_split, reject_options
from .base import RealData, Split
from .download import fetch_files

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_STATS = ((0.2861,), (0.3530,))

MNIST_CLASSES = tuple(str(d) for d in range(10))
MNIST_STATS = ((0.1307,), (0.3081,))
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        # One-shot decompression is several times faster than streaming through gzip.open. Some
        # mirrors serve already-decompressed files under the .gz name: go by the gzip magic.
        return gzip.decompress(data) if data[:2] == _GZIP_MAGIC else data
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """One IDX file of unsigned bytes with `ndim` dimensions -> uint8 array of that shape."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise DataError(f"{path}: bad IDX magic number 0x{magic:08x} (expected 0x{expected:08x})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise DataError(
            f"{path}: {len(data) - header} bytes of data but header shape {shape} needs {size}"
            + (" (truncated)" if len(data) - header < size else "")
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_idx(directory: Path, stem: str) -> Path:
    """`stem` or `stem.gz` inside `directory` (raw first: it is faster to read)."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DataError(f"{directory}: missing {stem}(.gz)")


def missing_idx(directory: Path) -> list[str]:
    """Stems of the standard IDX files found in neither raw nor gzipped form."""
    found = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    return [s for s in IDX_FILES.values() if s not in found and s + ".gz" not in found]


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int) -> Split:
    """Images (N, 28, 28) + labels (N,) -> raw Split with images (N, 1, H, W) uint8."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    check_counts(len(images), len(labels), images_path, labels_path)
    check_labels(labels, num_classes, labels_path)
    return raw_split(images[:, None], labels)


def load_idx_dataset(
    name: str,
    directory: Path,
    class_names: Sequence[str],
    stats: tuple[Sequence[float], Sequence[float]],
    *,
    flip: bool,
    val_fraction: float,
    split_seed: int,
) -> RealData:
    """The four standard IDX files in `directory` -> RealData (official test split)."""
    paths = {key: find_idx(directory, stem) for key, stem in IDX_FILES.items()}
    k = len(class_names)
    train = read_idx_pair(paths["train_images"], paths["train_labels"], k)
    test = read_idx_pair(paths["test_images"], paths["test_labels"], k)
    return assemble(
        name, train, test, class_names, val_fraction=val_fraction, split_seed=split_seed,
        source=directory, flip=flip, stats=stats,
        info={"test": "official"},
    )


def _expected_names() -> str:
    return ", ".join(f"{s}(.gz)" for s in IDX_FILES.values())


FASHION_MNIST_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
# Checksums of the upstream gzip files (the Debian package's files are recompressed, so they are
# read without any checksum; only downloads are checked).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


@DATASETS.register("fashion-mnist")
def fashion_mnist(
    data_dir: Path | None, *, val_fraction: float, split_seed: int, download: bool = False, **options: Any
) -> RealData:
    """Fashion-MNIST: 60k/10k grey 28x28 images of 10 clothing classes.
    Default directory: the Debian package `dataset-fashion-mnist`. With `data_dir` and
    `download=True`, missing files are fetched into `data_dir` from the upstream mirror."""
    reject_options("fashion-mnist", options, ["download"])
    directory = data_dir or FASHION_MNIST_DIR
    if download and data_dir is not None and missing_idx(data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        wanted = [s + ".gz" for s in missing_idx(data_dir)]
        fetch_files(wanted, data_dir, FASHION_MNIST_MIRRORS, FASHION_MNIST_MD5, what="Fashion-MNIST")
    if not directory.is_dir():
        raise DataError(
            f"Fashion-MNIST not found in {directory}: `apt-get install dataset-fashion-mnist` "
            f"or pass --data-dir DIR holding {_expected_names()}"
        )
    return load_idx_dataset(
        "fashion-mnist", directory, FASHION_MNIST_CLASSES, FASHION_MNIST_STATS, flip=True,
        val_fraction=val_fraction, split_seed=split_seed,
    )


@DATASETS.register("mnist")
def mnist(
    data_dir: Path | None,
    *,
    val_fraction: float,
    split_seed: int,
    download: bool = False,
    **options: Any,
) -> RealData:
    """MNIST: 60k/10k grey 28x28 digits. Needs `data_dir`; `download=True` fetches missing files
    into it from public mirrors."""
    reject_options("mnist", options, ["download"])
    if data_dir is None:
        raise DataError(
            f"mnist needs --data-dir DIR holding {_expected_names()} "
            "(add download=True to fetch them into DIR)"
        )
    if missing_idx(data_dir):
        if not download:
            raise DataError(
                f"MNIST files missing in {data_dir}: expected {_expected_names()} "
                "(or pass download=True)"
            )
        wanted = [s + ".gz" for s in missing_idx(data_dir)]
        fetch_files(wanted, data_dir, MNIST_MIRRORS, MNIST_MD5, what="MNIST")
    return load_idx_dataset(
        "mnist", data_dir, MNIST_CLASSES, MNIST_STATS, flip=False,
        val_fraction=val_fraction, split_seed=split_seed,
    )
