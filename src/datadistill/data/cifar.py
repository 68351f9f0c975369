"""CIFAR-10 / CIFAR-100 from the official *binary* release (never the pickled one).

A record is the label byte(s) followed by 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each
32x32 row-major). `data_dir` is the extracted folder, the `.tar.gz` archive (read in memory, not
extracted), or a folder holding either.
"""
from __future__ import annotations

import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from . import DATASETS
from .assemble import assemble, check_labels, raw_split, reject_options
from .base import RealData

_PIXELS = 3 * 32 * 32
_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar",
    "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile",
    "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster",
    "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster",
    "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman",
    "worm",
)


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps what, and how its records look."""

    folder: str
    archive: str
    train: tuple[str, ...]
    test: str
    names_file: str
    classes: tuple[str, ...]
    label_bytes: int  # bytes before the pixels
    label_at: int  # which of them is the label we use
    stats: tuple[tuple[float, ...], tuple[float, ...]]

    @property
    def record(self) -> int:
        return self.label_bytes + _PIXELS

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test)


CIFAR10 = CifarLayout(
    folder="cifar-10-batches-bin", archive="cifar-10-binary.tar.gz",
    train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)), test="test_batch.bin",
    names_file="batches.meta.txt", classes=CIFAR10_CLASSES, label_bytes=1, label_at=0,
    stats=((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
)
CIFAR100 = CifarLayout(
    folder="cifar-100-binary", archive="cifar-100-binary.tar.gz",
    train=("train.bin",), test="test.bin",
    names_file="fine_label_names.txt", classes=CIFAR100_CLASSES, label_bytes=2, label_at=1,
    stats=((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
)


def _read_folder(folder: Path, layout: CifarLayout) -> dict[str, tuple[bytes, str]]:
    """{file name: (bytes, where)} for the files of `layout` present in `folder`."""
    out = {}
    for name in (*layout.files, layout.names_file):
        path = folder / name
        if path.is_file():
            out[name] = (path.read_bytes(), str(path))
    return out


def _read_archive(archive: Path, layout: CifarLayout) -> dict[str, tuple[bytes, str]]:
    """Same as `_read_folder`, streaming the archive once without extracting it to disk."""
    wanted = {*layout.files, layout.names_file}
    out = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted:
                    out[name] = (tar.extractfile(member).read(), f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: cannot read archive ({e})") from None
    return out


def _locate(data_dir: Path, layout: CifarLayout) -> Path:
    """The folder or archive to read, given the path the user passed."""
    if data_dir.is_file():
        return data_dir
    if data_dir.is_dir():
        if (data_dir / layout.test).is_file():
            return data_dir
        for candidate in (data_dir / layout.folder, data_dir / layout.archive):
            if candidate.exists():
                return candidate
    raise DataError(
        f"{layout.folder} not found at {data_dir}: download {layout.archive} from {_URL} and pass "
        "--data-dir pointing to it or to its extracted folder"
    )


def parse_records(data: bytes, where: str, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """Binary records -> images (N, 3, 32, 32) uint8 and labels (N,) uint8 (read-only views)."""
    if len(data) % layout.record:
        raise DataError(
            f"{where}: {len(data)} bytes is not a multiple of the {layout.record}-byte record"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, layout.record)
    labels = records[:, layout.label_at]
    check_labels(labels, len(layout.classes), where)
    return records[:, layout.label_bytes :].reshape(-1, 3, 32, 32), labels


def _class_names(files: dict[str, tuple[bytes, str]], layout: CifarLayout) -> tuple[str, ...]:
    if layout.names_file not in files:
        return layout.classes
    data, where = files[layout.names_file]
    lines = data.decode("utf-8", "replace").splitlines()
    names = tuple(line.strip() for line in lines if line.strip())
    if len(names) != len(layout.classes):
        raise DataError(f"{where}: {len(names)} class names, expected {len(layout.classes)}")
    return names


def load_cifar(
    name: str, data_dir: Path | None, layout: CifarLayout, *, val_fraction: float, split_seed: int
) -> RealData:
    if data_dir is None:
        raise DataError(
            f"{name} needs --data-dir: download {layout.archive} from {_URL} and pass its path "
            "or its extracted folder"
        )
    where = _locate(data_dir, layout)
    files = _read_archive(where, layout) if where.is_file() else _read_folder(where, layout)
    missing = [f for f in layout.files if f not in files]
    if missing:
        raise DataError(f"{where}: missing {', '.join(missing)}")
    parts = [parse_records(*files[f], layout) for f in layout.train]
    train = raw_split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = raw_split(*parse_records(*files[layout.test], layout))
    return assemble(
        name, train, test, _class_names(files, layout), val_fraction=val_fraction,
        split_seed=split_seed, source=where, flip=True, stats=layout.stats,
        info={"test": "official"},
    )


@DATASETS.register("cifar10")
def cifar10(
    data_dir: Path | None, *, val_fraction: float, split_seed: int, **options: Any
) -> RealData:
    """CIFAR-10: 50k/10k colour 32x32 images, 10 classes (binary release)."""
    reject_options("cifar10", options)
    return load_cifar(
        "cifar10", data_dir, CIFAR10, val_fraction=val_fraction, split_seed=split_seed
    )


@DATASETS.register("cifar100")
def cifar100(
    data_dir: Path | None, *, val_fraction: float, split_seed: int, **options: Any
) -> RealData:
    """CIFAR-100: 50k/10k colour 32x32 images, 100 fine classes (binary release)."""
    reject_options("cifar100", options)
    return load_cifar(
        "cifar100", data_dir, CIFAR100, val_fraction=val_fraction, split_seed=split_seed
    )
