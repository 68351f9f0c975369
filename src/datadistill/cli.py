"""Command-line interface: `datadistill distill|evaluate|show|export|list|bench|speed|teacher|demo`.

Library errors (`DatadistillError`) become a one-line message on stderr and exit code 2.

Under torchrun (`torchrun --nproc_per_node=N -m datadistill distill|evaluate ...`) `distill` splits a
matching method's classes across the processes and `evaluate` its models (`datadistill.distributed`);
only the first process shows progress, prints and writes.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, DatadistillError, RunDirError, SlowPathWarning
from .progress import ProgressBar as _Bar

MARKDOWN_HELP = ("the report to (re)write (default: BENCHMARKS.md for the default --results, else BENCHMARKS.md "
                 "beside the --results directory); an existing file must be the report of the same --results")

log = logging.getLogger("datadistill")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where the dataset's files are (default: the source's standard place)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="validation share carved from train (default 0.1)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset source option, e.g. image_size=32, channels=3, download=true (repeatable)")


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from .config import parse_set_options

    return {k: yaml.safe_load(v) for k, v in parse_set_options(args.data_option).items()}


def _device(name: str, cls=None, group=None) -> str:
    """Check `--device`: a device PyTorch knows, visible here, and (with a method class `cls`) one
    the method runs on. Under torchrun (`group`) a bare `cuda` is each process's own GPU (LOCAL_RANK)."""
    from .devices import check_device
    from .distributed import local_rank

    if name == "cuda" and group is not None and group.distributed:
        name = f"cuda:{local_rank()}"

    try:
        device = check_device(name, here=False)
        if cls is not None and device.type not in cls.devices:
            raise ConfigError(f"device {name!r}: {cls.name} runs on {' or '.join(cls.devices)}")
        check_device(device)
    except ConfigError as e:
        raise ConfigError(f"--device: {e}") from None
    return name


def _load_real(args: argparse.Namespace, name: str, data_dir: str | None = None, options: dict | None = None):
    from . import load_dataset

    opts = {**(options or {}), **_data_options(args)}
    return load_dataset(name, data_dir=args.data_dir or data_dir, val_fraction=args.val_fraction, **opts), opts


def _add_protocol_args(p: argparse.ArgumentParser, default: str = "dsa") -> None:
    p.add_argument("--protocol", default=default,
                   help=f"evaluation protocol preset: dc | dsa | soft | smoke (`datadistill list protocols`; default {default})")
    p.add_argument("--eval-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a protocol field, e.g. --eval-set num_models=3 (repeatable)")


def _default_teacher_cache() -> str:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "datadistill" / "teachers")


def _add_teacher_args(p: argparse.ArgumentParser, default_help: str = "~/.cache/datadistill/teachers") -> None:
    """`default_help`: where the command keeps teachers when --teacher-cache is not given."""
    p.add_argument("--teacher-cache", default=None,
                   help=f"directory of cached teachers (trained once per dataset, split and recipe; default {default_help})")
    p.add_argument("--teacher-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a teacher recipe field, e.g. --teacher-set epochs=30 (repeatable)")


def _teacher(args: argparse.Namespace, real, quiet: bool, recipe=None):
    """The teacher of `recipe` (default: the default recipe with --teacher-set applied), from the
    cache or trained now and cached."""
    from .config import parse_set_options
    from .teachers import TeacherRecipe, get_teacher

    if recipe is None:
        recipe = TeacherRecipe().replace(**parse_set_options(args.teacher_set))
    bar = _Bar("teacher", quiet)
    try:
        return get_teacher(real, recipe, cache_dir=args.teacher_cache or _default_teacher_cache(), progress=bar)
    finally:
        bar.close()


def _prepare_out(out: Path, force: bool, hint: str = "") -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise RunDirError(f"{out}: already exists and is not empty; choose another --out or pass --force{hint}")


def _protocol(args: argparse.Namespace, model: str | None = None):
    """The protocol `--protocol` and `--eval-set` give; on `model` when given (then with that
    architecture's own preset values, `protocol.ARCHITECTURE_VALUES`)."""
    from .config import parse_set_options
    from .evaluation import get_protocol

    options = parse_set_options(args.eval_set)
    if model is not None:
        options["model"] = model
    return get_protocol(args.protocol, **options)


def cmd_distill(args: argparse.Namespace) -> int:
    from .config import check_ipc, check_seed, load_yaml_config, parse_set_options
    from .export import save_grid
    from .methods import METHODS
    from .methods._matching import CHECKPOINT_FILE, INIT_DIR
    from .methods.base import check_split

    out = Path(args.out)
    cls = METHODS.get(args.method)
    group = _group(args)
    check_split(cls, group)
    device = _device(args.device, cls, group)  # before anything touches the run directory
    check_ipc(args.ipc, "--ipc")
    check_seed(args.seed, "--seed")
    if args.resume:
        if args.force:
            raise RunDirError("--resume and --force contradict each other: resume keeps the run, force restarts it")
        if "iterative" not in cls.tags:
            raise RunDirError(f"{args.method} has no iterations to resume; run it without --resume")
        if not (out / CHECKPOINT_FILE).exists() and not (out / INIT_DIR / CHECKPOINT_FILE).exists():
            raise RunDirError(f"nothing to resume: {out} has no {CHECKPOINT_FILE}")
        if (out / "synthetic.safetensors").exists():
            raise RunDirError(f"{out}: this run already finished; use another --out or --force to restart it")
    else:
        hint = "; pass --resume to continue it" if (out / CHECKPOINT_FILE).exists() else ""
        _prepare_out(out, args.force, hint)
    overrides: dict[str, Any] = {}
    if args.config:
        overrides.update(load_yaml_config(args.config))
    overrides.update(parse_set_options(args.set))
    method = cls.with_overrides(overrides)
    protocol = _protocol(args) if args.evaluate else None
    real, data_options = _load_real(args, args.dataset)
    teacher = _teacher(args, real, args.quiet) if "needs_teacher" in cls.tags else None
    # killed during its init stage: the stage resumes from its own checkpoint, the run starts
    resume = args.resume and (out / CHECKPOINT_FILE).exists()
    group.barrier()  # every process has checked the run directory before the first one writes into it
    bar = _Bar(f"{args.method} ipc={args.ipc}", args.quiet or not group.main)
    try:
        syn = method.distill(real.to(device), args.ipc, seed=args.seed, run_dir=out, callbacks=[bar],
                             resume=resume, teacher=teacher, group=group)
    finally:
        bar.close()
    if protocol is not None and not group.main:  # the other processes train their share of the models
        _evaluate_into(out, syn, real, [protocol], True, teacher=teacher, device=device, group=group)
    if not group.main:
        return 0
    if args.data_dir:
        syn.meta["data_dir"] = str(Path(args.data_dir).resolve())
    if data_options:
        syn.meta["data_options"] = data_options
    syn.save(out)
    save_grid(syn, out / "grid.png")
    from .report import save_loss_curve

    save_loss_curve(out, out / "loss.png")
    msg = f"{args.method}: {len(syn.images)} images in {syn.meta.get('wall_time_s', 0):.1f} s -> {out}"
    if protocol is not None:
        _evaluate_into(out, syn, real, [protocol], args.quiet, teacher=teacher, device=device, group=group)
        msg += f"; test accuracy {syn.meta['evaluation'][protocol.model]['mean']:.2f}%"
    print(msg)
    return 0


def _evaluate_into(run_dir: Path, syn, real, protocols: Sequence, quiet: bool, split: str = "test",
                   teacher=None, device: str = "cpu", group=None) -> dict:
    """Evaluate under each of `protocols` (one per architecture) on `split` and record it in the
    manifest: test results under `evaluation` (and in the report), validation results under
    `validation` (for choosing configs; never in the report). Under a process group the models
    are split across the processes and only the main one records."""
    from .distributed import SINGLE
    from .evaluation import evaluate
    from .report import write_report

    group = group or SINGLE
    results = {}
    for p in protocols:
        bar = _Bar(f"evaluate {p.model}" + (" on the validation split" if split == "val" else ""),
                   quiet or not group.main)
        try:
            results[p.model] = evaluate(syn, real, p, split=split, progress=bar, teacher=teacher,
                                        device=device, group=group).as_dict()
        finally:
            bar.close()
    if not group.main:
        return results
    syn.meta.setdefault("evaluation" if split == "test" else "validation", {}).update(results)
    syn.save(run_dir)  # manifest now carries the evaluation
    if split == "test":
        write_report(run_dir, syn, {f"{syn.method} / {m}": r for m, r in results.items()})
    return results


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .synthetic import SyntheticSet

    protocol = _protocol(args)
    group = _group(args)
    device = _device(args.device, group=group)
    syn = SyntheticSet.load(args.dir)
    # The data location recorded at distillation time is used unless --data-dir is given.
    real, _ = _load_real(args, syn.dataset, data_dir=syn.meta.get("data_dir"), options=syn.meta.get("data_options"))
    models = [m for m in args.models.split(",") if m] if args.models else []
    teacher = None
    if protocol.label_mode == "teacher":
        teacher = _set_teacher(args, syn, real)
    protocols = [_protocol(args, model=m) for m in models] or [protocol]
    results = _evaluate_into(Path(args.dir), syn, real, protocols, args.quiet, split=args.split,
                             teacher=teacher, device=device, group=group)
    if not group.main:
        return 0
    if args.split == "val":
        print("validation split:")
    for model, r in results.items():
        if args.per_class:  # before the summary line, which stays last
            names = syn.meta.get("class_names") or [str(c) for c in range(len(r["per_class"]))]
            order = sorted(range(len(r["per_class"])), key=lambda c: r["per_class"][c])
            print(f"{model} per class: " + ", ".join(f"{names[c]} {r['per_class'][c]:.1f}" for c in order))
        print(f"{model}: {r['mean']:.2f} ± {r['std']:.2f} % over {len(r['per_model'])} models "
              f"({r['train_time_s']:.0f} s training)")
    return 0


def _set_teacher(args: argparse.Namespace, syn, real):
    """Live-teacher mode: the network that labelled the set (its recipe is in the manifest: the
    labeler when there was one, else the teacher), from the cache; with --teacher-set, that recipe
    instead."""
    from .teachers import TeacherRecipe

    described = (syn.meta.get("labeler") or syn.meta.get("teacher", {})).get("recipe")
    recipe = TeacherRecipe.from_dict(described) if described and not args.teacher_set else None
    return _teacher(args, real, args.quiet, recipe)


def cmd_relabel(args: argparse.Namespace) -> int:
    """Soft labels for any stored set (a coreset, a DM set, a random subset): the same relabel step
    the decoupled methods end with, by the dataset's teacher, into a new run directory."""
    from .config import check_seed, parse_set_options, update_config
    from .evaluation.evaluate import digits_like
    from .export import save_grid
    from .methods._decoupled import RelabelConfig, method_label_epochs, relabel_set
    from .synthetic import SyntheticSet

    src, out = Path(args.dir), Path(args.out)
    check_seed(args.seed, "--seed")
    if out.resolve() == src.resolve():
        raise RunDirError(f"{out}: --out is the set being relabelled; write the relabelled set elsewhere")
    cfg = update_config(RelabelConfig(), parse_set_options(args.set))  # validates
    syn = SyntheticSet.load(src)  # before anything touches --out
    if cfg.label_epochs == 0:  # auto: the labeler the set's own method would choose
        cfg = update_config(cfg, {"label_epochs": method_label_epochs(syn.method, syn.ipc)})
    _prepare_out(out, args.force)
    real, _ = _load_real(args, syn.dataset, data_dir=syn.meta.get("data_dir"), options=syn.meta.get("data_options"))
    teacher = _teacher(args, real, args.quiet)
    bar = _Bar(f"relabel {syn.method} ipc={syn.ipc}", args.quiet)
    try:
        soft = relabel_set(syn, teacher, cfg.for_ipc(syn.ipc), seed=args.seed, flip=not digits_like(real), real=real,
                           callbacks=[bar])
    finally:
        bar.close()
    # results measured on the hard-labelled images do not describe the relabelled set
    for key in ("evaluation", "validation"):
        soft.meta.pop(key, None)
    soft.meta["relabelled_from"] = str(src.resolve())
    soft.save(out)
    save_grid(soft, out / "grid.png")
    sizes = soft.storage_bytes
    lab = soft.meta.get("labeler")
    by = (f"labeler {lab['key']} ({lab['recipe']['epochs']} epochs of the teacher's recipe)" if lab
          else f"teacher {teacher.info.get('key')}")
    print(f"{syn.method}: {len(soft.images)} images relabelled by {by} "
          f"({sizes.get('total', 0) / 1024:.0f} KiB with labels) -> {out}")
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    real, _ = _load_real(args, args.dataset)
    teacher = _teacher(args, real, args.quiet)
    info = teacher.info
    print(f"teacher {info['key']} ({teacher.recipe.model}, {teacher.recipe.epochs} epochs): "
          f"test {info.get('test_accuracy', float('nan')):.2f}%, validation {info.get('val_accuracy', float('nan')):.2f}%, "
          f"trained in {info.get('train_time_s', float('nan')):.0f} s -> {info.get('path')}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .export import save_grid
    from .methods._matching import read_metrics
    from .report import save_loss_curve
    from .synthetic import SyntheticSet

    syn = SyntheticSet.load(args.dir)
    if args.out:  # a path of the user's: written only where nothing is, unless --force
        out = Path(args.out)
        if out.suffix.lower() != ".png":
            raise ConfigError(f"show writes PNG images: --out must end in .png, got {out}")
        curve_out = out.with_name(out.stem + "-loss.png")
        has_curve = any("loss" in r for r in read_metrics(args.dir))
        for path in (out, curve_out) if has_curve else (out,):
            if path.exists() and not args.force:
                raise RunDirError(f"{path}: exists (use --force to replace it)")
    else:  # show's own files in the run directory, redrawn each time
        out, curve_out = Path(args.dir) / "grid.png", Path(args.dir) / "loss.png"
    if args.per_class < 1 or args.scale < 1:
        raise ConfigError(f"--per-class and --scale must be at least 1, got {args.per_class} and {args.scale}")
    save_grid(syn, out, max_per_class=args.per_class, scale=args.scale)
    print(out)
    curve = save_loss_curve(args.dir, curve_out)
    if curve is not None:
        print(curve)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_folder, export_npz
    from .synthetic import SyntheticSet

    syn = SyntheticSet.load(args.dir)
    if args.to == "folder":
        out = export_folder(syn, args.out or Path(args.dir) / "images", force=args.force)
    else:
        out = export_npz(syn, args.out or Path(args.dir) / "synthetic.npz", force=args.force)
    print(out)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from . import list_datasets, list_methods, list_models
    from .evaluation import PRESETS

    what = {"methods": list_methods, "datasets": list_datasets, "models": list_models,
            "protocols": lambda: sorted(PRESETS)}
    names = what[args.what]()
    if not args.long:
        for name in names:  # one name per line: for scripts
            print(name)
        return 0
    from .bench.tables import protocol_line
    from .data import DATASETS
    from .methods import METHODS
    from .models import MODELS

    def about(name: str) -> str:
        if args.what == "protocols":
            return protocol_line(PRESETS[name].as_dict())
        if args.what == "methods":
            tags = sorted(METHODS.get(name).tags)
            return METHODS.summary(name) + (f" [{', '.join(tags)}]" if tags else "")
        return {"datasets": DATASETS, "models": MODELS}[args.what].summary(name)

    width = max(map(len, names), default=0)
    for name in names:
        print(f"{name:<{width}}  {about(name)}")
    return 0


def _report_path(args: argparse.Namespace) -> Path:
    """The report `bench` / `speed` will write (`--markdown`, else beside `--results`), checked
    before any work: hours later it must not turn out to be another file (`check_markdown_target`)."""
    from .bench.tables import check_markdown_target, default_markdown

    results = Path(args.results)
    markdown = Path(args.markdown) if args.markdown else default_markdown(results)
    check_markdown_target(results, markdown)
    return markdown


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.runner import BenchGrid, run_grid
    from .bench.tables import write_benchmarks_md
    from .config import int_list

    results = Path(args.results)
    markdown = _report_path(args)
    if not args.report_only:
        grid = BenchGrid(
            dataset=args.dataset, methods=tuple(m for m in args.methods.split(",") if m),
            ipcs=int_list(args.ipc, "--ipc"), seeds=int_list(args.seeds, "--seeds"),
            protocol=args.protocol, protocol_overrides=tuple(args.eval_set), data_dir=args.data_dir,
            full_data=args.full_data, method_overrides=tuple(args.set),
            data_options=tuple(sorted(_data_options(args).items())), val_fraction=args.val_fraction,
            teacher_cache=args.teacher_cache or str(results.parent / "teachers"),
            teacher_overrides=tuple(args.teacher_set), device=_device(args.device),
            allow_other_set=args.allow_other_set,
        )
        run_grid(grid, results, quiet=args.quiet, max_cells=args.max_cells,
                 sets_dir=(results.parent / "sets" if args.sets is None else Path(args.sets) if args.sets else None))
    out = write_benchmarks_md(results, markdown)
    print(out)
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from .bench.speed import DEFAULT_EVAL_PATHS, dc_speed, dm_speed, evaluation_speed, scaleout_speed, teacher_speed
    from .bench.tables import write_benchmarks_md

    if (args.set or args.widths) and args.what not in ("dc", "dsa"):
        raise ConfigError(f"speed --set and --widths apply to --what dc|dsa, not {args.what}")
    if args.what != "evaluation" and (args.model != "convnet" or args.batch_size is not None or args.paths
                                      or args.optimizer != "sgd"):
        raise ConfigError(f"speed --model, --batch-size, --paths and --optimizer apply to --what evaluation, "
                          f"not {args.what}")
    if args.what != "scaleout" and (args.method is not None or args.processes is not None
                                    or args.eval_models is not None):
        raise ConfigError(f"speed --method, --processes and --eval-models apply to --what scaleout, not {args.what}")
    markdown = _report_path(args)
    if args.what == "scaleout":
        row = scaleout_speed(args.dataset, method=args.method or "dm", ipc=args.ipc, iterations=args.iterations,
                             processes=args.processes or 2, eval_models=args.eval_models or 2, epochs=args.epochs,
                             data_dir=args.data_dir, results_dir=Path(args.results), quiet=args.quiet,
                             rounds=args.rounds)
    elif args.what == "dm":
        row = dm_speed(args.dataset, ipc=args.ipc, data_dir=args.data_dir, results_dir=Path(args.results),
                       quiet=args.quiet, straightforward_iterations=args.iterations, rounds=args.rounds)
    elif args.what == "teacher":
        row = teacher_speed(args.dataset, steps=args.iterations, data_dir=args.data_dir,
                            results_dir=Path(args.results), quiet=args.quiet, rounds=args.rounds)
    elif args.what in ("dc", "dsa"):
        schedule: dict[str, int] = {}
        for kv in args.set:
            key, _, value = kv.partition("=")
            if key not in ("pool_size", "refresh_every", "iterations") or not value.isdigit():
                raise ConfigError(f"speed --set takes pool_size=N, refresh_every=N, iterations=N; got {kv!r}")
            schedule[key] = int(value)
        widths = args.widths.split(",") if args.widths else []
        if not all(w.isdigit() for w in widths):
            raise ConfigError(f"speed --widths takes comma-separated widths such as 64 or 32,64; got {args.widths!r}")
        row = dc_speed(args.dataset, ipc=args.ipc, method=args.what, data_dir=args.data_dir, schedule=schedule,
                       results_dir=Path(args.results), quiet=args.quiet, outer_steps=args.iterations,
                       rounds=args.rounds, widths=tuple(int(w) for w in widths))
    else:
        row = evaluation_speed(args.dataset, ipc=args.ipc, epochs=args.epochs, data_dir=args.data_dir,
                               results_dir=Path(args.results), quiet=args.quiet,
                               paths=tuple(args.paths.split(",")) if args.paths else DEFAULT_EVAL_PATHS,
                               model=args.model, batch_size=args.batch_size, rounds=args.rounds,
                               optimizer=args.optimizer)
    print(", ".join(f"{k}: {v}" for k, v in row["figures"].items()))
    write_benchmarks_md(Path(args.results), markdown)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(Path(args.out), data_dir=args.data_dir, force=args.force, quiet=args.quiet)
    print(report.read_text())
    print(f"run directory: {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="datadistill", description="Dataset distillation and its fair evaluation.")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--verbose", "-v", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("distill", help="distil a dataset into a run directory")
    d.add_argument("--dataset", required=True, help="a registered dataset (`datadistill list datasets`)")
    d.add_argument("--method", required=True, help="a registered method (`datadistill list methods`)")
    d.add_argument("--ipc", type=int, required=True, help="images per class")
    d.add_argument("--out", required=True, help="run directory (must not exist, or be empty, unless --force)")
    d.add_argument("--config", help="YAML file of method config overrides")
    d.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config field")
    d.add_argument("--seed", type=int, default=0, help="seeds every random draw of the run (default 0)")
    d.add_argument("--force", action="store_true", help="replace files in an existing run directory")
    d.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from the checkpoint in --out (same method, ipc, seed, config)")
    d.add_argument("--evaluate", action="store_true", help="evaluate the result with --protocol afterwards")
    d.add_argument("--device", default="cpu",
                   help="where the method computes: cpu (default) or cuda[:N] (methods that support it: dm, "
                        "dm-multilayer); the data is moved there, the set is saved from the CPU; --evaluate "
                        "trains its models there too")
    _add_teacher_args(d)
    _add_data_args(d)
    _add_protocol_args(d)
    d.set_defaults(func=cmd_distill)

    e = sub.add_parser("evaluate", help="train fresh models on a distilled set and test them")
    e.add_argument("dir", help="a run directory (synthetic.safetensors + manifest.json)")
    e.add_argument("--models", help="comma-separated architectures (cross-architecture evaluation)")
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="val: accuracy on the validation split, to choose between configs (kept apart from "
                        "the test results)")
    e.add_argument("--device", default="cpu",
                   help="where the models train and test: cpu (default) or cuda[:N]; the result records it")
    e.add_argument("--per-class", action="store_true",
                   help="also print each class's accuracy (mean over the models), weakest first")
    _add_teacher_args(e)
    _add_data_args(e)
    _add_protocol_args(e)
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("show", help="draw a PNG grid of a distilled set")
    s.add_argument("dir", help="a run directory")
    s.add_argument("--out", help="PNG path (default: grid.png in the run directory; the loss curve goes beside it "
                                 "as <name>-loss.png); an existing file is kept unless --force")
    s.add_argument("--force", action="store_true", help="replace an existing --out")
    s.add_argument("--per-class", type=int, default=10, help="images drawn per class, at most (default 10)")
    s.add_argument("--scale", type=int, default=2, help="pixels per image pixel (default 2)")
    s.set_defaults(func=cmd_show)

    x = sub.add_parser("export", help="export a distilled set as an image folder or .npz")
    x.add_argument("dir", help="a run directory")
    x.add_argument("--to", choices=("folder", "npz"), required=True,
                   help="folder: one PNG per image, a sub-folder per class (soft labels in labels.json); "
                        "npz: one NumPy archive")
    x.add_argument("--out", help="where to write (default: images/ or synthetic.npz in the run directory)")
    x.add_argument("--force", action="store_true", help="replace an existing --out")
    x.set_defaults(func=cmd_export)

    ls = sub.add_parser("list", help="list registered names")
    ls.add_argument("what", choices=("methods", "datasets", "models", "protocols"), help="which registry to list")
    ls.add_argument("--long", "-l", action="store_true",
                    help="one line about each: what it is (methods: with their tags; protocols: their settings)")
    ls.set_defaults(func=cmd_list)

    b = sub.add_parser("bench", help="run a resumable benchmark grid and regenerate BENCHMARKS.md")
    b.add_argument("--dataset", default="fashion-mnist", help="a registered dataset (default fashion-mnist)")
    b.add_argument("--methods", default="random", help="comma-separated methods (default random)")
    b.add_argument("--ipc", default="1,10,50", help="comma-separated images per class (default 1,10,50)")
    b.add_argument("--seeds", default="0", help="comma-separated distillation seeds, one cell each (default 0)")
    b.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="method config override for the grid, e.g. best-of-random.candidates=5")
    b.add_argument("--full-data", action="store_true", help="also run the (cached) full-data reference")
    b.add_argument("--device", default="cpu",
                   help="evaluate on this device (cpu or cuda[:N]), and distil there with the methods that run "
                        "there (dm, dm-multilayer; the others distil on the CPU); each result row records where its "
                        "set was distilled and evaluated")
    b.add_argument("--results", default="benchmarks/results",
                   help="the folder of result cells, one JSON file each (default benchmarks/results)")
    b.add_argument("--markdown", default=None, help=MARKDOWN_HELP)
    b.add_argument("--report-only", action="store_true", help="only regenerate the markdown")
    b.add_argument("--max-cells", type=int, help="stop after this many new cells")
    b.add_argument("--sets", default=None,
                   help="keep each distilled set (and its checkpoints) here and reuse it across protocols and "
                        "architectures; '' to keep none (default: 'sets' beside --results)")
    b.add_argument("--allow-other-set", action="store_true",
                   help="evaluate a set although the set's cells under other protocols or architectures evaluated "
                        "another one (made again on another CPU type, say); without it such a cell stops with an error")
    _add_teacher_args(b, default_help="'teachers' beside --results")
    _add_data_args(b)
    _add_protocol_args(b, default="dc")
    b.set_defaults(func=cmd_bench)

    sp = sub.add_parser("speed", help="speed side by side: evaluation (eager fp32 against the fast path), a DM "
                                      "iteration or a DC / DSA outer step (the straightforward per-class loop "
                                      "against ours), a teacher training step, or one process against several under "
                                      "torchrun (scaleout)")
    sp.add_argument("--what", choices=("evaluation", "dm", "dc", "dsa", "teacher", "scaleout"), default="evaluation",
                    help="what to time (default: evaluation); teacher: the teacher recipe's batch norm as modules "
                         "against its statistics from the patches; scaleout: distill and evaluate in one process "
                         "against several under torchrun")
    sp.add_argument("--method", default=None, help="scaleout: the matching method distilled (default dm)")
    sp.add_argument("--processes", type=int, default=None, help="scaleout: processes under torchrun (default 2)")
    sp.add_argument("--eval-models", type=int, default=None,
                    help="scaleout: models the evaluation trains (default 2; --epochs epochs each)")
    sp.add_argument("--iterations", type=int, default=5,
                    help="timed iterations (DM) or outer steps (DC / DSA) of the straightforward loop; teacher: "
                         "training steps per epoch (2 timed epochs per path); scaleout: the method's iterations")
    sp.add_argument("--dataset", default="fashion-mnist", help="a registered dataset (default fashion-mnist)")
    sp.add_argument("--ipc", type=int, default=10, help="images per class of the set timed (default 10)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="dc/dsa: also time the view-pool schedule pool_size=P, refresh_every=R, iterations=I")
    sp.add_argument("--widths", default=None, metavar="W[,W...]",
                    help="dc/dsa: also time ours with the network at these widths during distillation (the width "
                         "budget knob), against ours at the reference width 128")
    sp.add_argument("--epochs", type=int, default=1000, help="evaluation: training epochs timed (default 1000)")
    sp.add_argument("--paths", default=None,
                    help="evaluation, comma-separated: eager-fp32-plain, eager-fp32, eager-bf16, fast (compiled bf16, "
                         "as evaluation runs), fast-fp32 (compiled fp32), fast-channels-last, fast-loop-optimizer "
                         "(default: eager-fp32-plain,eager-fp32,fast)")
    sp.add_argument("--rounds", type=int, default=1,
                    help="time every path (or, for dm / dc / dsa, the straightforward loop and ours) this many "
                         "times, the order alternating, and report means")
    sp.add_argument("--model", default="convnet", help="evaluation: the architecture trained")
    sp.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd",
                    help="evaluation: the dsa protocol's SGD, or the soft protocol's AdamW (lr, weight decay, "
                         "cosine schedule) on hard labels")
    sp.add_argument("--batch-size", type=int, default=None,
                    help="evaluation: training batch (default: the dsa protocol's 256, capped by the set's size)")
    sp.add_argument("--results", default="benchmarks/results",
                    help="where the speed row is written (default benchmarks/results)")
    sp.add_argument("--markdown", default=None, help=MARKDOWN_HELP)
    _add_data_args(sp)
    sp.set_defaults(func=cmd_speed)

    r = sub.add_parser("relabel", help="soft-label a stored set with the dataset's teacher (the decoupled methods' "
                                       "relabel step) into a new run directory")
    r.add_argument("dir", help="the run directory of the set to relabel (left as it is)")
    r.add_argument("--out", required=True, help="new run directory (must not exist, or be empty, unless --force)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="relabel recipe field: soft_labels, view_epochs, view_scale_min, cutmix, top_k, label_epochs")
    r.add_argument("--seed", type=int, default=0, help="seeds the augmented views")
    r.add_argument("--force", action="store_true", help="replace files in an existing --out")
    _add_teacher_args(r)
    _add_data_args(r)
    r.set_defaults(func=cmd_relabel)

    t = sub.add_parser("teacher", help="train (or load from the cache) the teacher of a dataset and report it")
    t.add_argument("--dataset", required=True, help="a registered dataset (`datadistill list datasets`)")
    _add_teacher_args(t)
    _add_data_args(t)
    t.set_defaults(func=cmd_teacher)

    m = sub.add_parser("demo", help="distil Fashion-MNIST to 10 images/class, evaluate against random, report")
    m.add_argument("--out", default="runs/demo",
                   help="run directory (default runs/demo; must not exist, or be empty, unless --force)")
    m.add_argument("--force", action="store_true", help="replace files in an existing --out")
    _add_data_args(m)
    m.set_defaults(func=cmd_demo)
    return p


def _one_line_warnings(show):
    """A `warnings.showwarning` that prints the library's own warnings as one line on stderr and
    hands anything else to `show`."""
    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SlowPathWarning):
            print(f"datadistill: warning: {message}", file=file or sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)
    return show_warning


_SPLIT_COMMANDS = ("distill", "evaluate")  # the commands that split their work across torchrun's processes


def _group(args: argparse.Namespace):
    """The torchrun process group `main` put in `args` (one process when none)."""
    from .distributed import SINGLE

    return getattr(args, "group", None) or SINGLE


def main(argv: Sequence[str] | None = None) -> int:
    from ._runtime import tune_allocator
    from .distributed import from_env

    parser = build_parser()
    args = parser.parse_args(argv)
    tune_allocator()  # no mmap per large tensor: about 1.8x faster training (see _runtime.py)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    where = ""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and args.command not in _SPLIT_COMMANDS:
                raise ConfigError(f"{args.command} does not split across processes; run it without torchrun "
                                  f"(commands that do: {', '.join(_SPLIT_COMMANDS)})")
            group = from_env()
            if group.distributed:
                where = f" (process {group.rank} of {group.world})"
            args.group = group
            code = args.func(args)
            group.close()  # after an error torchrun stops the other processes instead
            return code
    except DatadistillError as e:
        print(f"datadistill: error{where}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("datadistill: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
