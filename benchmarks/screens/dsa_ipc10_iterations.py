"""Screen: DSA at IPC 10 with more matching iterations than the default 50 (optionally at another
network width during matching), scored on the validation split (dsa protocol, 5 models), against
the default set of the same seed.

The default IPC 10 schedule is a DM start (8,000 iterations, 7.5 min alone on an AMD EPYC without
AMX) and then 50 iterations of 10 outer steps at width 128 (35 s each there, 29 min), inside the
issue's 60 minutes; the rest of that budget buys up to about 90 iterations in all. One run to the
largest count gives every row: nothing in the IPC 10 schedule (constant image lr, no view pool)
depends on the total, so its images after k iterations are those of a k-iteration run. Resumable:
the run checkpoints into `<out>/run-w<width>-seed<seed>` (every 10 iterations), each snapshot is a
set in `<out>/w<width>-it<k>-seed<seed>` written before the checkpoint that passes it, and every
evaluated model is kept in `<out>/results.json`, with the model in training checkpointed beside it.

    python benchmarks/screens/dsa_ipc10_iterations.py --out runs/screen-dsa10-it --seed 2 \\
        --baseline benchmarks/sets/fashion-mnist__dsa__ipc10__seed2 \\
        [--init-from <a finished DM stage of the same seed>] [--width 128] [--iterations 65,80] \\
        [--set stage_init=auto ...]

`--init-from` copies a finished DM stage (a bench run's `init/` folder of the same seed) into the
run, so the DM start is not distilled again; it is checked like any stored stage (`init_stage`).

Rule declared before the first run (2026-12-06): a row must fit the issue's 60 minutes end to end on
the EPYC (DM start included) and gain at least 0.3 on validation over the default set of the same
seed to go on to a second seed; it is adopted only on a mean gain of 0.3 over two seeds with neither
losing.

Result (2026-12-06, AMD EPYC with AVX512-BF16, 2 threads; seed 2, width 128, the DM stage copied from
the bench run of the same seed): the default set (50 iterations) 85.20 ± 0.24, 65 iterations
84.98 ± 0.33, 80 iterations 85.27 ± 0.24 (5 models each; 80 iterations ended 3,229 s after the start,
the DM stage's 670 s counted). No row gains 0.3, so the screen stopped at seed 2 and the default stays
50. The run's losses at iterations 10-50 equal the bench run's to the printed digits (232.58, 229.89,
223.3, 220.79, 224.5), so its 50-iteration images are the default set's.

With `--set` (other DSA config fields), the rows are that config at each count (a count may then be
the default 50); run folders and snapshots are named with the fields first.

Row declared 2026-12-07 before it ran: `--set stage_init=auto --iterations 50`, the DM stage started
as DM's own default now starts at IPC 10 (the k-means coreset; dm's test cells went from 83.8 to
84.6 with it), i.e. gradient matching refines today's dm set, copied with `--init-from` from the dm
bench cell of the same seed (same config and seed, so it is that stage). Rule (as DM's k-means
screen): it must fit the 60 minutes end to end on the EPYC and gain at least 0.2 on validation over
the default set of the same seed to go on to a second seed; adopted only on a mean gain of 0.2 over
two seeds with neither losing. Seeds 1 and 2.

Result (2026-12-07, AMD EPYC with AVX512-BF16, 2 threads; seed 1, the k-means-started DM stage copied
from dm's bench cell of seed 1): the default set 85.43 ± 0.12, the k-means-started stage refined 50
iterations 84.95 ± 0.19 (5 models each; 2,352 s end to end, the DM stage's 634 s counted). It loses
0.48, so the screen stopped at seed 1 and the stage keeps its random real start: a better DM set
(84.6 against 83.8 on test) is not a better start for gradient matching here.

    python dsa_ipc10_iterations.py --out ../../runs/screen-dsa10-it --seed 1 \\
        --baseline ../sets/fashion-mnist__dsa__ipc10__seed1 --init-from ../sets/fashion-mnist__dm__ipc10__seed1 \\
        --iterations 50 --set stage_init=auto

Row declared 2026-12-07 (a later session) before it ran: `--set init=dm-multilayer --iterations 50`,
i.e. the DM stage is `dm-multilayer` from random real images (its `stage_init` stays `real`), which
keeps the random start's variety (the k-means start's prototypes were the worse start above) and
scores higher on its own (validation, seed 1: 84.32 against `dm`'s 83.96 from random real images).
Seed 1, the default set's row taken from the result above (85.43 ± 0.12, the same set, evaluation
seeds and CPU type). Same rule as the row before: it must fit the 60 minutes end to end on the EPYC
and gain at least 0.2 on validation over 85.43 to go on to seed 2; adopted only on a mean gain of 0.2
over two seeds with neither losing.

    python dsa_ipc10_iterations.py --out ../../runs/screen-dsa10-ml --seed 1 \\
        --baseline ../sets/fashion-mnist__dsa__ipc10__seed1 --iterations 50 --set init=dm-multilayer

Result (2026-12-07, AMD EPYC with AVX512-BF16, 2 threads; seed 1): 85.08 ± 0.26 (5 models; 2,325 s
end to end, the dm-multilayer stage's 677 s counted) against the default set's 85.43 ± 0.12. It loses
0.35, so the screen stopped at seed 1 and the stage stays `dm` from random real images.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import datadistill as dd
from datadistill.config import parse_set_options
from datadistill.methods import get_method

from _screen import distill_with_snapshots, evaluate_row, start

IPC = 10


def main() -> None:
    def arguments(ap) -> None:
        ap.add_argument("--width", type=int, default=128)
        ap.add_argument("--baseline", required=True, help="the default set of the same seed")
        ap.add_argument("--init-from", help="a finished DM stage of the same seed, to copy into the run")

    args, results_path, results = start(__doc__.split("\n\n")[0], "65,80", arguments=arguments)
    out = Path(args.out)
    counts = sorted(int(s) for s in args.iterations.split(","))
    fields = parse_set_options(args.set)
    settings = ",".join(f"{k}={v}" for k, v in sorted(fields.items()))
    tag = "".join(c if c.isalnum() else "-" for c in settings) + "-" if settings else ""
    snap = {k: out / f"{tag}w{args.width}-it{k}-seed{args.seed}" for k in counts}
    real = dd.load_dataset(args.dataset)

    baseline = dd.SyntheticSet.load(args.baseline)
    if baseline.seed != args.seed or baseline.method != "dsa" or baseline.ipc != IPC:
        raise ValueError(f"--baseline is {baseline.method} IPC {baseline.ipc} seed {baseline.seed}, "
                         f"not dsa IPC {IPC} seed {args.seed}")
    evaluate_row(f"default,seed={args.seed}", baseline, real, out, results, results_path)

    todo = [k for k in counts if not (snap[k] / "manifest.json").exists()]
    if todo:
        run_dir = out / f"run-{tag}w{args.width}-seed{args.seed}"
        if args.init_from and not (run_dir / "init" / "manifest.json").exists():
            (run_dir / "init").mkdir(parents=True, exist_ok=True)
            for f in ("manifest.json", "synthetic.safetensors"):
                shutil.copy2(Path(args.init_from) / f, run_dir / "init" / f)
        method = get_method("dsa", **{"width": args.width, **fields, "iterations": max(counts)}).for_ipc(IPC)
        distill_with_snapshots(method, real, IPC, args.seed, run_dir, snap)
    for k in counts:
        evaluate_row(f"{settings + ',' if settings else ''}width={args.width},iterations={k},seed={args.seed}",
                     dd.SyntheticSet.load(snap[k]), real,
                     out, results, results_path)
    for name, row in results.items():
        print(name, {k: row[k] for k in ("mean", "std", "per_model") if k in row})


if __name__ == "__main__":
    main()
