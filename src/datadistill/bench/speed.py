"""Speed benchmarks measured side by side in one process: the straightforward eager fp32 path
against the library's fast path, same data, same seeds, with the accuracy each reaches."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_json


def evaluation_speed(dataset: str = "fashion-mnist", *, ipc: int = 10, epochs: int = 1000, data_dir: str | None = None,
                     results_dir: Path | None = None, paths: tuple[str, ...] = ("eager-fp32", "fast"),
                     quiet: bool = False) -> dict[str, Any]:
    """Train one ConvNet-3 under the 'dsa' protocol (DSA, `epochs`) on a random real subset of
    `ipc` images per class, once per path; report seconds and test accuracy of each."""
    from .. import distill, load_dataset
    from ..evaluation import evaluate, get_protocol

    real = load_dataset(dataset, data_dir=data_dir)
    syn = distill(real, "random", ipc, seed=0)
    plain = {"model_kwargs": {"fast_first_block": False}}  # nn.Conv2d -> GroupNorm, as a user would write it
    settings = {"eager-fp32-plain": dict(precision="fp32", compile=False, **plain),
                "eager-fp32": dict(precision="fp32", compile=False), "eager-bf16": dict(precision="bf16", compile=False),
                "fast": dict(precision="bf16", compile=True)}
    figures: dict[str, Any] = {}
    for name in paths:
        protocol = get_protocol("dsa", epochs=epochs, num_models=1, **settings[name])
        if name == "fast":  # compile once outside the timed run, as any second model would find it
            evaluate(syn, real, protocol.replace(epochs=1))
        t0 = time.perf_counter()
        r = evaluate(syn, real, protocol)
        figures[f"{name} train s"] = round(r.train_time_s, 1)
        figures[f"{name} test acc %"] = round(r.mean, 2)
        if not quiet:
            print(f"{name}: {r.train_time_s:.1f} s training, {r.mean:.2f}% test ({time.perf_counter() - t0:.0f} s total)",
                  flush=True)
    for base in ("eager-fp32-plain", "eager-fp32"):
        if base in paths and "fast" in paths:
            figures[f"speed-up vs {base}"] = round(figures[f"{base} train s"] / figures["fast train s"], 2)
    row = {"what": f"evaluation, one ConvNet-3 model, IPC {ipc}, {epochs} epochs, DSA",
           "setting": (f"{dataset}, random real subset seed 0, {torch.get_num_threads()} threads; eager-fp32-plain: "
                       "nn.Conv2d + GroupNorm in eager fp32; eager-fp32: our ConvNet in eager fp32; fast: "
                       "bf16 autocast + torch.compile"),
           "figures": figures,
           "command": f"datadistill speed --dataset {dataset} --ipc {ipc} --epochs {epochs} --paths {','.join(paths)}",
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if results_dir is not None:
        atomic_write_json(Path(results_dir) / f"speed-eval-{dataset}-ipc{ipc}-ep{epochs}.json", row)
    return row
