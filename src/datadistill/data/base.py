"""In-memory real datasets: splits, per-class index, normalisation statistics."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch

from ..errors import DataError


@dataclass(frozen=True)
class Split:
    """One split. `x`: (N, C, H, W) float32, normalised with the dataset's mean/std.
    `y`: (N,) int64 class indices in [0, num_classes)."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise DataError(f"images must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise DataError(f"{len(self.x)} images but labels of shape {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class RealData:
    """A labelled dataset with train / validation / test splits.

    The validation split is carved from the original training data with a fixed seed (see
    `carve_validation`); methods distil from `train`, evaluation selects on `val`, and only the
    final report touches `test`.
    """

    name: str
    train: Split
    val: Split
    test: Split
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict = field(default_factory=dict)  # source paths, split seed, anything descriptive

    def __post_init__(self) -> None:
        k = len(self.class_names)
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            if len(split) and (int(split.y.min()) < 0 or int(split.y.max()) >= k):
                raise DataError(f"{self.name}: {split_name} labels outside [0, {k})")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise DataError(f"{self.name}: mean/std need {self.channels} values")

    @property
    def device(self) -> torch.device:
        """Where the splits' tensors live (methods that support it run there)."""
        return self.train.x.device

    def to(self, device: str | torch.device) -> RealData:
        """A copy whose splits live on `device` (itself when they already do). Labels and the
        per-class index stay usable with CPU generators (indices are drawn on the CPU)."""
        device = torch.device(device)
        if self.train.x.device == device:
            return self
        moved = {name: Split(getattr(self, name).x.to(device), getattr(self, name).y.to(device))
                 for name in ("train", "val", "test")}
        return RealData(self.name, **moved, class_names=list(self.class_names), mean=self.mean, std=self.std,
                        info=dict(self.info))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return int(self.train.x.shape[1])

    @cached_property
    def class_index(self) -> list[torch.Tensor]:
        """`class_index[c]`: indices into `train` of the images of class c."""
        y = self.train.y.cpu()  # indices on the CPU: drawn with CPU generators, they index any device
        order = torch.argsort(y, stable=True)
        counts = torch.bincount(y, minlength=self.num_classes).tolist()
        return list(torch.split(order, counts))

    def sample_class(self, c: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """n real training images of class c (without replacement when n <= class size)."""
        idx = self.class_index[c]
        if len(idx) == 0:
            raise DataError(f"{self.name}: class {c} ({self.class_names[c]}) has no training images")
        if n <= len(idx):
            pick = idx[torch.randperm(len(idx), generator=generator)[:n]]
        else:
            pick = idx[torch.randint(len(idx), (n,), generator=generator)]
        return self.train.x[pick]

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images -> pixel values in [0, 1] (not clamped)."""
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
        return x * std + mean


def normalise(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Pixels in [0, 1], (N, C, H, W) -> float32 normalised."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (pixels.float() - m) / s


def carve_validation(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, fraction: float, seed: int
) -> tuple[Split, Split]:
    """Stratified split of (x, y) into (train, val): `fraction` of each class goes to validation
    (at least one image per class when the class has two or more), chosen with `seed`."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    val_idx = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) == 0:
            continue
        n_val = int(round(fraction * len(idx)))
        if fraction > 0 and n_val == 0 and len(idx) >= 2:
            n_val = 1
        val_idx.append(idx[torch.randperm(len(idx), generator=g)[:n_val]])
    val = torch.cat(val_idx) if val_idx else torch.empty(0, dtype=torch.long)
    val = torch.sort(val).values
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[val] = False
    return Split(x[keep], y[keep]), Split(x[val], y[val])
