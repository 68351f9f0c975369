"""The one evaluation protocol: train fresh models on a SyntheticSet, test them, aggregate."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import torch

from .._runtime import machine, machine_text
from ..augment import DSAConfig
from ..data import RealData
from ..devices import check_device, device_name
from ..distributed import SINGLE, Group
from ..errors import ConfigError
from ..models import get_model
from ..synthetic import SyntheticSet
from .protocol import Protocol, get_protocol
from .train import FitCheckpoint, accuracy, check_memory_format, fit


@dataclass
class EvalResult:
    """Accuracies in percent. `per_model`: one test accuracy per trained model; `per_class`: mean
    over models per class. `split` says which real split was used ('test' or 'val')."""

    mean: float
    std: float
    per_model: list[float]
    per_class: list[float]
    model: str
    split: str
    protocol: dict[str, Any]
    train_time_s: float
    test_time_s: float
    num_images: int
    labels: str
    device: str = "cpu"  # where the models trained ('cuda (NVIDIA H200)'; 'cpu + cuda (...)' if resumed across)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} % ({len(self.per_model)} × {self.model}, {self.split})"


def digits_like(real_or_name: RealData | str) -> bool:
    """Datasets whose classes change meaning under a horizontal flip (digits)."""
    if isinstance(real_or_name, RealData):
        if "flip" in real_or_name.info:
            return not real_or_name.info["flip"]
        name = real_or_name.name
    else:
        name = real_or_name
    return name in ("mnist", "mnist-5k", "digits", "mnist1d") or name.startswith("mnist")


def train_eval_models(
    x: torch.Tensor, y: torch.Tensor, real: RealData, protocol: Protocol, *,
    split: str = "test", lr: float | None = None, sample_weights: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None, batches: Callable | None = None,
    targets: Callable[[torch.Tensor], torch.Tensor] | None = None,
    finished: Sequence[dict[str, Any]] = (), on_model: Callable[[dict[str, Any]], None] | None = None,
    device: str | torch.device | None = None, memory_format: str = "contiguous", fused_optimizer: bool = True,
    checkpoints: str | Path | None = None, group: Group = SINGLE,
) -> tuple[list[float], list[list[float]], float, float]:
    """Train `protocol.num_models` fresh models on (x, y); return per-model accuracy (%),
    per-model per-class accuracy (%), training and testing seconds. `progress(done, total)` counts
    epochs over all models. The models train and test on `device` (default: where `real` lives);
    each is initialised on the CPU from its seed, so it starts from the same weights everywhere.

    Each model is seeded by its index alone, so an evaluation can resume: `finished` holds the
    records (`on_model` receives one as each model ends: accuracy, per-class accuracy, seconds) of
    models 0, 1, ... of an earlier, interrupted run with the same inputs; those are not trained again.
    `memory_format` ('contiguous' or 'channels_last'): the layout the models train in (`fit`), an
    implementation choice like the device: only the rounding differs; so is `fused_optimizer` (the
    optimiser's fused kernel, `fit`'s default, or its per-tensor loop). Each record names both.

    `checkpoints`: a path prefix; model i keeps its training state in `<prefix>.model<i>.ckpt`
    (`FitCheckpoint`, written every few minutes), so a run killed in the middle of a model resumes
    at its last written epoch and ends as an uninterrupted run would; the file goes once `on_model`
    has the model's record (or, without `on_model`, once the model is tested).

    `group` (`datadistill.distributed`): under torchrun, process r trains models r, r + N, ... and
    every process returns all models' results; only the main process sees `progress` and `on_model`
    (in model order). Each model's result is the one a single process computes for it."""
    if not group.main:
        progress = None
    if split not in ("test", "val"):
        raise ConfigError(f"evaluation split must be 'test' or 'val', got {split!r}")
    target = real.test if split == "test" else real.val
    if len(target) == 0:
        raise ConfigError(f"{real.name} has an empty {split} split")
    check_memory_format(memory_format)
    dev = check_device(device) if device is not None else real.device
    x, y = x.to(dev), y.to(dev)
    sample_weights = sample_weights.to(dev) if sample_weights is not None else None
    test_x, test_y = target.x.to(dev), target.y.to(dev)
    dsa = None
    if protocol.augment == "dsa":
        dsa = DSAConfig(strategy=protocol.dsa_strategy)
        if digits_like(real) and "flip" in dsa.ops:
            dsa = dsa.without("flip")
    accs, per_class, t_train, t_test = [], [], 0.0, 0.0
    where = machine_text(machine())
    if len(finished) > protocol.num_models:
        raise ConfigError(f"{len(finished)} finished models given for a protocol of {protocol.num_models}")
    for rec in finished:
        accs.append(float(rec["accuracy"]))
        per_class.append([float(a) for a in rec["per_class"]])
        t_train += float(rec["train_s"])
        t_test += float(rec["test_s"])
    if progress is not None:
        # report the kept work in one call, before any training: the finished models and the epochs the next
        # model resumes at from its checkpoint (a progress bar then starts there, and its rate counts new work)
        kept = len(finished) * protocol.epochs
        if checkpoints is not None and len(finished) < protocol.num_models:
            kept += FitCheckpoint(Path(f"{checkpoints}.model{len(finished)}.ckpt")).saved_epoch()
        if kept:
            progress(kept, protocol.num_models * protocol.epochs)
    def train_one(i: int) -> dict[str, Any]:
        seed = protocol.seed * 1000 + i
        with torch.random.fork_rng(devices=[]):  # seeded initialisation; the caller's RNG is untouched
            torch.manual_seed(seed)
            model = get_model(protocol.model, channels=real.channels, num_classes=real.num_classes,
                              image_size=real.image_shape[1:], **protocol.model_options)
        model.to(dev)
        g = torch.Generator().manual_seed(seed)
        ckpt = Path(f"{checkpoints}.model{i}.ckpt") if checkpoints is not None else None
        t0 = time.perf_counter()
        on_epoch = None
        if progress is not None:
            base = i * protocol.epochs
            on_epoch = lambda e, _loss, base=base: progress(base + e + 1, protocol.num_models * protocol.epochs)
        fitted = fit(model, x, y, epochs=protocol.epochs, lr=lr if lr is not None else protocol.lr, generator=g,
            momentum=protocol.momentum, weight_decay=protocol.weight_decay, batch_size=protocol.batch_for(len(x)),
            decay_at=protocol.decay_at, dsa=dsa, precision=protocol.precision, compile=protocol.compile,
            temperature=protocol.temperature, sample_weights=sample_weights, on_epoch=on_epoch,
            optimizer=protocol.optimizer, schedule=protocol.schedule, batches=batches, targets=targets,
            memory_format=memory_format, fused_optimizer=fused_optimizer,
            checkpoint=FitCheckpoint(ckpt) if ckpt is not None else None)
        t1 = time.perf_counter()
        acc, pc = accuracy(model, test_x, test_y, real.num_classes, batch_size=protocol.eval_batch_size,
                           precision=protocol.precision)
        t2 = time.perf_counter()
        # "machine": a resumed evaluation's models may have trained on several CPUs
        record = {"accuracy": 100 * acc, "per_class": [100 * a for a in pc],
                  "train_s": t1 - t0 + fitted.earlier_s,  # a model resumed from its checkpoint: its earlier training too
                  "test_s": t2 - t1, "device": device_name(dev), "memory_format": memory_format,
                  "optimizer_kernel": "fused" if fused_optimizer else "loop", "machine": where}
        if fitted.resumed_at:
            record["resumed_at_epoch"] = fitted.resumed_at
        return record

    # Under a process group the models go round by round, one per process, and the records of a
    # round are gathered in index order: each is what one process computes for that model alone.
    todo = list(range(len(finished), protocol.num_models))
    for start in range(0, len(todo), group.world):
        batch = todo[start:start + group.world]
        mine = batch[group.rank] if group.rank < len(batch) else None
        got = train_one(mine) if mine is not None else None
        records = group.gather(got)[:len(batch)]
        for i, record in zip(batch, records):
            accs.append(record["accuracy"])
            per_class.append(record["per_class"])
            t_train += record["train_s"]
            t_test += record["test_s"]
            if on_model is not None and group.main:
                on_model(record)
            if checkpoints is not None and i == mine:  # each process removes the file of the model it trained
                Path(f"{checkpoints}.model{i}.ckpt").unlink(missing_ok=True)
        if progress is not None and group.distributed:  # the round's other models are done too
            progress((batch[-1] + 1) * protocol.epochs, protocol.num_models * protocol.epochs)
    return accs, per_class, t_train, t_test


def evaluate(
    synthetic: SyntheticSet,
    real: RealData,
    protocol: Protocol | str = "dsa",
    *,
    split: Literal["test", "val"] = "test",
    progress: Callable[[int, int], None] | None = None,
    teacher: Any = None,
    finished: Sequence[dict[str, Any]] = (),
    on_model: Callable[[dict[str, Any]], None] | None = None,
    device: str | torch.device | None = None,
    memory_format: str = "contiguous",
    fused_optimizer: bool = True,
    checkpoints: str | Path | None = None,
    group: Group = SINGLE,
    **overrides: Any,
) -> EvalResult:
    """Train `protocol.num_models` fresh models on `synthetic`, test each on `real`'s `split`.

    Label modes: 'hard' trains on hard labels (a soft-labelled set's `classes`, else the argmax);
    'soft' on the stored soft labels, per view when the set stores views (they carry their own
    augmentation, so the protocol's `augment` must be 'none'), else per image; 'teacher' labels each
    training batch with the live `teacher` (nothing stored: reported as its own mode). The set's
    learned lr is used only when `protocol.use_learned_lr`. `finished` / `on_model`: resuming an
    interrupted evaluation model by model (`train_eval_models`). `device`: where the models train
    (default: where `real` lives); the set and the test split are moved there, stored views are
    rendered on the CPU and each batch is moved there. The result's `device` names it. Only the
    arithmetic's rounding differs between devices: every random draw (initialisation, shuffling,
    augmentation) is made on the CPU. `memory_format` ('contiguous' or 'channels_last'): the layout
    the models train in (`fit`), and `fused_optimizer` (the optimiser's fused kernel, or its loop):
    likewise only the rounding differs. `checkpoints`: a path prefix for each model's training
    state, so a killed evaluation resumes inside a model too (`train_eval_models`). `group`: the
    models split across torchrun's processes (`train_eval_models`).
    """
    protocol = get_protocol(protocol, **overrides)
    dev = check_device(device) if device is not None else real.device
    if synthetic.dataset != real.name or synthetic.num_classes != real.num_classes:
        raise ConfigError(f"synthetic set is for {synthetic.dataset!r} ({synthetic.num_classes} classes), "
                          f"real data is {real.name!r} ({real.num_classes} classes)")
    if tuple(synthetic.images.shape[1:]) != tuple(real.image_shape):
        raise ConfigError(f"synthetic images {tuple(synthetic.images.shape[1:])} do not match "
                          f"{real.name} images {real.image_shape}")
    x = synthetic.images.detach().float()
    batches = targets = None
    if protocol.label_mode == "soft":
        if not synthetic.soft_labels:
            raise ConfigError("protocol label_mode='soft' but the set has hard labels")
        y = synthetic.labels.float()
        if synthetic.views is not None:
            if protocol.augment != "none":
                raise ConfigError("this set stores per-view soft labels, whose views carry their own augmentation: "
                                  "evaluate it with augment=none (the 'soft' protocol)")
            from ..softlabels import view_batches

            batches = view_batches(x, synthetic.views, synthetic.num_classes, protocol.batch_for(len(x)),
                                   protocol.temperature)
    elif protocol.label_mode == "teacher":
        if teacher is None:
            raise ConfigError("protocol label_mode='teacher' trains from a live teacher: pass teacher= "
                              "(the CLI finds the set's teacher in --teacher-cache)")
        y = synthetic.hard_labels
        if synthetic.views is not None and protocol.augment == "none":
            from ..softlabels import view_batches

            batches = view_batches(x, synthetic.views, synthetic.num_classes, protocol.batch_for(len(x)),
                                   protocol.temperature, stored_targets=False)
        t = protocol.temperature
        targets = lambda xb: torch.softmax(teacher.logits(xb) / t, 1)  # noqa: E731
    else:
        y = synthetic.hard_labels
    lr = None
    if protocol.use_learned_lr:
        if synthetic.lr is None:
            raise ConfigError("protocol use_learned_lr=True but the set stores no learned lr")
        lr = float(synthetic.lr.reshape(-1)[0])
    w = synthetic.weights.float() if synthetic.weights is not None else None
    accs, per_class, t_train, t_test = train_eval_models(x, y, real, protocol, split=split, lr=lr,
                                                         sample_weights=w, progress=progress,
                                                         batches=batches, targets=targets,
                                                         finished=finished, on_model=on_model, device=dev,
                                                         memory_format=memory_format,
                                                         fused_optimizer=fused_optimizer,
                                                         checkpoints=checkpoints, group=group)
    here = [rec.get("device", "cpu") for rec in finished] + [device_name(dev)] * (len(accs) - len(finished))
    pcm = [statistics.fmean(col) if not any(math.isnan(v) for v in col) else math.nan for col in zip(*per_class)]
    return EvalResult(
        mean=statistics.fmean(accs), std=statistics.pstdev(accs) if len(accs) > 1 else 0.0, per_model=accs,
        per_class=pcm, model=protocol.model, split=split, protocol=protocol.as_dict(),
        train_time_s=round(t_train, 3), test_time_s=round(t_test, 3), num_images=len(x),
        labels=protocol.label_mode, device=" + ".join(dict.fromkeys(here)),
    )


def evaluate_architectures(synthetic: SyntheticSet, real: RealData, models: Sequence[str],
                           protocol: Protocol | str = "dsa", **overrides: Any) -> dict[str, EvalResult]:
    """Cross-architecture evaluation: the same protocol with each model in `models` (a preset named
    by a string takes each architecture's own values, `protocol.ARCHITECTURE_VALUES`)."""
    return {m: evaluate(synthetic, real, get_protocol(protocol, **{**overrides, "model": m})) for m in models}
