"""Resumable benchmark grid: dataset x method x ipc x seed. Each finished cell is one JSON file
written atomically; a cell whose file exists is skipped, so a killed run resumes where it stopped."""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write_json, tensor_digest as digest
from .._runtime import machine
from ..methods._matching import CHECKPOINT_FILE, INIT_DIR, is_stage_of
from ..synthetic import TENSORS_FILE, SyntheticSet
from .softtrack import cached_evaluation
from ..config import before_fields, check_ipc, check_seed, config_dict, differs, parse_set_options
from ..errors import ConfigError
from ..progress import ProgressBar


ARCHITECTURE_KEYS = ("model", "model_kwargs")


def protocol_tag(preset: str, overrides: tuple[str, ...] | list[str]) -> str:
    """A cell's protocol name: the preset, with a hash of its `--eval-set` items when there are any."""
    if not overrides:
        return preset
    h = hashlib.sha256("|".join(sorted(overrides)).encode()).hexdigest()[:8]
    return f"{preset}-{h}"


@dataclass(frozen=True)
class BenchGrid:
    dataset: str
    methods: tuple[str, ...]
    ipcs: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    protocol: str = "dc"
    protocol_overrides: tuple[str, ...] = ()  # "key=value"
    method_overrides: tuple[str, ...] = ()  # "method.key=value"
    data_dir: str | None = None
    full_data: bool = False
    data_options: tuple[tuple[str, Any], ...] = ()
    val_fraction: float = 0.1
    teacher_cache: str | None = None  # where teachers are cached (methods tagged needs_teacher)
    teacher_overrides: tuple[str, ...] = ()  # "key=value" for the TeacherRecipe
    device: str = "cpu"  # where evaluation runs, and the methods that can (`Method.devices`) distil
    allow_other_set: bool = False  # evaluate a set other than the one its other cells evaluated (see other_sets)

    def __post_init__(self) -> None:
        for ipc in self.ipcs:
            check_ipc(ipc)
        for seed in self.seeds:
            check_seed(seed)

    def load_real(self):
        from .. import load_dataset

        return load_dataset(self.dataset, data_dir=self.data_dir, val_fraction=self.val_fraction,
                            **dict(self.data_options))

    def protocol_tag(self) -> str:
        return protocol_tag(self.protocol, self.protocol_overrides)

    def architecture_overrides(self) -> tuple[str, ...]:
        """The `--eval-set` items that pick the evaluated architecture (model, model_kwargs)."""
        return tuple(o for o in self.protocol_overrides if o.partition("=")[0].split(".")[0] in ARCHITECTURE_KEYS)

    def overrides_for(self, method: str) -> dict[str, str]:
        out = {}
        for item in self.method_overrides:
            key, _, value = item.partition("=")
            m, dot, field = key.partition(".")
            if not dot or not _:
                raise ConfigError(f"--set in bench expects METHOD.KEY=VALUE, got {item!r}")
            if m == method:
                out[field] = value
        return out


def cell_name(dataset: str, method: str, ipc: int, seed: int, tag: str, overrides: dict[str, str]) -> str:
    name = f"{dataset}__{method}__ipc{ipc}__seed{seed}__{tag}"
    if overrides:
        name += "__" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return name + ".json"


def set_dir_name(dataset: str, method: str, ipc: int, seed: int, overrides: dict[str, str]) -> str:
    """The directory of a cell's distilled set: shared by every protocol and architecture."""
    name = f"{dataset}__{method}__ipc{ipc}__seed{seed}"
    if overrides:
        name += "__" + hashlib.sha256(json.dumps(overrides, sort_keys=True).encode()).hexdigest()[:8]
    return name


def run_grid(grid: BenchGrid, results_dir: Path, *, quiet: bool = False, max_cells: int | None = None,
             sets_dir: Path | None = None) -> list[Path]:
    """Run every missing cell of `grid`; return the paths written now.

    With `sets_dir`, each distilled set is kept in `sets_dir/<dataset>__<method>__ipc<K>__seed<S>`
    and reused by later cells (other protocols, other architectures), and an iterative method
    checkpoints there, so a distillation killed midway resumes from its last checkpoint."""
    from .. import __version__
    from ..evaluation import EvalResult, evaluate, full_data_reference, get_protocol
    from ..methods import METHODS
    from ..synthetic import _git_revision

    if max_cells is not None and max_cells < 0:
        raise ConfigError(f"max_cells must be 0 or more, got {max_cells}")
    results_dir.mkdir(parents=True, exist_ok=True)
    protocol = get_protocol(grid.protocol, **parse_set_options(list(grid.protocol_overrides)))
    for m in grid.methods:
        METHODS.get(m)  # fail early on unknown names
    real = None
    teacher = None
    written: list[Path] = []
    cells = [(m, k, s) for m in grid.methods for k in grid.ipcs for s in grid.seeds]
    todo = []
    stale_paths: set[Path] = set()
    for method, ipc, seed in cells:
        overrides = grid.overrides_for(method)
        path = results_dir / cell_name(grid.dataset, method, ipc, seed, grid.protocol_tag(), overrides)
        if path.exists():
            m = METHODS.get(method).with_overrides(overrides).for_ipc(ipc)
            why = "another method config or protocol"
            stale = stale_cell(path, config_dict(m.config), protocol.as_dict(), config_before_fields(method, ipc),
                               type(protocol)().as_dict())
            if not stale and "needs_teacher" in m.tags:
                real = real if real is not None else grid.load_real()
                stale = stale_teacher(path, _teacher_key(grid, real))
                why = "another teacher (its recipe or the default recipe changed)"
            if not stale:
                continue
            # it stays where it is (and in the report) until its new cell is written: a grid stopped
            # before it gets there leaves it in place
            stale_paths.add(path)
            print(f"{path.name}: made with {why}; running it again (it moves to superseded/ when the new cell "
                  f"is written)", file=sys.stderr, flush=True)  # even with --quiet: a file on disk will move
        todo.append((method, ipc, seed))
    if grid.full_data:
        real = grid.load_real()
        bar = _bar(quiet, "full-data reference")
        ref = full_data_reference(real, cache_dir=results_dir, progress=bar)
        bar.close()
        if not quiet:
            print(f"full data: {ref['mean']:.2f}%")
    for i, (method, ipc, seed) in enumerate(todo):
        if max_cells is not None and i >= max_cells:
            break
        overrides = grid.overrides_for(method)
        path = results_dir / cell_name(grid.dataset, method, ipc, seed, grid.protocol_tag(), overrides)
        if real is None:
            real = grid.load_real()
        m = METHODS.get(method).with_overrides(overrides).for_ipc(ipc)  # the config the run records
        method_config = config_dict(m.config)
        syn = None
        set_dir = sets_dir / set_dir_name(grid.dataset, method, ipc, seed, overrides) if sets_dir else None
        if set_dir is not None and (set_dir / TENSORS_FILE).exists():
            syn = SyntheticSet.load(set_dir)
            if differs(syn.config, method_config, config_before_fields(method, ipc)):
                syn = None  # made with another config (a field added since counts at its old value): distil again
            elif "needs_teacher" in m.tags and syn.meta.get("teacher", {}).get("key") != _teacher_key(grid, real):
                syn = None  # relabelled by another teacher (e.g. the default recipe changed): distil again
            elif "needs_teacher" in m.tags and "weights_digest" in syn.meta.get("teacher", {}):
                # the same recipe trained again gives other weights: a set records which ones labelled it
                teacher = teacher or _teacher(grid, real, quiet)
                if syn.meta["teacher"]["weights_digest"] != teacher.info["weights_digest"]:
                    syn = None
        distilled_now = syn is None
        if syn is None:
            resume = set_dir is not None and "iterative" in m.tags and (set_dir / CHECKPOINT_FILE).exists()
            if resume and m._checkpoint_identity(real, ipc, seed) != m._read_checkpoint(set_dir / CHECKPOINT_FILE)[1]["identity"]:
                resume = False
            if "needs_teacher" in m.tags and teacher is None:
                teacher = _teacher(grid, real, quiet)
            if set_dir is not None and sets_dir is not None and not resume:
                shared = share_init_stage(sets_dir, set_dir, m, real, grid.dataset, ipc, seed)
                if shared is not None and not quiet:
                    print(f"{method} ipc={ipc}: init stage taken from {shared}", flush=True)
            bar = _bar(quiet, f"[{i + 1}/{len(todo)}] {method} ipc={ipc} seed={seed}" + (" (resumed)" if resume else ""))
            syn = m.distill(m.place(real, grid.device), ipc, seed=seed, run_dir=set_dir, resume=resume,
                            callbacks=[bar], teacher=teacher)
            bar.close()
        set_digest = digest(syn.tensors())
        if not grid.allow_other_set:  # before a set made now replaces the stored one, which stays if this fails
            check_same_set(results_dir, grid.dataset, method, ipc, seed, overrides, method_config, set_digest,
                           distilled_now=distilled_now, put_back=str(set_dir or "a --sets directory"),
                           teacher_key=_teacher_key(grid, real) if "needs_teacher" in m.tags else None,
                           ignore=stale_paths)
        if distilled_now and set_dir is not None:
            syn.save(set_dir)
        distill_s = float(syn.meta.get("wall_time_s", float("nan")))
        # cached beside the set, keyed by the protocol's content and the set's tensors: a cell killed
        # during its soft-label track (three more evaluations) resumes without evaluating again
        eval_cache = (set_dir / f"eval-{grid.protocol_tag()}-{_evaluation_key(protocol, syn)}.json"
                      if set_dir is not None else None)

        def evaluate_cell(**resume: Any) -> EvalResult:
            bar = _bar(quiet, f"[{i + 1}/{len(todo)}] evaluate {method} ipc={ipc}")
            try:
                return evaluate(syn, real, protocol, progress=bar, device=grid.device, **resume)
            finally:
                bar.close()

        # resumes model by model: a cell killed during a long evaluation keeps its finished models
        res = EvalResult(**cached_evaluation(eval_cache, evaluate_cell))
        track = None
        if protocol.label_mode == "soft" and "soft_labels" in m.tags:
            from .softtrack import soft_track

            if teacher is None:
                teacher = _teacher(grid, real, quiet)
            track = soft_track(real=real, syn=syn, method=m, ipc=ipc, seed=seed, protocol=protocol,
                               protocol_tag=grid.protocol_tag(), architecture=grid.architecture_overrides(),
                               teacher=teacher, soft_result=res.as_dict(), device=grid.device,
                               set_dir=set_dir, results_dir=results_dir, bar=lambda d: _bar(quiet, d))
        row = {
            "dataset": grid.dataset, "method": method, "ipc": ipc, "seed": seed, "protocol_tag": grid.protocol_tag(),
            "protocol_overrides": list(grid.protocol_overrides),
            "method_config": method_config, "method_overrides": overrides,
            "distill_wall_time_s": round(distill_s, 2), "distill_device": syn.meta.get("device", "cpu"),
            # where the distill time was measured: a kept set made by older code did not record it
            "distill_machine": syn.meta.get("machine"),
            "storage_bytes": syn.storage_bytes["total"],
            "set_digest": set_digest,  # which set: cells of one set on other architectures agree
            "labels": res.labels, "evaluation": res.as_dict(),
            "distill_iterations": syn.meta.get("iterations"),
            "library_version": __version__, "git_revision": _git_revision(), "machine": machine(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for who in ("teacher", "labeler"):
            if who in syn.meta:
                row[who] = syn.meta[who]
        if track is not None:
            row["soft_track"] = track
        if path in stale_paths and path.exists():
            moved = supersede(path)
            print(f"{path.name}: the stale cell moved to {moved}", file=sys.stderr, flush=True)
        atomic_write_json(path, row)
        written.append(path)
        if not quiet:
            print(f"{method} ipc={ipc} seed={seed}: {res.mean:.2f} ± {res.std:.2f} "
                  f"(distill {distill_s:.0f} s, eval {res.train_time_s:.0f} s)", flush=True)
    return written


UNRECORDED = "unrecorded"  # other_sets' key for cells that recorded no set digest


def check_same_set(results_dir: Path, dataset: str, method: str, ipc: int, seed: int, overrides: dict[str, Any],
                   method_config: dict[str, Any], set_digest: str, *, distilled_now: bool, put_back: str,
                   teacher_key: str | None = None, ignore: AbstractSet[Path] = frozenset()) -> None:
    """Raise ConfigError when the set about to be evaluated (`set_digest`, made with `method_config`,
    the concrete method's config as `config_dict` gives it, and the teacher of `teacher_key` when it
    needs one) may not be the one the set's other cells evaluated (`other_sets`), so their row would
    mix two sets: another digest, or a set distilled again while some cells recorded none. Cells in
    `ignore` (stale ones about to be replaced) do not count."""
    others = other_sets(results_dir, dataset, method, ipc, seed, overrides, method_config,
                        config_before_fields(method, ipc), teacher_key=teacher_key, ignore=ignore)
    unknown = others.pop(UNRECORDED, [])
    cell = f"{method} ipc={ipc} seed={seed}"
    if unknown and distilled_now:
        raise ConfigError(
            f"{cell}: this set was distilled again ({set_digest}), and the set's cells {', '.join(unknown)} "
            f"recorded no set digest (written before cells recorded one), so nothing shows that their row would "
            f"not mix two sets: put their set back in {put_back}, move those cells away to evaluate them again "
            f"with this set, or pass --allow-other-set")
    if others and set_digest not in others:
        seen = "; ".join(f"{d}: {', '.join(tags)}" for d, tags in sorted(others.items()))
        raise ConfigError(
            f"{cell}: this set ({set_digest}{', distilled now and not saved' if distilled_now else ''}) is not the "
            f"one its other cells evaluated ({seen}), so their row "
            f"would mix two sets; a set made with a teacher or by optimisation differs in rounding on another CPU "
            f"type: put that set back in {put_back} (commit the sets of a cross-architecture row), or pass "
            f"--allow-other-set")


def other_sets(results_dir: Path, dataset: str, method: str, ipc: int, seed: int, overrides: dict[str, Any],
               method_config: dict[str, Any], method_defaults: dict[str, Any] | None = None, *,
               teacher_key: str | None = None, ignore: AbstractSet[Path] = frozenset()) -> dict[str, list[str]]:
    """The sets that the stored cells of one set (dataset, method, IPC, seed, method overrides, under
    any protocol or architecture) evaluated: {set digest: the cells' protocol tags}; cells written
    before cells recorded a digest come under `UNRECORDED`. Cells made with another method config
    (as `stale_cell` judges it) are left out: their set is distilled again; so are, with a
    `teacher_key`, cells made with another teacher (`stale_teacher`: they are made again too)."""
    out: dict[str, list[str]] = {}
    for path in sorted(results_dir.glob(f"{dataset}__{method}__ipc{ipc}__seed{seed}__*.json")):
        if path in ignore:
            continue
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (row.get("dataset"), row.get("method"), row.get("ipc"), row.get("seed")) != (dataset, method, ipc, seed) \
                or row.get("method_overrides", {}) != overrides:
            continue
        if differs(row.get("method_config", {}), method_config, method_defaults):
            continue
        if teacher_key is not None and row.get("teacher", {}).get("key") not in (None, teacher_key):
            continue
        out.setdefault(row.get("set_digest", UNRECORDED), []).append(row.get("protocol_tag", "?"))
    return out


def share_init_stage(sets_dir: Path, set_dir: Path, method, real, dataset: str, ipc: int, seed: int) -> Path | None:
    """Give a cell whose method starts from another method's set (`init=dm`) that set, when the
    grid already holds it, instead of distilling it again: the init method's own cell
    (`sets_dir/<dataset>__<init>__ipc<K>__seed<S>`) or another cell's init stage (`*/init`). Only
    a finished set made with what the stage would run (method, dataset, IPC, seed, the init
    method's default config at that IPC) is taken; it is copied to `set_dir/init`, where the
    method's init stage loads it and counts its recorded wall time in the cell's distill time.
    Returns where it came from, or None (nothing taken: the stage runs as usual)."""
    from ..methods import METHODS
    from ..synthetic import MANIFEST_FILE

    init = getattr(method.config, "init", None)
    if init in (None, "real", "noise") or init not in METHODS:
        return None
    stage = set_dir / INIT_DIR
    if (stage / MANIFEST_FILE).exists():
        return None  # the method's own stage decides (it redoes a stale one)
    init_method = method.init_method(ipc)
    candidates = [sets_dir / set_dir_name(dataset, init, ipc, seed, {})]
    candidates += sorted(p for p in sets_dir.glob(f"*/{INIT_DIR}") if p != stage)
    for source in candidates:
        if not ((source / TENSORS_FILE).exists() and (source / MANIFEST_FILE).exists()):
            continue
        got = SyntheticSet.load(source)
        if is_stage_of(got, init_method, real, ipc, seed):
            got.save(stage)
            return source
    return None


def config_before_fields(method: str, ipc: int) -> dict[str, Any]:
    """What a cell stored before a config field existed ran with, field by field: the method's
    default config at `ipc`, except the fields its config's BEFORE_FIELD names."""
    from ..methods import METHODS

    return before_fields(METHODS.get(method).with_overrides({}).for_ipc(ipc).config)


def stale_cell(path: Path, method_config: dict[str, Any], protocol: dict[str, Any],
               method_defaults: dict[str, Any] | None = None, protocol_defaults: dict[str, Any] | None = None) -> bool:
    """Whether a stored cell was made with a method config or protocol other than today's.

    A field the stored cell lacks was added later, with a default that keeps the old behaviour (as
    every new field here is): the cell ran as if with that default (`*_defaults`: the method's
    default config at the cell's IPC, the protocol's field defaults), so it is stale only when
    today's value differs from it; without defaults such a field is not compared. A field the cell
    has and today's config lacks is ignored. The protocols' batch fields are compared by the batch
    they give the cell's set (`for_set_size`), so a rule that changes only small sets leaves the
    other cells standing."""
    from ..evaluation.protocol import for_set_size

    row = json.loads(path.read_text())
    stored = row.get("evaluation", {}).get("protocol", {})
    n = row.get("evaluation", {}).get("num_images")
    if n is not None:
        stored, protocol = for_set_size(stored, n), for_set_size(protocol, n)  # both without min_batches

    return differs(row.get("method_config", {}), method_config, method_defaults) or \
        differs(stored, protocol, protocol_defaults)


def stale_teacher(path: Path, key: str) -> bool:
    """Whether a stored cell of a method that needs a teacher was made with a teacher other than the
    one of key `key` (the grid's recipe): its set, soft labels and random-subset comparison all came
    from that teacher. A cell that recorded no teacher is not judged."""
    recorded = json.loads(path.read_text()).get("teacher", {}).get("key")
    return recorded is not None and recorded != key


def supersede(path: Path) -> Path:
    """Move a stale cell file into `superseded/` beside it (never overwriting an earlier one)."""
    dest_dir = path.parent / "superseded"
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / path.name
    n = 1
    while dest.exists():
        dest = dest_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, dest)
    return dest


def _evaluation_key(protocol, syn: SyntheticSet) -> str:
    """A hash of what an evaluation's result depends on: the protocol's values and the set's tensors."""
    values = json.dumps(protocol.as_dict(len(syn.images)), sort_keys=True, default=str).encode()
    return hashlib.sha256(values + digest(syn.tensors()).encode()).hexdigest()[:12]


def _teacher_recipe(grid: BenchGrid):
    from ..teachers import TeacherRecipe

    return TeacherRecipe().replace(**parse_set_options(list(grid.teacher_overrides)))


def _teacher_key(grid: BenchGrid, real) -> str:
    from ..teachers import teacher_key

    return teacher_key(real, _teacher_recipe(grid))


def _teacher(grid: BenchGrid, real, quiet: bool):
    from ..teachers import get_teacher

    recipe = _teacher_recipe(grid)
    bar = _bar(quiet, "teacher (trained once, then cached)")
    try:
        return get_teacher(real, recipe, cache_dir=grid.teacher_cache, progress=bar)
    finally:
        bar.close()


def _bar(quiet: bool, desc: str) -> ProgressBar:
    return ProgressBar(desc, quiet)
