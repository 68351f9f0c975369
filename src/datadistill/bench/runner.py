"""Resumable benchmark grid: dataset x method x ipc x seed. Each finished cell is one JSON file
written atomically; a cell whose file exists is skipped, so a killed run resumes where it stopped."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from .._io import atomic_write_json
from ..config import config_dict, parse_set_options
from ..errors import ConfigError
from ..progress import ProgressBar


@dataclass(frozen=True)
class BenchGrid:
    dataset: str
    methods: tuple[str, ...]
    ipcs: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    protocol: str = "dc"
    protocol_overrides: tuple[str, ...] = ()  # "key=value"
    method_overrides: tuple[str, ...] = ()  # "method.key=value"
    data_dir: str | None = None
    full_data: bool = False
    data_options: tuple[tuple[str, Any], ...] = ()
    val_fraction: float = 0.1

    def load_real(self):
        from .. import load_dataset

        return load_dataset(self.dataset, data_dir=self.data_dir, val_fraction=self.val_fraction,
                            **dict(self.data_options))

    def protocol_tag(self) -> str:
        if not self.protocol_overrides:
            return self.protocol
        h = hashlib.sha256("|".join(sorted(self.protocol_overrides)).encode()).hexdigest()[:8]
        return f"{self.protocol}-{h}"

    def overrides_for(self, method: str) -> dict[str, str]:
        out = {}
        for item in self.method_overrides:
            key, _, value = item.partition("=")
            m, dot, field = key.partition(".")
            if not dot or not _:
                raise ConfigError(f"--set in bench expects METHOD.KEY=VALUE, got {item!r}")
            if m == method:
                out[field] = value
        return out


def cell_name(dataset: str, method: str, ipc: int, seed: int, tag: str, overrides: dict[str, str]) -> str:
    name = f"{dataset}__{method}__ipc{ipc}__seed{seed}__{tag}"
    if overrides:
        name += "__" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return name + ".json"


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()}


def run_grid(grid: BenchGrid, results_dir: Path, *, quiet: bool = False, max_cells: int | None = None) -> list[Path]:
    """Run every missing cell of `grid`; return the paths written now."""
    from .. import __version__
    from ..evaluation import evaluate, full_data_reference, get_protocol
    from ..methods import METHODS
    from ..synthetic import _git_revision

    results_dir.mkdir(parents=True, exist_ok=True)
    protocol = get_protocol(grid.protocol, **parse_set_options(list(grid.protocol_overrides)))
    for m in grid.methods:
        METHODS.get(m)  # fail early on unknown names
    real = None
    written: list[Path] = []
    cells = [(m, k, s) for m in grid.methods for k in grid.ipcs for s in grid.seeds]
    todo = [c for c in cells if not (results_dir / cell_name(grid.dataset, c[0], c[1], c[2], grid.protocol_tag(),
                                                             grid.overrides_for(c[0]))).exists()]
    if grid.full_data:
        real = grid.load_real()
        bar = _bar(quiet, "full-data reference")
        ref = full_data_reference(real, cache_dir=results_dir, progress=bar)
        bar.close()
        if not quiet:
            print(f"full data: {ref['mean']:.2f}%")
    for i, (method, ipc, seed) in enumerate(todo):
        if max_cells is not None and i >= max_cells:
            break
        overrides = grid.overrides_for(method)
        path = results_dir / cell_name(grid.dataset, method, ipc, seed, grid.protocol_tag(), overrides)
        if real is None:
            real = grid.load_real()
        m = METHODS.get(method).with_overrides(overrides)
        t0 = time.perf_counter()
        bar = _bar(quiet, f"[{i + 1}/{len(todo)}] {method} ipc={ipc} seed={seed}")
        syn = m.distill(real, ipc, seed=seed, callbacks=[lambda p: bar(p.step, p.total)])
        bar.close()
        distill_s = time.perf_counter() - t0
        bar = _bar(quiet, f"[{i + 1}/{len(todo)}] evaluate {method} ipc={ipc}")
        res = evaluate(syn, real, protocol, progress=bar)
        bar.close()
        row = {
            "dataset": grid.dataset, "method": method, "ipc": ipc, "seed": seed, "protocol_tag": grid.protocol_tag(),
            "protocol_overrides": list(grid.protocol_overrides),
            "method_config": config_dict(m.config), "method_overrides": overrides,
            "distill_wall_time_s": round(distill_s, 2), "storage_bytes": syn.storage_bytes["total"],
            "labels": "soft" if syn.soft_labels else "hard", "evaluation": res.as_dict(),
            "library_version": __version__, "git_revision": _git_revision(), "machine": _machine(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        atomic_write_json(path, row)
        written.append(path)
        if not quiet:
            print(f"{method} ipc={ipc} seed={seed}: {res.mean:.2f} ± {res.std:.2f} "
                  f"(distill {distill_s:.0f} s, eval {res.train_time_s:.0f} s)", flush=True)
    return written


def _bar(quiet: bool, desc: str) -> ProgressBar:
    return ProgressBar(desc, quiet)
