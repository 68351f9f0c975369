"""Screen: DSA at IPC 1 started from the DM set (as the IPC 10 and 50 schedules are), for a few
iteration counts, scored on the validation split (dsa protocol, 5 models). The DM stage runs once
and each DSA run loads it from its run directory's `init` stage, so only the matching iterations
are paid per row. Resumable: every finished row is kept in `<out>/results.json`.

    python benchmarks/screens/dsa_ipc1_from_dm.py --out runs/screen-dsa1 [--iterations 0,100,250,500]

Iterations 0 is the DM set itself (the start), evaluated the same way.

Rule declared before the first run (2026-12-04): the IPC 1 default becomes init=dm with k
iterations only if some k scores at least 0.2 above the DM start (so the matching adds to it, as
it does at IPC 10) and at least 0.3 above the current default's 71.20 (init=real, 1,000 iterations).
"""
from __future__ import annotations

import json
import shutil
import time

import datadistill as dd
from datadistill._io import atomic_write_text
from datadistill.methods._matching import INIT_DIR

from _screen import start


def main() -> None:
    args, results_path, results = start(__doc__.split("\n\n")[0], "0,100,250,500")
    out = results_path.parent
    extra = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        try:
            extra[k] = float(v) if "." in v or "e" in v else int(v)
        except ValueError:
            extra[k] = v
    real = dd.load_dataset(args.dataset)
    dm_dir = out / "dm"
    if not (dm_dir / "manifest.json").exists():
        t = time.perf_counter()
        dm = dd.distill(real, "dm", 1, seed=args.seed)
        dm.meta["wall_time_s"] = round(time.perf_counter() - t, 3)
        dm.save(dm_dir)
    for k in (int(s) for s in args.iterations.split(",")):
        tag = f"iterations={k}" + "".join(f",{a}" for a in args.set)
        if tag in results:
            print(tag, results[tag])
            continue
        t = time.perf_counter()
        if k == 0:
            syn = dd.load(dm_dir)
        else:
            run = out / tag.replace("=", "").replace(",", "_")
            if run.exists():
                shutil.rmtree(run)
            shutil.copytree(dm_dir, run / INIT_DIR)
            syn = dd.distill(real, "dsa", 1, seed=args.seed, run_dir=run, init="dm", iterations=k, **extra)
        distill_s = time.perf_counter() - t
        t = time.perf_counter()
        res = dd.evaluate(syn, real, "dsa", split="val")
        results[tag] = {"val_mean": res.mean, "val_std": res.std, "per_model": res.per_model,
                        "distill_s": round(distill_s, 1), "eval_s": round(time.perf_counter() - t, 1)}
        print(tag, results[tag], flush=True)
        atomic_write_text(results_path, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
