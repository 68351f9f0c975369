"""Training and testing loops shared by evaluation, coreset feature networks and teachers.

Speed: forward + loss + backward of each step run in one `torch.compile`d function (fused
elementwise kernels for norm / activation / pooling), under bf16 autocast on CPUs with AMX; the
weights, the optimiser and the loss stay in fp32. The compiled function takes the parameters as
explicit inputs (`torch.func.functional_call`), so fresh models of one architecture reuse one compile.

Memory format (`fit(memory_format=...)`): contiguous by default. channels_last trains the same
model (only the rounding differs) and was not adopted: `datadistill speed --paths
fast,fast-channels-last` found no gain beyond the drift within a run. ConvNet at batch 10: 1.37 with
contiguous timed first, 0.82 with channels_last first, 1.05 over 4 rounds in alternating order;
vgg11, alexnet, lenet, resnet18 (one run each, contiguous first): 0.86 to 1.08.

Optimiser: `fit` steps with the optimiser's fused kernel by default. PyTorch's default on the CPU is
a loop over the parameter tensors, a dozen elementwise ops each: AdamW on VGG-11's 9.2 M parameters
took 52.6 ms a step against 10.0 ms fused, SGD 15.8 against 6.8 (Intel Xeon, 2 threads, the
optimiser alone). End to end (`datadistill speed --paths fast,fast-loop-optimizer --model vgg11
--rounds 2`): at the soft protocol's batch of 10 with AdamW, 1.21x (37.9 s against 45.8 s for 400
steps); at the dsa protocol's one step per epoch (batch 100, SGD), 1.06x, inside the run's drift.
Distillation inner loops (`dc`), coreset feature networks and teachers keep the loop
(`fused_optimizer=False`), so the sets and teachers they made before stay the same bit for bit.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .._runtime import exact_fp32, warn_if_slow_bf16
from .._io import atomic_write_with
from ..augment import DSAConfig, augment
from ..errors import ConfigError


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL-equivalent soft-label loss: target (N, K) probabilities; scaled by T^2 as in distillation."""
    logp = F.log_softmax(logits.float() / temperature, dim=1)
    return -(target * logp).sum(1).mean() * temperature**2


def _loss(logits: torch.Tensor, target: torch.Tensor, temperature: float) -> torch.Tensor:
    if target.ndim == 2:
        return soft_cross_entropy(logits, target, temperature)
    return F.cross_entropy(logits.float(), target)


# Compiled training steps, one per architecture (see `_step_fn`): process-wide so that a fresh model
# of an architecture already compiled does not pay the compile again.
_STEP_CACHE: dict[tuple, Callable] = {}
MEMORY_FORMATS = ("contiguous", "channels_last")


def check_memory_format(choice: str) -> str:
    if choice not in MEMORY_FORMATS:
        raise ConfigError(f"memory_format must be one of {', '.join(MEMORY_FORMATS)}, got {choice!r}")
    return choice


def _settings(module: nn.Module) -> tuple:
    """The plain settings a module's forward may read (ints, floats, strings, flags and tuples of
    them in its attributes), for every submodule: with the types, what must match for two models to
    share one compiled step. The mode (`training`) is left out: the step always trains."""
    out = []
    for name, m in module.named_modules():
        items = []
        for k, v in vars(m).items():
            if k.startswith("_") or k == "training":
                continue
            if isinstance(v, (bool, int, float, str, type(None))) or (
                    isinstance(v, tuple) and all(isinstance(e, (bool, int, float, str, type(None))) for e in v)):
                items.append((k, v))
        out.append((name, type(m), tuple(sorted(items))))
    return tuple(out)


def _step_fn(model: nn.Module, bf16: bool, compile: bool, temperature: float, device_type: str = "cpu",
             memory_format: str = "contiguous") -> Callable:
    """(params, buffers, x, y) -> loss in training mode, with grads accumulated into params' .grad via
    autograd. `device_type`: where the model and the batches live ('cpu' or 'cuda'), for autocast.

    Compiled, the step is cached per architecture (type, repr and every submodule's settings,
    `_settings`) and runs a private copy of the first model of that architecture, in training mode:
    parameters and buffers are inputs, so a fresh model does not recompile, and nothing a caller
    does to its own model afterwards (`eval()`, as `Teacher.logits` leaves a teacher) changes
    how a later model trains."""

    def make(template: nn.Module) -> Callable:
        def step(params, buffers, x, y):
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                out = functional_call(template, (params, buffers), (x,))
            return _loss(out, y, temperature)
        return step

    if not compile:
        return make(model)  # `fit` has put `model` in training mode
    key = (type(model), repr(model), _settings(model), bf16, temperature, device_type, memory_format)
    fn = _STEP_CACHE.get(key)
    if fn is None:
        template = copy.deepcopy(model).train()
        template.requires_grad_(False)  # its own weights are never read: `params` stand in for them
        fn = torch.compile(make(template), dynamic=False)
        _STEP_CACHE[key] = fn
    return fn


def _weighted_step(model, params, buffers, x, y, w, precision, temperature):
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = functional_call(model, (params, buffers), (x,)).float()
    if y.ndim == 2:
        per = -(y * F.log_softmax(out / temperature, 1)).sum(1) * temperature**2
    else:
        per = F.cross_entropy(out, y, reduction="none")
    return (per * w).sum() / w.sum().clamp_min(1e-12)


@dataclass
class FitResult:
    final_loss: float
    steps: int
    resumed_at: int = 0  # the epoch a checkpoint resumed the run at (0: from the start)
    earlier_s: float = 0.0  # seconds the run had trained before it was resumed


@dataclass(frozen=True)
class FitCheckpoint:
    """Where `fit` keeps its state between epochs, so that a run killed mid-training resumes at the
    epoch it last wrote and ends with the weights an uninterrupted run gives: the weights and
    buffers, the optimiser's state and the generator's (every shuffle and augmentation draw comes
    from it), with the epoch, step count and training seconds so far. Written atomically at the end
    of an epoch once `every_s` seconds have passed since the last write, and after the last epoch;
    `fit` resumes from the file when it exists (one of another run is refused) and never removes
    it: the caller does, once it has kept what it trained."""
    path: Path
    every_s: float = 300.0

    def saved_epoch(self) -> int:
        """The epoch a run would resume at from this file (0: none, or not a checkpoint; `fit` then
        trains afresh or refuses the file with its reason)."""
        try:
            return int(torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
        except Exception:  # missing or unreadable: fit says why when it gets there
            return 0


def _run_fingerprint(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **settings: Any) -> dict[str, Any]:
    """What a checkpoint must match to resume a run: the settings, the model and the data."""
    return {**{k: (repr(v) if not isinstance(v, (int, float, str, bool, type(None))) else v)
               for k, v in settings.items()},
            "model": repr(model), "parameters": sum(p.numel() for p in model.parameters()),
            "data": [len(x), float(x.detach().sum(dtype=torch.float64)), float(y.detach().sum(dtype=torch.float64))]}


def _resume(checkpoint: FitCheckpoint, run: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer,
            generator: torch.Generator) -> tuple[int, int, float, float]:
    """Load `checkpoint` into model, optimiser and generator: (epoch, steps, loss, seconds so far)."""
    try:
        state = torch.load(checkpoint.path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated file cannot be one: writes are atomic
        raise ConfigError(f"{checkpoint.path}: not a training checkpoint ({e}); remove it to train afresh") from e
    if state.get("run") != run:
        theirs = state.get("run") or {}
        differ = sorted(k for k in set(run) | set(theirs) if run.get(k) != theirs.get(k))
        raise ConfigError(f"{checkpoint.path}: a checkpoint of another training run (differs in "
                          f"{', '.join(differ)}); remove it to train afresh")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return int(state["epoch"]), int(state["steps"]), float(state["loss"]), float(state["elapsed_s"])


def _save(checkpoint: FitCheckpoint, run: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer,
          generator: torch.Generator, epoch: int, steps: int, loss: float, elapsed_s: float) -> None:
    model_state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state = {"run": run, "epoch": epoch, "steps": steps, "loss": loss, "elapsed_s": elapsed_s,
             "model": model_state, "optimizer": opt.state_dict(), "generator": generator.get_state()}
    atomic_write_with(Path(checkpoint.path), lambda tmp: torch.save(state, tmp))


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    generator: torch.Generator,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    decay_at: float | None = 0.5,
    dsa: DSAConfig | None = None,
    precision: str = "bf16",
    compile: bool = True,
    temperature: float = 1.0,
    sample_weights: torch.Tensor | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    optimizer: str = "sgd",
    schedule: str = "step",
    nesterov: bool = False,
    batches: Callable[[int, torch.Tensor], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None,
    targets: Callable[[torch.Tensor], torch.Tensor] | None = None,
    memory_format: str = "contiguous",
    fused_optimizer: bool = True,
    checkpoint: FitCheckpoint | None = None,
    perturb: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train `model` in place on (x, y): shuffled mini-batches (last one partial, as a DataLoader
    without drop_last). `y` is (N,) int64 or (N, K) soft targets. `dsa` augments each batch with
    per-image parameters. `on_epoch(epoch, loss)` is called after each epoch. `sample_weights` (N,)
    weight each example's loss.

    `optimizer`: 'sgd' (momentum, optional Nesterov) or 'adamw'. `schedule`: 'step' (lr x0.1 at
    `decay_at` of the epochs) or 'cosine' (per epoch, from lr to 0). `batches(epoch, order)`, when
    given, yields the (inputs, targets) of each step from the epoch's shuffled `order` instead of
    slicing (x, y) (stored soft-label views); `targets(inputs)` replaces each batch's targets (a live
    teacher).

    Training runs where `model`'s parameters live: batches (and their targets) are moved there, so
    `x`, `y` and `batches` may stay on the CPU; shuffling and augmentation draws use the CPU
    `generator` either way, so a run draws the same batches on every device.

    `memory_format` ('contiguous' or 'channels_last'): the layout the weights train in; the model is
    handed back contiguous either way.

    `fused_optimizer`: the optimiser's fused kernel (one pass per parameter tensor) in place of its
    per-tensor loop of elementwise ops; the same update, only the rounding differs (last bits).

    `checkpoint` (`FitCheckpoint`): keep the run's state there between epochs and resume from it.

    `perturb(inputs, targets)`, when given, replaces each (augmented) batch's inputs before the step:
    adversarial training (`teachers.l2_attack`)."""
    model.train()
    fmt = check_memory_format(memory_format)
    if fmt == "channels_last":
        model.to(memory_format=torch.channels_last)
    params = dict(model.named_parameters())
    device = next(iter(params.values())).device if params else torch.device("cpu")
    buffers = dict(model.named_buffers())
    # the fused kernels take floating-point tensors on the CPU or a CUDA device
    fused = fused_optimizer and bool(params) and all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params.values())
    if optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params.values(), lr=lr, weight_decay=weight_decay,
                                                       fused=fused or None)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params.values(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                              nesterov=nesterov, fused=fused or None)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    warn_if_slow_bf16(precision, device.type)
    step = _step_fn(model, precision == "bf16", compile, temperature, device.type, fmt)
    n = len(x)
    decay_epoch = int(epochs * decay_at) if decay_at and schedule == "step" else None
    loss_val = math.nan
    steps = 0
    first_epoch, earlier_s, run = 0, 0.0, None
    if checkpoint is not None:
        run = _run_fingerprint(model, x, y, epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               batch_size=batch_size, decay_at=decay_at, dsa=dsa, precision=precision,
                               temperature=temperature, optimizer=optimizer, schedule=schedule, nesterov=nesterov,
                               weighted=sample_weights is not None, fused=fused,
                               **({"perturbed": True} if perturb is not None else {}))
        if Path(checkpoint.path).is_file():
            first_epoch, steps, loss_val, earlier_s = _resume(checkpoint, run, model, opt, generator)
    t0 = last_write = time.perf_counter()

    def slices(epoch: int, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx]

    with exact_fp32(device.type, precision == "fp32"):
        for epoch in range(first_epoch, epochs):
            if epoch == decay_epoch:
                for group in opt.param_groups:
                    group["lr"] = lr * 0.1
            if schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
            order = torch.randperm(n, generator=generator)
            for start, (xb, yb) in zip(range(0, n, batch_size), (batches or slices)(epoch, order)):
                idx = order[start:start + batch_size]
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                if dsa is not None:
                    xb = augment(xb, dsa, generator)
                if targets is not None:
                    yb = targets(xb).to(device)
                if perturb is not None:
                    xb = perturb(xb, yb)
                if sample_weights is not None:
                    loss = _weighted_step(model, params, buffers, xb, yb, sample_weights[idx].to(device), precision,
                                          temperature)
                else:
                    loss = step(params, buffers, xb, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                steps += 1
            loss_val = float(loss.detach())
            if checkpoint is not None and (epoch + 1 == epochs or time.perf_counter() - last_write >= checkpoint.every_s):
                _save(checkpoint, run, model, opt, generator, epoch + 1, steps, loss_val,
                      earlier_s + time.perf_counter() - t0)
                last_write = time.perf_counter()
            if on_epoch is not None:
                on_epoch(epoch, loss_val)
    if fmt == "channels_last":
        model.to(memory_format=torch.contiguous_format)
    return FitResult(final_loss=loss_val, steps=steps, resumed_at=first_epoch, earlier_s=earlier_s)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, batch_size: int = 1000, precision: str = "bf16") -> torch.Tensor:
    """(N, K) float32 logits, computed where `x` lives (the model must be there too), in evaluation
    mode; the model is handed back in the mode it came in."""
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(x), batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"), \
                exact_fp32(x.device.type, precision == "fp32"):
            outs.append(model(x[start:start + batch_size]).float())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, *,
             batch_size: int = 1000, precision: str = "bf16") -> tuple[float, list[float]]:
    """(overall accuracy, per-class accuracies) on (x, y), in [0, 1]."""
    pred = predict(model, x, batch_size=batch_size, precision=precision).argmax(1)
    correct = (pred == y).float().cpu()
    y = y.cpu()
    per_class = []
    for c in range(num_classes):
        mask = y == c
        per_class.append(float(correct[mask].mean()) if mask.any() else math.nan)
    return float(correct.mean()), per_class
