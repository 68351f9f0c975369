"""Where a teacher's training step spends its time: torch.profiler over one epoch of 16 steps
(the default recipe, `teacher_fit_options`, after one epoch to compile), CPU operators by self time.

    python benchmarks/screens/teacher_profile.py [--steps 16] [--dataset fashion-mnist]
"""
from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from datadistill import load_dataset
from datadistill._runtime import tune_allocator
from datadistill.evaluation.train import fit
from datadistill.teachers import TeacherRecipe, build_teacher_model, teacher_fit_options


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--steps", type=int, default=16)
    args = ap.parse_args()
    tune_allocator()  # as the CLI runs
    real = load_dataset(args.dataset)
    recipe = TeacherRecipe()
    n = args.steps * recipe.batch_size
    x, y = real.train.x[:n], real.train.y[:n]
    options = teacher_fit_options(real, recipe)
    model = build_teacher_model(real, recipe)
    g = torch.Generator().manual_seed(0)
    fit(model, x, y, epochs=1, generator=g, **options)  # compiles
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(model, x, y, epochs=1, generator=g, **options)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
