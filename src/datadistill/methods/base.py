"""The Method contract: every distillation or selection method is a registered class with a typed
`Config` holding the paper defaults and a `distill(real, ipc, *, seed, ...) -> SyntheticSet`."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from .._runtime import machine
from ..config import check_ipc, check_seed, config_dict, update_config
from ..data import RealData
from ..devices import device_name  # noqa: F401  (re-exported: methods.base.device_name)
from ..distributed import SINGLE, Group
from ..errors import ConfigError
from ..registry import Registry
from ..synthetic import SyntheticSet


@dataclass(frozen=True)
class Progress:
    """One progress report: iteration `step` of `total`, optional loss, seconds since start."""

    step: int
    total: int
    loss: float | None = None
    elapsed: float = 0.0
    message: str = ""


class Callback(Protocol):
    def __call__(self, progress: Progress) -> None: ...


@dataclass(frozen=True)
class MethodConfig:
    """Base for method configs: subclasses are frozen dataclasses whose defaults are the paper's."""

    # Fields added after results were stored whose default changes what the method does: the value
    # that reproduces a result made before the field existed (`bench` re-runs such a cell when
    # today's value differs from it; every other new field's default keeps the old behaviour).
    BEFORE_FIELD: ClassVar[dict[str, Any]] = {}

    def validate(self) -> None:
        """Raise ConfigError for out-of-range values."""

    def for_ipc(self, ipc: int) -> MethodConfig:
        """The concrete config of a run at `ipc`: fields left at an 'auto' value are filled from the
        method's per-IPC schedule. Distilled sets and checkpoints record this, not the request."""
        return self


class Method:
    """Subclasses set `name`, `Config`, `tags` and implement `_distill`.

    Tags: 'selection' (returns real images), 'iterative' (checkpoints and resumes), 'soft_labels',
    'needs_teacher', 'needs_experts', 'learns_lr', 'splits_classes' (runs under torchrun with its
    classes split across the processes, `datadistill.distributed`). The constructor only stores
    configuration.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for `datadistill list methods --long`: family, what it does, paper
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    tags: ClassVar[frozenset[str]] = frozenset()
    # device types the method runs on: it runs where the real data lives (`RealData.to`)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def __init__(self, config: MethodConfig | None = None, **overrides: Any) -> None:
        cfg = config if config is not None else self.Config()
        if not isinstance(cfg, self.Config):
            raise ConfigError(f"{self.name}: config must be a {self.Config.__name__}")
        self.config = update_config(cfg, overrides) if overrides else cfg
        self.config.validate()

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Any]) -> Method:
        return cls(update_config(cls.Config(), overrides))

    def distill(
        self,
        real: RealData,
        ipc: int,
        *,
        seed: int = 0,
        run_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        resume: bool = False,
        teacher: Any = None,
        group: Group = SINGLE,
    ) -> SyntheticSet:
        """Distil `real` to `ipc` images per class. Deterministic given `seed`.

        Iterative methods checkpoint into `run_dir`; `resume=True` continues from its checkpoint
        and ends as an uninterrupted run would. Methods without iterations ignore `resume`.
        Methods tagged 'needs_teacher' use `teacher` (a `teachers.Teacher`, e.g. from
        `get_teacher(real, cache_dir=...)`); without one they train a default teacher first.
        `group`: the torchrun processes this run is split across (methods tagged 'splits_classes');
        every process returns the whole set, and only the main one writes into `run_dir`."""
        check_ipc(ipc)
        check_seed(seed)
        check_split(type(self), group)
        if group.world > real.num_classes:
            raise ConfigError(f"{group.world} processes for {real.num_classes} classes: each process needs a class "
                              "of its own; start at most as many processes as there are classes")
        if real.device.type not in self.devices:
            raise ConfigError(f"{self.name} runs on {' or '.join(self.devices)}, not on {real.device.type}; "
                              "distil it from data on the CPU")
        smallest = min(len(i) for i in real.class_index)
        if "selection" in self.tags and ipc > smallest:
            raise ConfigError(f"{self.name}: ipc {ipc} exceeds the smallest class ({smallest} training images)")
        concrete = self.for_ipc(ipc)
        if concrete is not self:
            return concrete.distill(real, ipc, seed=seed, run_dir=run_dir, callbacks=callbacks, resume=resume,
                                    teacher=teacher, group=group)
        start = time.perf_counter()
        kwargs: dict[str, Any] = {"resume": resume} if "iterative" in self.tags else {}
        if "splits_classes" in self.tags:
            kwargs["group"] = group
        if "needs_teacher" in self.tags:
            kwargs["teacher"] = teacher
        result = self._distill(real, ipc, seed=seed, run_dir=Path(run_dir) if run_dir else None,
                               callbacks=tuple(callbacks), **kwargs)
        result.meta.setdefault("wall_time_s", round(time.perf_counter() - start, 3))
        result.meta.setdefault("machine", machine())  # what the wall time was measured on
        if real.device.type != "cpu":  # the wall time is not a CPU figure: say where it was measured
            result.meta.setdefault("device", device_name(real.device))
        return result

    def place(self, real: RealData, device: str | torch.device) -> RealData:
        """`real` on `device` when this method runs there, else on the CPU."""
        return real.to(device if torch.device(device).type in self.devices else "cpu")

    def for_ipc(self, ipc: int) -> Method:
        """This method with its config made concrete for `ipc` (itself when nothing is 'auto')."""
        cfg = self.config.for_ipc(ipc)
        return self if cfg == self.config else type(self)(cfg)

    def _distill(self, real: RealData, ipc: int, *, seed: int, run_dir: Path | None,
                 callbacks: tuple[Callback, ...]) -> SyntheticSet:
        raise NotImplementedError

    # ---- helpers for subclasses ---------------------------------------------------------------
    def make_set(self, real: RealData, images: torch.Tensor, labels: torch.Tensor, ipc: int, seed: int,
                 **extra: Any) -> SyntheticSet:
        return SyntheticSet(
            images=images.detach().float().cpu().contiguous(), labels=labels.cpu(), dataset=real.name,
            class_names=list(real.class_names), mean=real.mean, std=real.std, ipc=ipc, method=self.name,
            config=config_dict(self.config), seed=seed, **extra,
        )

    @staticmethod
    def report(callbacks: Sequence[Callback], progress: Progress) -> None:
        for cb in callbacks:
            cb(progress)

    def keep_best(self, n: int, candidate: Callable[[int], Any], score: Callable[[Any], float],
                  callbacks: Sequence[Callback], what: str) -> tuple[int, Any, list[float]]:
        """Of `candidate(0)`, ..., `candidate(n - 1)` (made in that order), the one with the highest
        `score` (ties: the earliest): (its index, it, every score rounded to 4 places). Progress
        names each as f"{what} {k}"."""
        best, best_score, best_item, scores, start = -1, float("-inf"), None, [], time.perf_counter()
        for k in range(n):
            item = candidate(k)
            s = score(item)
            scores.append(round(s, 4))
            if s > best_score:
                best, best_score, best_item = k, s, item
            self.report(callbacks, Progress(k + 1, n, elapsed=time.perf_counter() - start,
                                            message=f"{what} {k}: {s:.2f}% (best {best_score:.2f}%)"))
        return best, best_item, scores


METHODS: Registry[type[Method]] = Registry("method")


def check_split(cls: type[Method], group: Group) -> None:
    """Raise ConfigError when `group` has several processes and method `cls` cannot split across them."""
    if group.distributed and "splits_classes" not in cls.tags:
        able = ", ".join(n for n in METHODS.names() if "splits_classes" in METHODS.get(n).tags)
        raise ConfigError(f"{cls.name} does not split across processes; run it without torchrun "
                          f"(methods that do: {able})")


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: register a Method subclass under its `name`."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} has no name")
    if not cls.summary:
        raise ValueError(f"{cls.__qualname__} has no summary")
    if not dataclasses.is_dataclass(cls.Config):
        raise ValueError(f"{cls.__qualname__}.Config must be a dataclass")
    return METHODS.register(cls.name)(cls)
