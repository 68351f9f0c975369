"""Soft labels as data: per-image teacher probabilities, or per-view relabelling.

Per-view relabelling (as in SRe2L / RDED evaluation, FKD-style) gives every image one augmented view
per training epoch and the teacher's output on that view. A set stores the views' parameters and
the top-k teacher logits, so that evaluation needs no teacher and the bytes it needs are counted:

- `view_boxes` float16 (E, N, 4): crop box (centre y, centre x, height, width) as fractions of the
  image side; the view is the box resized to the full image with bilinear sampling
  (`F.affine_grid` with theta [[w * s, 0, 2 cx - 1], [0, h, 2 cy - 1]], `align_corners=False`,
  s = -1 when flipped, else 1);
- `view_flips` uint8 (E, N): horizontal flip;
- `view_partners` int32 (E, N) and `view_mix_boxes` float16 (E, N, 4): CutMix, the pixels whose
  centres fall inside the mix box (same units) are taken from the partner image's view of that
  epoch (a zero-area box: no mixing);
- `view_logits` float16 (E, N, k): the teacher's top-k logits on the (mixed) view, and
  `view_classes` int16 (E, N, k) their classes (absent when k equals the number of classes: then
  the logits are in class order).
Epoch e of training uses views e mod E. The target of a view is softmax(logits / T) over its k
classes (zero elsewhere), T being the evaluation protocol's temperature.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from .errors import ConfigError, FormatError

VIEW_KEYS = ("view_boxes", "view_flips", "view_partners", "view_mix_boxes", "view_logits", "view_classes")


@dataclass(frozen=True)
class ViewRecipe:
    """How views are drawn. `scale`: range of the crop's area fraction (RandomResizedCrop);
    `ratio`: range of its aspect ratio; `flip`: horizontal flips (never for digits); `cutmix`:
    probability that a view is mixed with a partner's (box area 1 - lambda, lambda ~ U(0, 1));
    `epochs`: views per image; `top_k`: teacher logits kept per view."""

    epochs: int = 1000
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    flip: bool = True
    cutmix: float = 1.0
    top_k: int = 10

    def validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"views epochs must be at least 1, got {self.epochs}")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"views scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"views ratio must satisfy 0 < min <= max, got {self.ratio}")
        if not 0 <= self.cutmix <= 1:
            raise ConfigError(f"views cutmix must be a probability, got {self.cutmix}")
        if self.top_k < 1:
            raise ConfigError(f"views top_k must be at least 1, got {self.top_k}")


def sample_views(n: int, recipe: ViewRecipe, generator: torch.Generator, flip: bool) -> dict[str, torch.Tensor]:
    """Parameters of one epoch's views of n images (no logits yet)."""
    lo, hi = recipe.scale
    area = lo + (hi - lo) * torch.rand(n, generator=generator)
    logr = math.log(recipe.ratio[0]) + (math.log(recipe.ratio[1]) - math.log(recipe.ratio[0])) * torch.rand(
        n, generator=generator)
    r = logr.exp()
    h = (area / r).sqrt().clamp(max=1.0)
    w = (area * r).sqrt().clamp(max=1.0)
    cy = h / 2 + (1 - h) * torch.rand(n, generator=generator)
    cx = w / 2 + (1 - w) * torch.rand(n, generator=generator)
    flips = (torch.rand(n, generator=generator) < 0.5) & flip
    partners = torch.randperm(n, generator=generator).to(torch.int32)
    lam = torch.rand(n, generator=generator)
    side = (1 - lam).sqrt()
    mix = torch.rand(n, generator=generator) < recipe.cutmix
    mh, mw = side * mix, side * mix
    my, mx = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    return {
        "view_boxes": torch.stack([cy, cx, h, w], 1).half(),
        "view_flips": flips.to(torch.uint8),
        "view_partners": partners,
        "view_mix_boxes": torch.stack([my, mx, mh, mw], 1).half(),
    }


def crop_views(images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Each image's crop box resized to the full image (bilinear), flipped where `flips`."""
    n = len(images)
    b = boxes.float()
    cy, cx, h, w = b.unbind(1)
    sign = 1 - 2 * flips.float()
    z = torch.zeros(n)
    theta = torch.stack([torch.stack([w * sign, z, 2 * cx - 1], 1), torch.stack([z, h, 2 * cy - 1], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def mix_mask(mix_boxes: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) bool: pixel centres inside each mix box."""
    H, W = hw
    b = mix_boxes.float()
    cy, cx, h, w = (t.view(-1, 1, 1) for t in b.unbind(1))
    ys = ((torch.arange(H) + 0.5) / H).view(1, H, 1)
    xs = ((torch.arange(W) + 0.5) / W).view(1, 1, W)
    inside = ((ys - cy).abs() <= h / 2) & ((xs - cx).abs() <= w / 2)
    return inside.unsqueeze(1)


def render_views(images: torch.Tensor, views: dict[str, torch.Tensor], epoch: int,
                 idx: torch.Tensor | None = None) -> torch.Tensor:
    """The views of epoch `epoch` (mod the stored epochs) of images `idx` (default all)."""
    e = epoch % views["view_boxes"].shape[0]
    if idx is None:
        idx = torch.arange(len(images))
    boxes, flips = views["view_boxes"][e], views["view_flips"][e]
    own = crop_views(images[idx], boxes[idx], flips[idx])
    partner = views["view_partners"][e][idx].long()
    mixb = views["view_mix_boxes"][e][idx]
    if not bool((mixb[:, 2:] > 0).any()):
        return own
    other = crop_views(images[partner], boxes[partner], flips[partner])
    return torch.where(mix_mask(mixb, tuple(images.shape[2:])), other, own)


def view_targets(views: dict[str, torch.Tensor], epoch: int, idx: torch.Tensor, num_classes: int,
                 temperature: float) -> torch.Tensor:
    """(len(idx), K) probabilities: softmax(top-k logits / T), zero outside the top k."""
    e = epoch % views["view_logits"].shape[0]
    logits = views["view_logits"][e][idx].float()
    p = torch.softmax(logits / temperature, 1)
    if "view_classes" not in views:
        return p
    out = torch.zeros(len(idx), num_classes)
    return out.scatter_(1, views["view_classes"][e][idx].long(), p)


def relabel_views(images: torch.Tensor, teacher_logits: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                  recipe: ViewRecipe, generator: torch.Generator, flip: bool,
                  progress: Callable[[int, int], None] | None = None) -> dict[str, torch.Tensor]:
    """Draw `recipe.epochs` views per image and keep the teacher's top-k logits on each."""
    recipe.validate()
    n, k = len(images), min(recipe.top_k, num_classes)
    parts: dict[str, list[torch.Tensor]] = {key: [] for key in VIEW_KEYS}
    for e in range(recipe.epochs):
        v = sample_views(n, recipe, generator, flip)
        x = render_views(images, {key: t.unsqueeze(0) for key, t in v.items()}, 0)
        logits = teacher_logits(x)
        top, cls = logits.topk(k, 1) if k < num_classes else (logits, None)
        for key, t in v.items():
            parts[key].append(t)
        parts["view_logits"].append(top.half())
        if cls is not None:
            parts["view_classes"].append(cls.to(torch.int16))
        if progress is not None:
            progress(e + 1, recipe.epochs)
    return {key: torch.stack(ts) for key, ts in parts.items() if ts}


def check_views(views: dict[str, torch.Tensor], n: int, num_classes: int) -> None:
    """Raise FormatError when stored views do not fit n images of num_classes classes."""
    missing = [k for k in VIEW_KEYS[:5] if k not in views]
    if missing:
        raise FormatError(f"soft-label views incomplete: missing {missing}")
    e = views["view_boxes"].shape[0]
    shapes = {"view_boxes": (e, n, 4), "view_flips": (e, n), "view_partners": (e, n), "view_mix_boxes": (e, n, 4)}
    for key, shape in shapes.items():
        if tuple(views[key].shape) != shape:
            raise FormatError(f"{key} must be {shape}, got {tuple(views[key].shape)}")
    lg = views["view_logits"]
    if lg.ndim != 3 or lg.shape[:2] != (e, n):
        raise FormatError(f"view_logits must be ({e}, {n}, k), got {tuple(lg.shape)}")
    if "view_classes" in views:
        if views["view_classes"].shape != lg.shape:
            raise FormatError("view_classes must have the shape of view_logits")
    elif lg.shape[2] != num_classes:
        raise FormatError(f"view_logits hold {lg.shape[2]} of {num_classes} classes but no view_classes")
    p = views["view_partners"]
    if n and (int(p.min()) < 0 or int(p.max()) >= n):
        raise FormatError("view_partners outside the set")


def view_batches(images: torch.Tensor, views: dict[str, torch.Tensor], num_classes: int, batch_size: int,
                 temperature: float, stored_targets: bool = True,
                 ) -> Callable[[int, torch.Tensor], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A `fit(batches=...)` source: each step's views and their stored teacher targets (with
    `stored_targets=False`, an empty placeholder: a live teacher labels the views instead)."""

    def batches(epoch: int, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            target = (view_targets(views, epoch, idx, num_classes, temperature) if stored_targets
                      else torch.empty(0))
            yield render_views(images, views, epoch, idx), target

    return batches


def describe_views(recipe: ViewRecipe, views: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "views", "epochs": recipe.epochs, "scale": list(recipe.scale), "ratio": list(recipe.ratio),
            "flip": recipe.flip, "cutmix": recipe.cutmix, "top_k": int(views["view_logits"].shape[2]),
            "layout": "see datadistill.softlabels: boxes (cy, cx, h, w) fractions; epoch e uses views e mod E"}
