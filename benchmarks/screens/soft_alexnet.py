"""Screen (validation split only): the soft protocol on alexnet, the random IPC 10 subset relabelled as the
bench track relabels it for rded. Usage, from the repository root:
  .venv/bin/python benchmarks/screens/soft_alexnet.py benchmarks/screens/soft-alexnet 0.001,0.003 [temperature=1 ...]
One JSON per row in the output directory; a row already there is not trained again."""
import json, sys, time
from pathlib import Path
from datadistill import load_dataset
from datadistill.evaluation import evaluate, get_protocol
from datadistill.evaluation.evaluate import digits_like
from datadistill.methods import get_method
from datadistill.methods._decoupled import relabel_set
from datadistill.teachers import TeacherRecipe, get_teacher

out = Path(sys.argv[1]); out.mkdir(exist_ok=True)
lrs = [float(x) for x in sys.argv[2].split(",")]
extra = dict(kv.split("=", 1) for kv in sys.argv[3:])
real = load_dataset("fashion-mnist", val_fraction=0.1)
teacher = get_teacher(real, TeacherRecipe(), cache_dir="benchmarks/teachers")
print("teacher", teacher.info.get("key"), flush=True)
cfg = get_method("rded").config
rnd = get_method("random").distill(real, 10, seed=0)
syn = relabel_set(rnd, teacher, cfg.relabel_recipe(), seed=0, flip=not digits_like(real), real=real)
for lr in lrs:
    tag = f"lr{lr:g}" + "".join(f"_{k}{v}" for k, v in sorted(extra.items()))
    f = out / f"{tag}.json"
    if f.exists():
        print(tag, json.loads(f.read_text())["mean"], "(cached)", flush=True); continue
    p = get_protocol("soft", model="alexnet", num_models=2, lr=lr, **extra)
    t = time.time()
    r = evaluate(syn, real, p, split="val")
    d = r.as_dict()
    d["seconds"] = time.time() - t
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(d, default=str, indent=1))
    tmp.replace(f)  # atomic: a killed run leaves no half-written row
    print(tag, d["mean"], d["per_model"], round(d["seconds"]), flush=True)
