"""Screen (validation split only): does a narrower teacher, which trains in less time, label as well?
For each teacher width: rded IPC 10 (its defaults) and the soft track's random IPC 10 subset, both
relabelled by that teacher as the bench does, each trained under the soft protocol (convnet, 2 models)
and scored on the validation split. Teachers come from (or are trained into) `--teacher-cache`,
the default recipe with `model_kwargs={norm: batch, width: W}` (width 128 is the default recipe).

    .venv/bin/python benchmarks/screens/teacher_width.py runs/screen-teacher-width --widths 128,64 \
        --teacher-cache runs/teacher-screen

One JSON per row in the output directory, written atomically; a row already there is not trained again.

Rule declared before the first run (2026-12-05): a narrower default teacher is worth its cost (every
soft-track cell re-run) only if its rded score on validation is within 0.3 of width 128's and rded
still beats the random subset by at least as much as under width 128, less 0.3.
"""
import argparse
import json
import time
from pathlib import Path

from datadistill import load_dataset
from datadistill._io import atomic_write_json
from datadistill._runtime import tune_allocator
from datadistill.bench.softtrack import random_soft_set
from datadistill.evaluation import PRESETS, evaluate, get_protocol
from datadistill.methods import get_method
from datadistill.teachers import TeacherRecipe, get_teacher

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("out", type=Path)
ap.add_argument("--widths", default="128,64", type=lambda v: [int(x) for x in v.split(",")])
ap.add_argument("--teacher-cache", default="runs/teacher-screen")
ap.add_argument("--default-teacher-cache", default="benchmarks/teachers", help="where the width-128 teacher is")
ap.add_argument("--models", type=int, default=2)
ap.add_argument("--ipc", type=int, default=10)
args = ap.parse_args()
tune_allocator()
args.out.mkdir(parents=True, exist_ok=True)
real = load_dataset("fashion-mnist", val_fraction=0.1)
protocol = get_protocol(PRESETS["soft"], num_models=args.models)
rded = get_method("rded")
for width in args.widths:
    recipe = TeacherRecipe() if width == 128 else TeacherRecipe().replace(model_kwargs={"norm": "batch", "width": width})
    cache = args.default_teacher_cache if width == 128 else args.teacher_cache
    teacher = None
    for what in ("rded", "random"):
        f = args.out / f"w{width}_{what}_ipc{args.ipc}.json"
        if f.exists():
            print(f.stem, json.loads(f.read_text())["mean"], "(cached)", flush=True)
            continue
        teacher = teacher or get_teacher(real, recipe, cache_dir=cache)
        t = time.time()
        if what == "rded":
            syn = rded.distill(real, args.ipc, seed=0, teacher=teacher)
        else:
            syn = random_soft_set(real, args.ipc, 0, teacher, rded.config.relabel_recipe())
        made = time.time() - t
        d = evaluate(syn, real, protocol, split="val").as_dict()
        d.update(seconds=time.time() - t, distill_seconds=made, teacher=teacher.info.get("key"),
                 teacher_test=teacher.info.get("test_accuracy"), teacher_val=teacher.info.get("val_accuracy"))
        atomic_write_json(f, d)
        print(f.stem, round(d["mean"], 2), [round(a, 2) for a in d["per_model"]], round(d["seconds"]), flush=True)
