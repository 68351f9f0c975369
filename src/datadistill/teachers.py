"""Teachers: a network trained once on the full training split, cached on disk, and used by the
decoupled methods (SRe2L, RDED) to score, synthesise and relabel images.

A cached teacher is a directory `<cache>/teacher-<dataset>-<key>/` holding `weights.safetensors`
(the state dict, BatchNorm running statistics included) and `teacher.json` (dataset, recipe, key,
validation and test accuracy, training time). The key hashes the dataset, its split and the
recipe (architecture, seed, epochs, optimiser, augmentation...), so a second call with the same
inputs loads the file instead of training again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ._io import atomic_write_json, atomic_write_with, tensor_digest
from ._runtime import exact_fp32, machine, warn_if_slow_bf16
from .augment import DSAConfig
from .config import check_seed, model_kwargs_tuple, update_config
from .data import RealData
from .errors import ConfigError, FormatError

WEIGHTS_FILE = "weights.safetensors"
INFO_FILE = "teacher.json"


@dataclass(frozen=True)
class TeacherRecipe:
    """How a teacher is trained on the full training split.

    Defaults: ConvNet-3 of width 64 with BatchNorm (SRe2L's squeeze model needs BatchNorm
    statistics), SGD with Nesterov momentum, cosine schedule, no label smoothing, random crop
    (zero-padded shifts of up to 1/8 of the side) and horizontal flip (dropped for digits), bf16
    autocast, 30 epochs. Chosen on the validation split (Fashion-MNIST, 2 cores): 30 epochs 94.0%
    against 93.3% for 20 (818 s); label smoothing 0.1 gives the same teacher accuracy (val 94.02 vs
    94.03) but flatter soft labels: rded IPC 10 under the soft protocol 90.17 against 90.60 without
    (batch 20, 2 models).

    Width 64, not ConvNet-3's usual 128: the step is bound by the two 128-channel convolutions, whose
    cost goes with the width squared. On an AMD EPYC (2 threads, no AMX) width 128 trained in 1,567 s,
    96 in 949 s (val 93.95, test 93.35) and 64 in 533 s (val 93.83, test 93.17); the 15-minute goal
    needs a narrower network, not a faster step. The labels lose nothing: rded IPC 10 and the soft
    track's random subset, each relabelled by the teacher and scored on validation (soft protocol,
    2 models; `benchmarks/screens/teacher_width.py`, rule declared in it before the run), gave 90.66
    and 90.11 under width 128 and 90.83 and 90.30 under width 64. `--teacher-set 'model_kwargs={norm:
    batch}'` (ConvNet's own width, 128) is the earlier default recipe, with the same cache key.
    """

    model: str = "convnet"
    model_kwargs: tuple[tuple[str, Any], ...] = (("norm", "batch"), ("width", 64))
    epochs: int = 30
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    label_smoothing: float = 0.0
    augment: str = "crop_flip"  # DSA ops applied per image, or 'none'
    seed: int = 0
    precision: str = "bf16"
    compile: bool = True
    # > 0: adversarial training (Madry et al., ICLR 2018) against an l2 attack of this radius, in
    # pixel units (images in [0, 1]): every batch is replaced by its `adversarial_steps`-step PGD
    # perturbation. A robust network's input gradients look like the data (Santurkar et al.,
    # NeurIPS 2019), so inverting one may give more natural images (`sre2l invert_adversarial`).
    adversarial: float = 0.0
    adversarial_steps: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("teacher epochs and batch_size must be positive")
        if not (self.adversarial >= 0 and math.isfinite(self.adversarial)) or self.adversarial_steps < 1:
            raise ConfigError(f"teacher adversarial must be non-negative and finite and adversarial_steps "
                              f"positive, got {self.adversarial} and {self.adversarial_steps}")
        check_seed(self.seed, "teacher seed")
        if self.lr <= 0:
            raise ConfigError(f"teacher lr must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"teacher label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.precision not in ("bf16", "fp32"):
            raise ConfigError(f"teacher precision must be 'bf16' or 'fp32', got {self.precision!r}")
        if self.augment != "none":
            DSAConfig(strategy=self.augment).ops  # raises on unknown ops

    def replace(self, **changes: Any) -> "TeacherRecipe":
        """A copy with `changes` (strings are parsed; `model_kwargs` takes a dict or a YAML mapping)."""
        kwargs = changes.pop("model_kwargs", None)
        new = update_config(self, changes) if changes else self
        if kwargs is not None:
            new = dataclasses.replace(new, model_kwargs=model_kwargs_tuple(kwargs, "teacher"))
        return new

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TeacherRecipe":
        """The recipe `as_dict` wrote (in teacher.json and in a set's manifest)."""
        fields = dict(d)
        kwargs = fields.pop("model_kwargs", {})
        return cls(**fields, model_kwargs=model_kwargs_tuple(kwargs, "teacher"))

    def as_dict(self) -> dict[str, Any]:
        """The recipe's fields; without adversarial training, its two fields are left out, so a recipe
        reads (in teacher.json, a set's manifest and the cache key) as it did before they existed."""
        d = dataclasses.asdict(self)
        d["model_kwargs"] = dict(self.model_kwargs)
        if not self.adversarial:
            del d["adversarial"], d["adversarial_steps"]
        return d


@dataclass
class Teacher:
    """A trained network in eval mode. `info`: dataset, key, recipe, accuracies (%), training time."""

    model: nn.Module
    recipe: TeacherRecipe
    info: dict[str, Any] = field(default_factory=dict)
    labelers: dict[int, "Teacher"] = field(default_factory=dict, repr=False)  # see `labeler`

    def __post_init__(self) -> None:
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        # which weights: one recipe trained twice can give two teachers under one key (it did on
        # our 2-core machine: 93.57% and 93.43% test), and the sets they label differ
        self.info["weights_digest"] = tensor_digest(self.model.state_dict())

    @torch.no_grad()
    def logits(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """(N, K) float32 logits of images `x` (normalised space), eval mode (running BN statistics),
        computed where the teacher lives and returned where `x` lives."""
        self.model.eval()
        dev = next(self.model.parameters()).device
        warn_if_slow_bf16(self.recipe.precision, dev.type)
        outs = []
        for start in range(0, len(x), batch_size):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.recipe.precision == "bf16"), \
                    exact_fp32(dev.type, self.recipe.precision == "fp32"):
                outs.append(self.model(x[start:start + batch_size].to(dev)).float().to(x.device))
        return torch.cat(outs) if outs else torch.empty(0, device=x.device)

    def describe(self) -> dict[str, Any]:
        """What a distilled set records about the teacher that labelled it."""
        keep = ("key", "weights_digest", "dataset", "test_accuracy", "val_accuracy", "train_time_s", "machine")
        return {**{k: self.info[k] for k in keep if k in self.info}, "recipe": self.recipe.as_dict()}


def teacher_key(real: RealData, recipe: TeacherRecipe) -> str:
    desc = {k: v for k, v in recipe.as_dict().items() if k != "compile"}  # compile: speed only
    blob = json.dumps({"dataset": real.name, "n_train": len(real.train), "n_val": len(real.val),
                       "split": real.info.get("split_seed"), "recipe": desc}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_teacher_model(real: RealData, recipe: TeacherRecipe) -> nn.Module:
    from .models import get_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        return get_model(recipe.model, channels=real.channels, num_classes=real.num_classes,
                         image_size=real.image_shape[1:], **dict(recipe.model_kwargs))


def teacher_fit_options(real: RealData, recipe: TeacherRecipe) -> dict[str, Any]:
    """`fit`'s settings for training `recipe` on `real` (all but the data, epochs, generator and
    callbacks): its optimiser, schedule, precision and augmentation (no flips on digits)."""
    from .evaluation.evaluate import digits_like

    dsa = None
    if recipe.augment != "none":
        dsa = DSAConfig(strategy=recipe.augment)
        if digits_like(real) and "flip" in dsa.ops:
            dsa = dsa.without("flip")
    return dict(lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, batch_size=recipe.batch_size,
                dsa=dsa, precision=recipe.precision, compile=recipe.compile, schedule="cosine", nesterov=True,
                fused_optimizer=False)  # the loop that trained the cached teachers (see fit)


def train_teacher(real: RealData, recipe: TeacherRecipe = TeacherRecipe(), *,
                  progress: Callable[[int, int], None] | None = None, checkpoint: str | Path | None = None) -> Teacher:
    """Train a teacher on all of `real.train`; test it on the validation and test splits.
    `checkpoint`: a file for the training state, so a killed run resumes there (`FitCheckpoint`)."""
    from .evaluation.train import FitCheckpoint, accuracy, fit

    model = build_teacher_model(real, recipe)
    x, y = real.train.x, real.train.y
    k = real.num_classes
    eps = recipe.label_smoothing
    target = F.one_hot(y, k).float() * (1 - eps) + eps / k if eps > 0 else y
    g = torch.Generator().manual_seed(recipe.seed)
    perturb = (l2_attack(model, recipe.adversarial, recipe.adversarial_steps, real.mean, real.std, recipe.precision)
               if recipe.adversarial else None)
    on_epoch = (lambda e, _loss: progress(e + 1, recipe.epochs)) if progress is not None else None
    t0 = time.perf_counter()
    fitted = fit(model, x, target, epochs=recipe.epochs, generator=g, on_epoch=on_epoch,
                 checkpoint=FitCheckpoint(Path(checkpoint)) if checkpoint is not None else None,
                 perturb=perturb, **teacher_fit_options(real, recipe))
    train_s = time.perf_counter() - t0 + fitted.earlier_s
    info: dict[str, Any] = {"dataset": real.name, "key": teacher_key(real, recipe), "train_time_s": round(train_s, 1),
                            "n_train": len(x), "machine": machine()}  # the time depends on the CPU
    for split in ("val", "test"):
        data = getattr(real, split)
        if len(data):
            acc, _ = accuracy(model, data.x, data.y, k, precision=recipe.precision)
            info[f"{split}_accuracy"] = round(100 * acc, 3)
    return Teacher(model, recipe, info)


def l2_attack(model: nn.Module, radius: float, steps: int, mean: Any, std: Any,
              precision: str = "bf16") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`(x, y) -> x'`: projected gradient ascent on `model`'s cross-entropy within an l2 ball of
    `radius` around each image, measured in pixel units (x is normalised by `mean` / `std` per
    channel; x' stays a valid image: no pixel leaves [0, 1], or, already outside, goes further).
    `steps` steps of 2.5 * radius / steps along the normalised gradient from x itself (Madry et al.'s
    l2 attack). BatchNorm layers normalise with the batch's statistics (the model trains) but their
    running statistics are left as they were."""
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    lo, hi = -m / s, (1 - m) / s
    alpha = 2.5 * radius / steps
    norms = [b for b in model.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm)]

    def per_image_norm(t: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(t.flatten(1), dim=1).view(-1, *[1] * (t.ndim - 1))

    def attack(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        saved = [(b.momentum, b.num_batches_tracked.clone() if b.num_batches_tracked is not None else None)
                 for b in norms]
        for b in norms:
            b.momentum = 0.0  # running = (1 - 0) * running: unchanged
        sd = s.to(x.device)
        lod, hid = torch.minimum(lo.to(x.device), x), torch.maximum(hi.to(x.device), x)  # a pixel outside stays
        delta = torch.zeros_like(x)  # in pixel units
        try:
            for _ in range(steps):
                delta.requires_grad_(True)
                with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    out = model(x + delta / sd)
                grad, = torch.autograd.grad(F.cross_entropy(out.float(), y), delta)
                with torch.no_grad():
                    delta = delta + alpha * grad / per_image_norm(grad).clamp_min(1e-12)
                    delta = delta * (radius / per_image_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
                    delta = (torch.maximum(torch.minimum(x + delta / sd, hid), lod) - x) * sd
        finally:
            for b, (mom, tracked) in zip(norms, saved):
                b.momentum = mom
                if tracked is not None:
                    b.num_batches_tracked.copy_(tracked)
        return (x + delta / sd).detach()

    return attack


def variant(teacher: Teacher, real: RealData, progress: Callable[[int, int], None] | None = None,
            **changes: Any) -> Teacher:
    """The teacher of `teacher`'s recipe with `changes` (e.g. `adversarial=1.0`), loaded from (or
    trained into) the directory `teacher` was cached in; `teacher` itself when nothing changes."""
    recipe = dataclasses.replace(teacher.recipe, **changes)
    if recipe == teacher.recipe:
        return teacher
    return get_teacher(real, recipe, cache_dir=_cache_dir(teacher), progress=progress)


def get_teacher(real: RealData, recipe: TeacherRecipe = TeacherRecipe(), *, cache_dir: str | Path | None = None,
                progress: Callable[[int, int], None] | None = None) -> Teacher:
    """The teacher of `recipe` for `real`: loaded from `cache_dir` when trained before (same dataset,
    split and recipe), else trained and, with a `cache_dir`, saved there (atomically)."""
    key = teacher_key(real, recipe)
    d = Path(cache_dir) / f"teacher-{real.name}-{key}" if cache_dir is not None else None
    if d is not None and (d / WEIGHTS_FILE).is_file() and (d / INFO_FILE).is_file():
        return load_teacher(d, real)
    # a killed training resumes from its checkpoint in the cache directory
    teacher = train_teacher(real, recipe, progress=progress, checkpoint=d / "train.ckpt" if d is not None else None)
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in teacher.model.state_dict().items()}
        atomic_write_with(d / WEIGHTS_FILE, lambda p: save_file(state, str(p)))
        teacher.info["path"] = str(d)
        atomic_write_json(d / INFO_FILE, {**teacher.info, "recipe": recipe.as_dict()})
        (d / "train.ckpt").unlink(missing_ok=True)
    return teacher


SAME_TEACHER = -1  # a relabel step's `label_epochs` that has the teacher itself label


def labeler(teacher: Teacher, real: RealData | None, epochs: int,
            progress: Callable[[int, int], None] | None = None) -> Teacher:
    """The network that soft-labels a set when the relabel step asks for `epochs`: `teacher` itself
    at SAME_TEACHER or at its own epochs; else a teacher of `teacher`'s recipe trained for `epochs`
    epochs on `real` (a short run of the same recipe, its cosine schedule ending there): a stand-in
    for the early-stopped expert whose less confident, more structured labels teach small sets
    better (Qin, Deng and Alvarez-Melis, "A Label is Worth a Thousand Images in Dataset
    Distillation", NeurIPS 2024). It is loaded from (or trained into) the directory `teacher` was
    cached in, and kept on `teacher`, so a method that relabels many draws trains it at most once."""
    if epochs == SAME_TEACHER or epochs == teacher.recipe.epochs:
        return teacher
    if epochs < 1:
        raise ConfigError(f"label_epochs must be {SAME_TEACHER} (the teacher) or positive, got {epochs}")
    if epochs not in teacher.labelers:
        if real is None:
            raise ValueError("a labeler that is not the teacher is trained on the real data: pass real=")
        teacher.labelers[epochs] = variant(teacher, real, progress, epochs=epochs)
    return teacher.labelers[epochs]


def companions(teacher: Teacher, real: RealData, n: int,
               progress: Callable[[int, int], None] | None = None) -> list[Teacher]:
    """`n` more teachers of `teacher`'s recipe with seeds `seed + 1 .. seed + n`: independently
    trained networks of the same architecture, loaded from (or trained into) the directory `teacher`
    was cached in. For methods that invert several networks at once (`sre2l teachers=`)."""
    return [variant(teacher, real, progress, seed=teacher.recipe.seed + i) for i in range(1, n + 1)]


def _cache_dir(teacher: Teacher) -> Path | None:
    """The cache directory `teacher` was loaded from or saved into (None: not cached)."""
    return Path(teacher.info["path"]).parent if teacher.info.get("path") else None


def load_teacher(directory: str | Path, real: RealData) -> Teacher:
    """Load a cached teacher directory (weights + teacher.json) for `real`."""
    d = Path(directory)
    try:
        info = json.loads((d / INFO_FILE).read_text())
        recipe = TeacherRecipe.from_dict(info.pop("recipe"))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise FormatError(f"{d / INFO_FILE}: not a teacher description ({e})") from None
    if info.get("dataset") != real.name:
        raise ConfigError(f"teacher {d} was trained on {info.get('dataset')!r}, not {real.name!r}")
    model = build_teacher_model(real, recipe)
    try:
        model.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
    except Exception as e:  # safetensors / shape errors
        raise FormatError(f"{d / WEIGHTS_FILE}: cannot load ({e})") from None
    if any(m.track_running_stats and int(m.num_batches_tracked) == 0
           for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        # before 3b9d68b a labeler trained in the process that had just trained its teacher could
        # train in evaluation mode: batch norm on its initial running statistics, which never moved
        raise FormatError(f"{d}: its batch norm never saw a training batch (trained in evaluation mode); "
                          "delete the directory to train it again")
    info["path"] = str(d)
    return Teacher(model, recipe, info)
