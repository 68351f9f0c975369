"""Screen: relabel a stored sre2l set with an ensemble of labelers (the mean of their logits on
every view), scored on the validation split (soft protocol, 2 models) against the set as stored.

The labelers are the set's own auto labeler (`label_epochs` of the teacher's recipe) with seeds
`--seeds`, loaded from (or trained into) the teacher cache; the views are the stored set's (same
recipe, same random stream), so only the labels change. Multi-network soft labels are G-VBSM's
(Shao et al., CVPR 2024); an ensemble's averaged logits are a smoother, better calibrated target.

    python benchmarks/screens/sre2l_label_ensemble.py --set-dir benchmarks/sets/fashion-mnist__sre2l__ipc10__seed0 \\
        --teacher-cache <a copy of benchmarks/teachers> --out runs/screen-label-ensemble [--seeds 0,1,2]

Rule written before the run (2026-12-07): the committed IPC 10 seed-0 set relabelled by the 6-epoch
labelers of seeds 0, 1, 2; go on to seeds 1 / 2 only on a gain of 0.5 over the set as stored
(87.56 +- 0.03 on validation); adopt only on a mean gain of 0.7 over seeds 0 / 1 / 2 with no seed
losing more than 0.3, and mlp / lenet not losing more than 1.0.

Result (2026-12-07, AMD EPYC with AVX512-BF16, 2 threads): labelers at 90.64 / 90.52 / 91.20 test
accuracy; **87.37 +- 0.17** (shirts 44.2% against 53.1%): it loses 0.19 and stops.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

import datadistill as dd
from datadistill import teachers as T
from datadistill.methods.base import METHODS
from datadistill.softlabels import describe_views, relabel_views
from datadistill.synthetic import SyntheticSet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set-dir", required=True)
    p.add_argument("--teacher-cache", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    args = p.parse_args()
    out = Path(args.out)
    if (out / "val.json").exists():
        print((out / "val.json").read_text())
        return
    syn = SyntheticSet.load(args.set_dir)
    real = dd.load_dataset(syn.dataset)
    cfg = METHODS.get(syn.method).Config(**syn.config).for_ipc(syn.ipc)
    teacher = T.get_teacher(real, T.TeacherRecipe.from_dict(syn.meta["teacher"]["recipe"]), cache_dir=args.teacher_cache)
    epochs = {} if cfg.label_epochs == T.SAME_TEACHER else {"epochs": cfg.label_epochs}  # the set's labeler
    nets = [T.variant(teacher, real, seed=int(s), **epochs) for s in args.seeds.split(",")]

    def logits(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([n.logits(x) for n in nets]).mean(0)

    x = syn.images.detach().float()
    g = torch.Generator().manual_seed(10_000 + syn.seed)  # the stored views' stream (`relabel_set`)
    flip = bool(syn.meta["soft_labels"]["flip"])
    recipe = cfg.view_recipe(flip)
    views = relabel_views(x, logits, syn.num_classes, recipe, g, flip)
    if not all(torch.equal(views[k], syn.views[k]) for k in views if k not in ("view_logits", "view_classes")):
        raise RuntimeError(f"{args.set_dir}: its stored views are not the ones its recipe and seed draw")
    meta = {**syn.meta, "soft_labels": describe_views(recipe, views),
            "labeler": {"ensemble": [n.describe() for n in nets]}}
    ens = dataclasses.replace(syn, labels=torch.softmax(logits(x), 1), views=views, meta=meta, made_by=None)
    ens.save(out)
    res = dd.evaluate(ens, real, "soft", split="val", num_models=2)
    summary = {"labelers_test": [n.info.get("test_accuracy") for n in nets], "val": res.mean, "std": res.std}
    (out / "val.json").write_text(json.dumps(summary))
    print(summary)


if __name__ == "__main__":
    main()
