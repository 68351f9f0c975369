"""SyntheticSet: the distilled set, and its public on-disk format.

A distilled-set directory holds
- `synthetic.safetensors`: `images` float32 (N, C, H, W) in normalised space; `labels` int64 (N,)
  (hard) or float32 (N, K) (soft); optional `lr` (learned learning rate(s)); optional `weights` (N,);
  optional `classes` int64 (N,) (the class each soft-labelled image was made for); optional
  per-view soft labels `view_*` (see `datadistill.softlabels`).
- `manifest.json`: format version, dataset, class names, image shape, per-channel mean/std, ipc,
  method and config, seed, versions, wall time, iterations, storage bytes, evaluation results.
Loading never unpickles anything; a user with only torch + safetensors + json can read it.
"""
from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ._io import atomic_write_json, atomic_write_with
from .errors import FormatError

FORMAT_VERSION = 1
TENSORS_FILE = "synthetic.safetensors"
MANIFEST_FILE = "manifest.json"


@dataclass
class SyntheticSet:
    """A distilled set. `images`: (N, C, H, W) float32 normalised with `mean`/`std`.
    `labels`: (N,) int64 hard labels or (N, K) float32 soft labels (probabilities or logits, as
    `meta["soft_labels"]` says). `lr`: optional learned learning rate(s). `weights`: optional (N,).
    `classes`: optional (N,) int64, the class each image was made for (soft-labelled sets; their
    hard-label evaluation uses it). `views`: optional per-view soft labels (`softlabels.VIEW_KEYS`)."""

    images: torch.Tensor
    labels: torch.Tensor
    dataset: str
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    ipc: int
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    lr: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # wall_time_s, iterations, evaluation, ...
    classes: torch.Tensor | None = None
    views: dict[str, torch.Tensor] | None = None
    # `library_version` and `git_revision` of the code that made a set loaded from disk, which a
    # re-save (e.g. `evaluate` adding its results) keeps; None: the set was made by this process's code
    made_by: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise FormatError(f"images must be (N, C, H, W), got {tuple(self.images.shape)}")
        n = len(self.images)
        if len(self.labels) != n:
            raise FormatError(f"{n} images but {len(self.labels)} labels")
        if self.labels.ndim == 1:
            if self.labels.dtype != torch.int64:
                raise FormatError(f"hard labels must be int64, got {self.labels.dtype}")
            if n and (int(self.labels.min()) < 0 or int(self.labels.max()) >= self.num_classes):
                raise FormatError(f"labels outside [0, {self.num_classes})")
        elif self.labels.ndim == 2:
            if self.labels.shape[1] != self.num_classes:
                raise FormatError(f"soft labels need {self.num_classes} columns, got {self.labels.shape[1]}")
            self.labels = self.labels.float()
        else:
            raise FormatError(f"labels must be (N,) or (N, K), got {tuple(self.labels.shape)}")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise FormatError("mean/std need one value per image channel")
        if self.weights is not None and self.weights.shape != (n,):
            raise FormatError(f"weights must be ({n},), got {tuple(self.weights.shape)}")
        if self.classes is not None:
            if self.classes.shape != (n,) or self.classes.dtype != torch.int64:
                raise FormatError(f"classes must be int64 ({n},), got {self.classes.dtype} {tuple(self.classes.shape)}")
            if n and (int(self.classes.min()) < 0 or int(self.classes.max()) >= self.num_classes):
                raise FormatError(f"classes outside [0, {self.num_classes})")
        if self.views is not None:
            from .softlabels import check_views

            check_views(self.views, n, self.num_classes)
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    # ---- derived ------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def soft_labels(self) -> bool:
        return self.labels.ndim == 2

    @property
    def hard_labels(self) -> torch.Tensor:
        """(N,) int64: the labels; for soft labels, `classes` when stored, else their argmax."""
        if not self.soft_labels:
            return self.labels
        return self.classes if self.classes is not None else self.labels.argmax(1)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"images": self.images.float().contiguous(), "labels": self.labels.contiguous()}
        if self.lr is not None:
            out["lr"] = self.lr.detach().float().reshape(-1).contiguous()
        if self.weights is not None:
            out["weights"] = self.weights.detach().float().contiguous()
        if self.classes is not None:
            out["classes"] = self.classes.contiguous()
        for key, t in (self.views or {}).items():
            out[key] = t.contiguous()
        return out

    @property
    def storage_bytes(self) -> dict[str, int]:
        """Bytes of everything evaluation needs, as stored (float32 images, labels, lr, weights,
        classes, per-view soft labels)."""
        parts = {k: t.numel() * t.element_size() for k, t in self.tensors().items()}
        parts["total"] = sum(parts.values())
        return parts

    def pixels(self) -> torch.Tensor:
        """Images in pixel space [0, 1] (clamped), (N, C, H, W)."""
        m = torch.tensor(self.mean).view(1, -1, 1, 1)
        s = torch.tensor(self.std).view(1, -1, 1, 1)
        return (self.images.detach().float() * s + m).clamp(0, 1)

    def manifest(self) -> dict[str, Any]:
        from . import __version__

        return {
            "format": "datadistill-synthetic",
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "class_names": list(self.class_names),
            "num_classes": self.num_classes,
            "image_shape": list(self.images.shape[1:]),
            "num_images": len(self.images),
            "ipc": self.ipc,
            "labels": "soft" if self.soft_labels else "hard",
            "mean": list(self.mean),
            "std": list(self.std),
            "method": self.method,
            "config": self.config,
            "seed": self.seed,
            "has_lr": self.lr is not None,
            "has_weights": self.weights is not None,
            "has_views": self.views is not None,
            "storage_bytes": self.storage_bytes,
            **(self.made_by or {"library_version": __version__, "git_revision": _git_revision()}),
            **self.meta,
        }

    # ---- disk ---------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the set into `directory` (created if needed); each file is written atomically."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tensors = self.tensors()
        atomic_write_with(d / TENSORS_FILE, lambda p: save_file(tensors, str(p), metadata={"format": "datadistill"}))
        atomic_write_json(d / MANIFEST_FILE, self.manifest())
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "SyntheticSet":
        d = Path(directory)
        tpath, mpath = d / TENSORS_FILE, d / MANIFEST_FILE
        for p in (tpath, mpath):
            if not p.is_file():
                raise FormatError(f"{p}: missing; not a distilled-set directory")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise FormatError(f"{mpath}: not valid JSON ({e})") from None
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise FormatError(f"{mpath}: format version {manifest['format_version']} is newer than this library")
        try:
            t = load_file(str(tpath))
        except Exception as e:  # safetensors raises its own error types
            raise FormatError(f"{tpath}: cannot read ({e})") from None
        for key in ("images", "labels"):
            if key not in t:
                raise FormatError(f"{tpath}: no {key!r} tensor")
        known = {"format", "format_version", "dataset", "class_names", "num_classes", "image_shape",
                 "num_images", "ipc", "labels", "mean", "std", "method", "config", "seed", "has_lr",
                 "has_weights", "has_views", "storage_bytes", "library_version", "git_revision"}
        from .softlabels import VIEW_KEYS

        views = {k: t[k] for k in VIEW_KEYS if k in t} or None
        try:
            return cls(
                images=t["images"], labels=t["labels"], dataset=manifest["dataset"],
                class_names=manifest["class_names"], mean=tuple(manifest["mean"]), std=tuple(manifest["std"]),
                ipc=int(manifest["ipc"]), method=manifest["method"], config=manifest.get("config", {}),
                seed=int(manifest.get("seed", 0)), lr=t.get("lr"), weights=t.get("weights"),
                classes=t.get("classes"), views=views,
                meta={k: v for k, v in manifest.items() if k not in known},
                made_by={k: manifest.get(k) for k in ("library_version", "git_revision")},
            )
        except KeyError as e:
            raise FormatError(f"{mpath}: missing field {e}") from None


@functools.cache  # one `git` call per process, not one per save or benchmark cell
def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
