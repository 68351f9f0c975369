"""Screen (validation split only): the soft protocol on one architecture, trained on the soft track's random
IPC 10 subset relabelled as the bench relabels it for rded (`random_soft_set`). Usage, from the repository root:
  .venv/bin/python benchmarks/screens/soft_protocol.py benchmarks/screens/soft-alexnet --lrs 0.001,0.003 \
      [--model alexnet] [--set temperature=1 ...]
One JSON per row in the output directory, written atomically; a row already there is not trained again.
Rows start from the plain preset (not its per-architecture values, `protocol.ARCHITECTURE_VALUES`): a row
changes only what its tag names."""
import argparse
import json
import time
from pathlib import Path

from datadistill import load_dataset
from datadistill._io import atomic_write_json
from datadistill.bench.softtrack import random_soft_set
from datadistill.config import parse_set_options
from datadistill.evaluation import PRESETS, evaluate, get_protocol
from datadistill.methods import get_method
from datadistill.teachers import TeacherRecipe, get_teacher

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("out", type=Path)
ap.add_argument("--lrs", required=True, type=lambda v: [float(x) for x in v.split(",")])
ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another soft-protocol field")
ap.add_argument("--model", default="alexnet", help="the architecture evaluated (default alexnet)")
ap.add_argument("--teacher-cache", default="benchmarks/teachers")
args = ap.parse_args()
extra = parse_set_options(args.set)
args.out.mkdir(parents=True, exist_ok=True)
real = load_dataset("fashion-mnist", val_fraction=0.1)
teacher = get_teacher(real, TeacherRecipe(), cache_dir=args.teacher_cache)
print("teacher", teacher.info.get("key"), flush=True)
syn = random_soft_set(real, 10, 0, teacher, get_method("rded").config.relabel_recipe())
for lr in args.lrs:
    tag = f"lr{lr:g}" + "".join(f"_{k}{v}" for k, v in sorted(extra.items()))
    f = args.out / f"{tag}.json"
    if f.exists():
        print(tag, json.loads(f.read_text())["mean"], "(cached)", flush=True)
        continue
    t = time.time()
    d = evaluate(syn, real, get_protocol(PRESETS["soft"], model=args.model, num_models=2, lr=lr, **extra), split="val").as_dict()
    d["seconds"] = time.time() - t
    atomic_write_json(f, d)
    print(tag, d["mean"], d["per_model"], round(d["seconds"]), flush=True)
