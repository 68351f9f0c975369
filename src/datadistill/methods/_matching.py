"""The shared loop of the matching methods (DM, multi-layer DM, DC, DSA).

A matching method learns the synthetic images by gradient descent on a loss that compares real and
synthetic data through (usually random) networks. This module owns everything that is the same
for all of them:

- initialising the synthetic set (real images of each class, noise, or any coreset method's output);
- the image optimiser (SGD with momentum, as the papers) and `MatchingState.update(loss)`, which
  refuses a non-finite loss;
- checkpoints: every `checkpoint_every` iterations, one atomically written safetensors file in the
  run directory with the images, the optimiser's momentum, the generator state, the iteration,
  the wall time so far and the method's own state; `resume=True` continues from it and ends with
  the same result as an uninterrupted run of the same seed;
- per-iteration metrics as JSON lines (`metrics.jsonl`), progress callbacks with loss and ETA, and
  optional periodic evaluation on the *validation* split (never test).

A method subclasses `MatchingMethod` and implements hooks:
- `setup(state)`: build what the iterations need (e.g. cached real statistics). It must depend only
  on the seed and the config (not on the iteration), or restore itself in `load_state`;
- `iteration(state, it) -> float`: one iteration; computes losses and calls `state.update(loss)`
  one or more times; returns the loss to report;
- optionally `state_dict(state)` / `load_state(state, tensors, info)` for extra resumable state.

All randomness of the loop is drawn from `state.generator` (a `torch.Generator` seeded by the seed),
whose state is checkpointed.

Under torchrun (`state.group`, `datadistill.distributed`) each process owns a block of classes
(`state.own`): a method tagged 'splits_classes' draws every random number as one process would,
computes only its own classes' terms, and `update` sums the loss over the processes; the loop
gathers the images (`state.all_images`) for checkpoints, validation and the result, and only the
main process writes files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import atomic_write_bytes
from .._runtime import warn_if_slow_bf16
from ..augment import DSAConfig
from ..augment.dsa import DEFAULT_STRATEGY
from ..config import before_fields, config_dict, differs
from ..data import RealData
from ..distributed import SINGLE, Group
from ..errors import ConfigError, DivergenceError, RunDirError, UnknownNameError
from ..models import get_model
from ..synthetic import MANIFEST_FILE, SyntheticSet
from .base import Callback, Method, MethodConfig, Progress

_VIEW_SEED_STRIDE = 1_000_003

CHECKPOINT_FILE = "checkpoint.safetensors"
# 'auto' values: a method whose config has a per-IPC `schedule` may default these fields to them
AUTO: dict[str, Any] = {"iterations": 0, "init": "auto", "pool_size": -1}
INIT_DIR = "init"  # inside a run directory: the init method's set (and its checkpoints while it runs)
METRICS_FILE = "metrics.jsonl"
_PRECISIONS = ("bf16", "fp32")


@dataclass(frozen=True)
class MatchingConfig(MethodConfig):
    """Fields shared by every matching method. Subclasses set the paper's values as defaults."""

    iterations: int = 1000
    lr_img: float = 0.1
    momentum_img: float = 0.5
    batch_real: int = 256  # real images per class per match
    init: str = "real"  # real | noise | another method's name (a coreset such as kmeans, or e.g. dm)
    model: str = "convnet"
    width: int = 128  # network width during distillation (a budget knob)
    depth: int = 3
    norm: str = "instance"
    dsa: bool = True  # differentiable siamese augmentation with shared parameters
    dsa_strategy: str = DEFAULT_STRATEGY
    precision: str = "bf16"  # bf16 autocast for the networks; images, optimiser and losses stay fp32
    compile: bool = True
    checkpoint_every: int = 200  # iterations; 0 = only at the end (when a run directory is given)
    log_every: int = 10  # iterations between metrics lines
    val_every: int = 0  # iterations between validation evaluations; 0 = never
    val_epochs: int = 300  # epochs of the quick validation evaluation (one model, no augmentation)
    pool_size: int = 0  # cached views (see `MatchingMethod.pooled_view`); 0 = a fresh view each iteration
    refresh_every: int = 10  # iterations between replacing the oldest view; 0 = never

    def schedule(self, ipc: int) -> dict[str, Any]:
        """Per-IPC values for the fields a method lets default to 'auto' (see `AUTO`); none here."""
        return {}

    def init_overrides(self) -> dict[str, Any]:
        """Config overrides for the method named by `init` when it runs as this method's init stage
        (`MatchingMethod.init_method`); none here: that method's own defaults."""
        return {}

    def auto_fields(self) -> set[str]:
        """The fields left at their 'auto' value that the schedule fills (elsewhere 'auto' is invalid)."""
        return {k for k, v in AUTO.items() if getattr(self, k) == v} & set(self.schedule(1))

    def for_ipc(self, ipc: int) -> MatchingConfig:
        auto = self.auto_fields()
        if not auto:
            return self
        plan = self.schedule(ipc)
        return dataclasses.replace(self, **{k: plan[k] for k in auto})

    def validate(self) -> None:
        auto = self.auto_fields()
        positive = ("iterations", "batch_real", "width", "depth", "log_every", "val_epochs")
        for name in positive:
            if name not in auto and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "val_every", "pool_size", "refresh_every"):
            if name not in auto and getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if not (self.lr_img > 0 and math.isfinite(self.lr_img)):
            raise ConfigError(f"lr_img must be a positive number, got {self.lr_img}")
        if not 0 <= self.momentum_img < 1:
            raise ConfigError(f"momentum_img must be in [0, 1), got {self.momentum_img}")
        if self.precision not in _PRECISIONS:
            raise ConfigError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        _ = DSAConfig(strategy=self.dsa_strategy).ops  # raises on unknown ops
        if self.init not in ("real", "noise") and "init" not in auto:
            start_method(self.init, "init", "'real', 'noise', a coreset method or a matching method")


def start_method(name: str, field: str, accepted: str) -> type[Method]:
    """The registered method `name` that a config's start field (`field`, which takes `accepted`)
    names, refused with a ConfigError when unknown or when it needs a teacher or experts."""
    from .base import METHODS

    try:
        cls = METHODS.get(name)
    except UnknownNameError as e:
        raise ConfigError(f"{field}: {e} ({field} takes {accepted})") from None
    if {"needs_teacher", "needs_experts"} & cls.tags:
        raise ConfigError(f"{field} {name!r} needs a teacher or experts; use {accepted}")
    return cls


@dataclass
class MatchingState:
    """What one run's iterations work on. `images` (N, C, H, W) is the leaf being learned; images
    are grouped by class (class c is rows c*ipc:(c+1)*ipc); `extra` holds the method's own objects."""

    real: RealData
    ipc: int
    config: MatchingConfig
    images: torch.Tensor
    labels: torch.Tensor
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    seed: int
    dsa: DSAConfig | None
    iteration: int = 0
    updates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    group: Group = SINGLE

    @property
    def bf16(self) -> bool:
        return self.config.precision == "bf16"

    @property
    def own(self) -> range:
        """The classes this process owns (all of them in a single process)."""
        return self.group.block(self.real.num_classes)

    @property
    def own_rows(self) -> slice:
        """The rows of `images` holding the owned classes."""
        return slice(self.own.start * self.ipc, self.own.stop * self.ipc)

    def all_images(self) -> torch.Tensor:
        """The current images (detached), each class as its owning process holds it; a collective
        under a process group (every process calls it)."""
        return self.group.gather_rows(self.images.detach(), self.real.num_classes, self.ipc)

    def class_images(self, c: int) -> torch.Tensor:
        return self.images[c * self.ipc:(c + 1) * self.ipc]

    def update(self, loss: torch.Tensor) -> float:
        """One optimiser step on the images from `loss`; raises DivergenceError on a non-finite loss
        or non-finite gradients (the images are left as they were). Returns the loss, summed over
        the processes of a group (each holds its own classes' terms), which all raise alike."""
        value = self.group.sum(float(loss.detach()))
        if not math.isfinite(value):
            raise DivergenceError(f"loss became {value} at iteration {self.iteration}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=[self.images])  # only the images: no gradients into network weights
        grad = self.images.grad
        if self.group.any(grad is not None and not bool(torch.isfinite(grad).all())):
            raise DivergenceError(f"non-finite image gradient at iteration {self.iteration}")
        self.optimizer.step()
        self.updates += 1
        return value


class MatchingMethod(Method):
    """Base of the matching methods: runs the loop; subclasses implement the hooks."""

    Config = MatchingConfig
    tags = frozenset({"iterative"})

    # ---- hooks ----------------------------------------------------------------------------------
    def setup(self, state: MatchingState) -> None:
        """Build what the iterations need; deterministic given the seed and config."""

    def iteration(self, state: MatchingState, it: int) -> float:
        raise NotImplementedError

    def state_dict(self, state: MatchingState) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Extra resumable state: (tensors, JSON-able info)."""
        return {}, {}

    def load_state(self, state: MatchingState, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    # ---- the loop -------------------------------------------------------------------------------
    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...], resume: bool = False, group: Group = SINGLE) -> SyntheticSet:
        cfg: MatchingConfig = self.config  # type: ignore[assignment]
        self.check_data(real)
        warn_if_slow_bf16(cfg.precision, real.device.type)
        start = time.perf_counter()  # the wall time counts the initialisation (a coreset init can take minutes)
        generator = torch.Generator().manual_seed(seed)
        stage_s = 0.0  # measured wall time of an init stage loaded from disk (counted once, below)
        if cfg.init in ("real", "noise"):
            images, labels = self.initial_images(real, ipc, seed, generator)
        else:
            start_set, stage_s = self.init_stage(real, ipc, seed, run_dir, callbacks, group)
            images, labels = self.images_from(start_set, real, ipc)
            if group.distributed:  # a stage each process computed alone: all start from the main one's
                images = group.from_main(images.cpu()).to(real.device)
        images = images.detach().clone().requires_grad_(True)
        opt = torch.optim.SGD([images], lr=cfg.lr_img, momentum=cfg.momentum_img)
        dsa = None
        if cfg.dsa:
            from ..evaluation.evaluate import digits_like

            dsa = DSAConfig(strategy=cfg.dsa_strategy)
            if digits_like(real) and "flip" in dsa.ops:
                dsa = dsa.without("flip")
        state = MatchingState(real=real, ipc=ipc, config=cfg, images=images, labels=labels, optimizer=opt,
                              generator=generator, seed=seed, dsa=dsa, group=group)
        self.setup(state)
        elapsed_before = stage_s
        ckpt = run_dir / CHECKPOINT_FILE if run_dir is not None else None
        if resume:  # the checkpoint's elapsed time already counts the init stage
            if ckpt is None or not ckpt.exists():
                raise RunDirError(f"nothing to resume: no {CHECKPOINT_FILE} in {run_dir}")
            elapsed_before = self._load_checkpoint(ckpt, state, real, ipc, seed)
        metrics = _Metrics(run_dir / METRICS_FILE if run_dir is not None and group.main else None,
                           state.iteration, resume)
        last_loss = math.nan
        losses: list[float] = []
        try:
            for it in range(state.iteration, cfg.iterations):
                state.iteration = it
                try:
                    loss = self.iteration(state, it)
                except DivergenceError as e:
                    where = (f"; the last good checkpoint (iteration {self._checkpoint_iteration(ckpt)}) "
                             f"is kept in {run_dir}" if ckpt is not None and ckpt.exists() else "")
                    raise DivergenceError(f"{self.name}: {e}{where}") from None
                state.iteration = it + 1
                last_loss = loss
                losses.append(loss)
                elapsed = elapsed_before + time.perf_counter() - start
                if (it + 1) % cfg.log_every == 0 or it + 1 == cfg.iterations:
                    row = {"iteration": it + 1, "loss": sum(losses) / len(losses), "elapsed_s": round(elapsed, 3)}
                    losses = []
                    if cfg.val_every and ((it + 1) % cfg.val_every == 0 or it + 1 == cfg.iterations):
                        current = state.all_images()
                        if group.main:
                            row["val_accuracy"] = self.validate_now(state, current)
                    metrics.write(row)
                if ckpt is not None and ((cfg.checkpoint_every and (it + 1) % cfg.checkpoint_every == 0)
                                         or it + 1 == cfg.iterations):
                    self._save_checkpoint(ckpt, state, real, ipc, seed, elapsed)
                self.report(callbacks, Progress(it + 1, cfg.iterations, loss=loss, elapsed=elapsed))
        finally:
            metrics.close()
        wall = elapsed_before + time.perf_counter() - start
        syn = self.make_set(real, state.all_images(), labels, ipc, seed)
        syn.meta.update({"iterations": cfg.iterations, "final_loss": last_loss, "wall_time_s": round(wall, 3)})
        return syn

    # ---- pieces subclasses may use or override ----------------------------------------------------
    def check_data(self, real: RealData) -> None:
        """Raise ConfigError if the method cannot run on `real` (the networks need 2-D images)."""
        if len(real.image_shape) != 3 or real.image_shape[1] < 4:
            raise ConfigError(f"{self.name} needs 2-D images, {real.name} has shape {real.image_shape}")

    def network(self, real: RealData, generator: torch.Generator | None = None) -> nn.Module:
        """The configured network for `real`, initialised from a seed drawn from `generator` (or
        arbitrarily when None: a structural template); the global RNG is left untouched."""
        cfg: MatchingConfig = self.config  # type: ignore[assignment]
        kwargs: dict[str, Any] = {}
        if cfg.model == "convnet":
            kwargs = {"width": cfg.width, "depth": cfg.depth, "norm": cfg.norm}
        with torch.random.fork_rng(devices=[]):
            if generator is not None:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            net = get_model(cfg.model, channels=real.channels, num_classes=real.num_classes,
                            image_size=real.image_shape[1:], **kwargs)
        return net.to(real.device)

    def initial_images(self, real: RealData, ipc: int, seed: int,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(images grouped by class, int64 labels) for init 'real' or 'noise' (drawn from `generator`)."""
        cfg: MatchingConfig = self.config  # type: ignore[assignment]
        labels = torch.arange(real.num_classes).repeat_interleave(ipc)
        if cfg.init == "real":
            smallest = min(len(i) for i in real.class_index)
            if ipc > smallest:
                raise ConfigError(f"{self.name}: init 'real' needs ipc <= the smallest class ({smallest}); "
                                  "use --set init=noise")
            images = torch.cat([real.sample_class(c, ipc, generator) for c in range(real.num_classes)])
        elif cfg.init == "noise":
            images = torch.randn((len(labels), *real.image_shape), generator=generator).to(real.device)
        else:
            raise ConfigError(f"init {cfg.init!r} is a method: see init_stage")
        return images.float(), labels

    def init_method(self, ipc: int) -> Method:
        """The method named by `init`, configured as this method's init stage runs it at `ipc`: its
        defaults with this config's `init_overrides`."""
        from .base import METHODS

        cfg: MatchingConfig = self.config  # type: ignore[assignment]
        return METHODS.get(cfg.init)(**cfg.init_overrides()).for_ipc(ipc)

    def init_stage(self, real: RealData, ipc: int, seed: int, run_dir: Path | None,
                   callbacks: tuple[Callback, ...] = (), group: Group = SINGLE) -> tuple[SyntheticSet, float]:
        """The set that method `init` distils (`init_method`) at the same IPC and seed, and
        the wall time to count for it: 0 when computed now (the caller's clock runs), its recorded
        wall time when loaded. With a run directory the stage is kept in `run_dir/init` (an
        iterative init checkpoints there while it runs), so a resumed or repeated run does not
        distil it again; a stored stage made with another config, IPC, seed or dataset is redone.
        `callbacks` see the stage's progress with the message 'init: <method>'. Under a process
        group a stage that splits its classes runs split; any other each process computes alone;
        only the main process stores it."""
        method = self.init_method(ipc)
        stage = run_dir / INIT_DIR if run_dir is not None else None
        if stage is not None and (stage / MANIFEST_FILE).exists():
            got = SyntheticSet.load(stage)
            if is_stage_of(got, method, real, ipc, seed):
                return got, float(got.meta.get("wall_time_s", 0.0))
        resume = False
        if stage is not None and isinstance(method, MatchingMethod) and (stage / CHECKPOINT_FILE).exists():
            resume = method._checkpoint_identity(real, ipc, seed) == method._read_checkpoint(
                stage / CHECKPOINT_FILE)[1]["identity"]
        tagged = [lambda p, cb=cb: cb(dataclasses.replace(p, message=f"init: {method.name}")) for cb in callbacks]
        on = method.place(real, real.device)  # a CPU-only start (e.g. a coreset) of a GPU run: on the CPU
        split = group if "splits_classes" in method.tags else SINGLE
        got = method.distill(on, ipc, seed=seed, run_dir=stage if isinstance(method, MatchingMethod) else None,
                             resume=resume, callbacks=tagged, group=split)
        if stage is not None and group.main:
            got.save(stage)
        return got, 0.0

    def images_from(self, start: SyntheticSet, real: RealData, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`start`'s images grouped by class, checked to hold `ipc` per class."""
        labels = torch.arange(real.num_classes).repeat_interleave(ipc)
        order = torch.argsort(start.hard_labels, stable=True)
        images, got = start.images[order], start.hard_labels[order]
        if not torch.equal(got, labels):
            raise ConfigError(f"init {self.config.init!r} did not return {ipc} images per class")  # type: ignore[attr-defined]
        return images.float().to(real.device), labels

    def validate_now(self, state: MatchingState, images: torch.Tensor | None = None) -> float:
        """Quick accuracy (%) of the current images (or `images`) on the validation split: one
        ConvNet, no augmentation, `val_epochs` epochs; never the test split."""
        from ..evaluation import evaluate

        images = state.images if images is None else images
        syn = self.make_set(state.real, images.detach().clone(), state.labels, state.ipc, state.seed)
        real = state.extra.get("cpu_real") or state.real.to("cpu")  # evaluation runs on the CPU
        state.extra["cpu_real"] = real
        with torch.random.fork_rng(devices=[]):
            res = evaluate(syn, real, "dc", split="val", num_models=1, epochs=self.config.val_epochs,
                           seed=state.seed)
        return round(res.mean, 3)

    # ---- a pool of cached views ------------------------------------------------------------------
    # A "view" is what a method draws at random each iteration (a network, an augmentation draw) and
    # the real-data constants it implies (DM's class means, DC's real gradients of a fresh network).
    # A method can keep `pool_size` views (a config field of every matching method) and replace the
    # oldest one every `refresh_every` iterations. Each view is built from its own seed
    # (the run's seed and the view's number), so a resumed run rebuilds exactly the pool it had.
    def build_view(self, state: MatchingState, generator: torch.Generator) -> Any:
        raise NotImplementedError

    def _view_generator(self, state: MatchingState, number: int) -> torch.Generator:
        return torch.Generator().manual_seed(state.seed * _VIEW_SEED_STRIDE + number + 1)

    def _slot_views(self, it: int) -> list[int]:
        """Which view number each pool slot holds at the start of iteration `it`."""
        cfg: MatchingConfig = self.config  # type: ignore[assignment]
        size, every = cfg.pool_size, cfg.refresh_every
        slots = list(range(size))
        refreshes = it // every if every else 0
        for r in range(refreshes):
            slots[r % size] = size + r
        return slots

    def _sync_pool(self, state: MatchingState, it: int) -> None:
        pool: dict[int, Any] = state.extra.setdefault("pool", {})
        want = self._slot_views(it)
        for number in list(pool):
            if number not in want:
                del pool[number]
        for number in want:
            if number not in pool:
                pool[number] = self.build_view(state, self._view_generator(state, number))
        state.extra["slots"] = want

    def pooled_view(self, state: MatchingState, it: int) -> Any:
        """The view for iteration `it`: one of the pool's, picked with the run's generator (the pool
        is built, or rebuilt after a resume, on first use and refreshed on schedule)."""
        size, every = state.config.pool_size, state.config.refresh_every
        if state.extra.get("slots") is None or (every and it % every == 0):
            self._sync_pool(state, it)
        slot = int(torch.randint(size, (1,), generator=state.generator))
        return state.extra["pool"][state.extra["slots"][slot]]

    # ---- checkpoints ------------------------------------------------------------------------------
    def _checkpoint_identity(self, real: RealData, ipc: int, seed: int) -> dict[str, Any]:
        return {"method": self.name, "dataset": real.name, "ipc": ipc, "seed": seed,
                "config": config_dict(self.config)}

    def _save_checkpoint(self, path: Path, state: MatchingState, real: RealData, ipc: int, seed: int,
                         elapsed: float) -> None:
        from safetensors.torch import save

        # under a process group every process gathers (a collective), the main one writes
        tensors = {"images": state.all_images().cpu().contiguous(),
                   "generator_state": state.generator.get_state().clone()}
        buf = state.optimizer.state.get(state.images, {}).get("momentum_buffer")
        if buf is not None:  # the same on every process: all take every step
            tensors["momentum_buffer"] = state.group.gather_rows(buf, real.num_classes, ipc).cpu().contiguous()
        extra_t, extra_info = self.state_dict(state)
        tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in extra_t.items()})
        info = {"identity": self._checkpoint_identity(real, ipc, seed), "iteration": state.iteration,
                "updates": state.updates, "elapsed_s": elapsed, "extra": extra_info}
        if not state.group.main:
            return
        atomic_write_bytes(path, save(tensors, metadata={"datadistill_checkpoint": json.dumps(info)}))

    @staticmethod
    def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                info = json.loads(f.metadata()["datadistill_checkpoint"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable
        except Exception as e:  # noqa: BLE001 - any corruption is one clear error
            raise RunDirError(f"{path}: unreadable checkpoint ({e})") from None
        return tensors, info

    def _checkpoint_iteration(self, path: Path | None) -> int | None:
        if path is None or not path.exists():
            return None
        return self._read_checkpoint(path)[1]["iteration"]

    def _load_checkpoint(self, path: Path, state: MatchingState, real: RealData, ipc: int, seed: int) -> float:
        tensors, info = self._read_checkpoint(path)
        want = self._checkpoint_identity(real, ipc, seed)
        if info["identity"] != want:
            diff = [k for k in want if info["identity"].get(k) != want[k]]
            raise RunDirError(f"{path}: the checkpoint was written by a different run (differs in {diff}); "
                              "resume with the same method, dataset, ipc, seed and config")
        with torch.no_grad():
            state.images.copy_(tensors["images"])
        if "momentum_buffer" in tensors:
            state.optimizer.state[state.images]["momentum_buffer"] = tensors["momentum_buffer"].to(state.images.device)
        state.generator.set_state(tensors["generator_state"])
        state.iteration, state.updates = info["iteration"], info["updates"]
        extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
        self.load_state(state, extra, info.get("extra", {}))
        return float(info["elapsed_s"])


def is_stage_of(got: SyntheticSet, method: Method, real: RealData, ipc: int, seed: int) -> bool:
    """Whether `got` is what `method` (configured for `ipc`) distils from `real` with `seed`: the
    set an init stage may use instead of distilling it. A config field the stored set lacks was
    added since: it counts at the value the set ran with (the field's default, or the config's
    BEFORE_FIELD), as for bench cells; a field only the stored set has is ignored."""
    return (got.method, got.dataset, got.ipc, got.seed) == (method.name, real.name, ipc, seed) and not differs(
        got.config, config_dict(method.config), before_fields(method.config))


class _Metrics:
    """Append-only JSON lines; on resume, lines past the checkpoint's iteration are dropped."""

    def __init__(self, path: Path | None, iteration: int, resume: bool) -> None:
        self.file = None
        if path is None:
            return
        kept: list[str] = []
        if resume and path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["iteration"] <= iteration:
                        kept.append(line)
                except (ValueError, KeyError):
                    continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in kept))
        self.file = path.open("a")

    def write(self, row: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The metrics lines of a run directory (empty if none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
