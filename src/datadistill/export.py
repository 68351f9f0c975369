"""Exporters and views of a SyntheticSet: image folder of PNGs, .npz, a torch Dataset, a PNG grid."""
from __future__ import annotations

import json

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ._io import atomic_write_with, replace_dir
from .errors import RunDirError
from .synthetic import SyntheticSet


def _to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8."""
    return (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _pil(img: np.ndarray) -> Image.Image:
    if img.shape[2] == 1:
        return Image.fromarray(img[:, :, 0], mode="L")
    if img.shape[2] == 3:
        return Image.fromarray(img, mode="RGB")
    return Image.fromarray(img[:, :, :3], mode="RGB")  # more channels: keep the first three


def _safe_name(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return keep or "class"


def export_folder(syn: SyntheticSet, out: str | Path, *, force: bool = False) -> Path:
    """One sub-folder per class (`000_T-shirt_top/`), one PNG per image; soft labels go to
    `labels.json` beside the images (the folder is the argmax class). Written to a temporary
    directory first, then moved into place."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not force:
        raise RunDirError(f"{out}: exists and is not empty (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    imgs = _to_uint8(syn.pixels())
    hard = syn.hard_labels.tolist()
    count = [0] * syn.num_classes
    soft = {}
    for i, (img, c) in enumerate(zip(imgs, hard)):
        d = tmp / f"{c:03d}_{_safe_name(syn.class_names[c])}"
        d.mkdir(exist_ok=True)
        name = f"{count[c]:05d}.png"
        count[c] += 1
        _pil(img).save(d / name)
        if syn.soft_labels:
            soft[f"{d.name}/{name}"] = syn.labels[i].tolist()
    if soft:
        (tmp / "labels.json").write_text(json.dumps(soft))
    (tmp / "manifest.json").write_text(json.dumps(syn.manifest(), indent=2))
    replace_dir(tmp, out)
    return out


def export_npz(syn: SyntheticSet, out: str | Path, *, force: bool = False) -> Path:
    """`x` float32 normalised images, `y` labels, `pixels` uint8 (N, H, W, C), `mean`, `std`, and
    `lr` / `weights` when present. Loadable with `numpy.load(path)` (no pickle)."""
    out = Path(out)
    if out.exists() and not force:
        raise RunDirError(f"{out}: exists (use --force to replace it)")
    arrays = {"x": syn.images.numpy(), "y": syn.labels.numpy(), "pixels": _to_uint8(syn.pixels()),
              "mean": np.array(syn.mean, dtype=np.float32), "std": np.array(syn.std, dtype=np.float32),
              "class_names": np.array(syn.class_names)}
    if syn.lr is not None:
        arrays["lr"] = syn.lr.detach().numpy()
    if syn.weights is not None:
        arrays["weights"] = syn.weights.numpy()

    def write(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    atomic_write_with(out, write)
    return out


class SyntheticDataset(Dataset):
    """A torch Dataset over a SyntheticSet: items are (image (C, H, W) float32, label)."""

    def __init__(self, syn: SyntheticSet) -> None:
        self.images = syn.images.detach().float()
        self.labels = syn.labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]


def grid_image(syn: SyntheticSet, *, max_per_class: int = 10, scale: int = 2) -> Image.Image:
    """A PIL image: one row per class, up to `max_per_class` images each, 1-pixel gaps."""
    pixels = _to_uint8(syn.pixels())
    hard = syn.hard_labels
    n, h, w, c = pixels.shape
    cols = max(1, min(max_per_class, max(int((hard == k).sum()) for k in range(syn.num_classes))))
    rows = syn.num_classes
    canvas = np.full(((h + 1) * rows + 1, (w + 1) * cols + 1, 3), 255, dtype=np.uint8)
    for k in range(rows):
        idx = torch.nonzero(hard == k).flatten()[:cols].tolist()
        for j, i in enumerate(idx):
            img = pixels[i]
            img3 = np.repeat(img, 3, axis=2) if c == 1 else img[:, :, :3]
            y0, x0 = 1 + k * (h + 1), 1 + j * (w + 1)
            canvas[y0:y0 + h, x0:x0 + w] = img3
    im = Image.fromarray(canvas, mode="RGB")
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    return im


def save_grid(syn: SyntheticSet, out: str | Path, **kwargs) -> Path:
    out = Path(out)
    im = grid_image(syn, **kwargs)
    atomic_write_with(out, lambda p: im.save(p, format="PNG"))
    return out


