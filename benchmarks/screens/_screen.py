"""What the screen scripts share: their common arguments, their resumable results file, and a
validation row evaluated one model at a time."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from datadistill._io import atomic_write_text
from datadistill._runtime import tune_allocator


def start(description: str, iterations: str, set_option: bool = True,
          arguments: Callable[[argparse.ArgumentParser], None] | None = None,
          ) -> tuple[argparse.Namespace, Path, dict[str, Any]]:
    """Parse --out / --dataset / --iterations (default `iterations`) / --seed (and --set, for a screen
    that takes extra config fields; `arguments` adds a screen's own), tune the allocator, make the
    output folder: (arguments, results path, the results kept there so far)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--iterations", default=iterations)
    ap.add_argument("--seed", type=int, default=0)
    if set_option:
        ap.add_argument("--set", action="append", default=[],
                        help="another config field of the screened method, field=value")
    if arguments is not None:
        arguments(ap)
    args = ap.parse_args()
    tune_allocator()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    return args, results_path, json.loads(results_path.read_text()) if results_path.exists() else {}


def evaluate_row(name: str, synthetic: Any, real: Any, out: Path, results: dict[str, Any], results_path: Path,
                 protocol: str = "dsa", num_models: int = 5) -> None:
    """Score `synthetic` on the validation split into `results[name]` (mean, std, per model), keeping
    every finished model in the results file and the model in training checkpointed under
    `out/eval-<name>`, so a killed screen resumes at the model it was training. A row that has its
    mean already is left alone."""
    import datadistill as dd

    row = results.setdefault(name, {"models": []})
    if "mean" in row:
        return

    def keep(record: dict[str, Any]) -> None:
        row["models"].append(record)
        atomic_write_text(results_path, json.dumps(results, indent=1))

    res = dd.evaluate(synthetic, real, protocol, split="val", num_models=num_models, finished=row["models"],
                      on_model=keep, checkpoints=out / f"eval-{name}")
    row.update(mean=round(res.mean, 2), std=round(res.std, 2), per_model=[round(a, 2) for a in res.per_model])
    atomic_write_text(results_path, json.dumps(results, indent=1))


def distill_with_snapshots(method: Any, real: Any, ipc: int, seed: int, run_dir: Path, snap: dict[int, Path]) -> None:
    """Run `method` (an iterative matching method configured to the largest count) in `run_dir`,
    resuming from its checkpoint if there is one, and save its images after k iterations as a set in
    `snap[k]` for every k whose set is not there yet. A snapshot is saved during the iteration, so
    before the checkpoint that passes it. (The method's class's `iteration` is wrapped for the run's
    duration and restored after.)"""
    todo = {k for k, path in snap.items() if not (path / "manifest.json").exists()}
    cls = type(method)
    own = "iteration" in vars(cls)  # else inherited: restored by deleting the wrapper
    iteration = cls.iteration

    def snapshot(self, state, it):  # the images after iteration it + 1, when that count is screened
        loss = iteration(self, state, it)
        if it + 1 in todo:
            self.make_set(state.real, state.images.detach().clone(), state.labels, state.ipc,
                          state.seed).save(snap[it + 1])
            print(f"snapshot after {it + 1} iterations: {snap[it + 1]}", flush=True)
        return loss

    cls.iteration = snapshot
    try:
        method.distill(real, ipc, seed=seed, run_dir=run_dir, resume=(run_dir / "checkpoint.safetensors").exists())
    finally:
        if own:
            cls.iteration = iteration
        else:
            del cls.iteration
