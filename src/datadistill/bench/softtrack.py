"""The fair soft-label track: every soft-label result beside what it must be compared with.

For a soft-labelled set evaluated with soft labels, the track adds
(a) the same soft-label evaluation of a random real subset of the same size (the `random` method's
    set at the same IPC and seed), relabelled by the same teacher with the same relabel recipe;
(b) the hard-label evaluation of the same images (the standard `dsa` protocol, each image's class, on
    the architecture the cell is evaluated on: a cross-architecture cell's hard-label numbers are
    that architecture's, and its HLR is left out, the full-data reference being ConvNet-3's);
(c) the storage bytes of everything evaluation needs (images, soft labels, views);
and label-robust scores in the spirit of DD-Ranking (Li et al., 2025), accuracies as fractions:
- IOR, improvement over random = soft(set) - soft(random subset);
- HLR, hard-label recovery = hard(full data) - hard(set);
- DDRS = (exp(w IOR - (1 - w) HLR) - exp(-1)) / (e - exp(-1)), w = 0.5;
- gain survival = (hard(set) - hard(random)) / (soft(set) - soft(random)): the share of the gain over
  random that is left when the soft labels are taken away (1: all of it; 0 or below: none).
Each evaluation is cached as JSON in the set's directory, so a killed cell resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

from .._io import atomic_write_json, tensor_digest as digest

DDRS_WEIGHT = 0.5


def ddrs(ior: float, hlr: float, w: float = DDRS_WEIGHT) -> float:
    """DD-Ranking score from IOR and HLR given as fractions (not percent)."""
    a = w * ior - (1 - w) * hlr
    return (math.exp(a) - math.exp(-1)) / (math.e - math.exp(-1))


def label_robust_scores(soft_set: float, soft_random: float, hard_set: float, hard_random: float | None,
                        hard_full: float | None) -> dict[str, float | None]:
    """The track's scores from accuracies in percent."""
    ior = (soft_set - soft_random) / 100
    hlr = (hard_full - hard_set) / 100 if hard_full is not None else None
    gain = soft_set - soft_random
    survival = ((hard_set - hard_random) / gain) if hard_random is not None and gain > 0 else None
    return {"ior": round(ior, 5), "hlr": round(hlr, 5) if hlr is not None else None,
            "ddrs": round(ddrs(ior, hlr), 5) if hlr is not None else None,
            "gain_survival": round(survival, 4) if survival is not None else None}


def cached_evaluation(path: Path | None, evaluate: Callable[..., Any]) -> dict[str, Any]:
    """`cached_json` for an evaluation (`evaluate(finished=..., on_model=...)` returning an
    EvalResult) that also resumes model by model: each model's record is kept, atomically, in
    `<path stem>.partial.json` as it ends, so a run killed mid-evaluation trains only the models it
    had not finished (every model is seeded by its index: the result is the one an uninterrupted
    run gives), and inside a model from its checkpoint (`<path stem>.model<i>.ckpt`, written every
    few minutes; `train_eval_models`). The partial file goes once the whole result is written."""
    if path is None:
        return evaluate().as_dict()
    partial = path.with_name(path.stem + ".partial.json")

    def compute() -> dict[str, Any]:
        done = json.loads(partial.read_text()) if partial.is_file() else []

        def keep(record: dict[str, Any]) -> None:
            done.append(record)
            atomic_write_json(partial, done)

        return evaluate(finished=list(done), on_model=keep, checkpoints=path.with_name(path.stem)).as_dict()

    out = cached_json(path, compute)
    partial.unlink(missing_ok=True)
    return out


def cached_json(path: Path | None, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The JSON at `path` when it exists, else `compute()`, written there atomically (so a killed
    benchmark resumes from it); `path` None: just compute."""
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    out = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, out)
    return out


def random_soft_set(real, ipc: int, seed: int, teacher, recipe):
    """Comparison (a) of the track: the random real subset of `ipc` images per class (seed `seed`),
    relabelled by `teacher` with the relabel `recipe` the method used (flips only where the dataset
    allows them)."""
    from ..evaluation.evaluate import digits_like
    from ..methods import get_method
    from ..methods._decoupled import relabel_set

    rnd = get_method("random").distill(real, ipc, seed=seed)
    return relabel_set(rnd, teacher, recipe, seed=seed, flip=not digits_like(real), real=real)


def soft_track(*, real, syn, method, ipc: int, seed: int, protocol, protocol_tag: str, teacher,
               soft_result: dict[str, Any], set_dir: Path | None, results_dir: Path,
               bar: Callable[[str], Any], architecture: tuple[str, ...] = (),
               device: str = "cpu") -> dict[str, Any]:
    """The comparison row of a soft-label cell whose soft evaluation is `soft_result` (see the module
    docstring). `architecture`: the cell's `--eval-set` items that pick the model (none: the
    protocol's ConvNet-3); the hard-label evaluations use the same. `device`: where they train. The
    full-data accuracy is the default full-data reference's, when cached, and only for the default
    architecture."""
    from ..config import parse_set_options
    from ..evaluation import ReferenceRecipe, evaluate, get_protocol, reference_key
    from ..evaluation.protocol import for_set_size
    from ..methods import get_method
    from ..methods._decoupled import RelabelConfig
    from ..teachers import SAME_TEACHER, labeler
    from .runner import cell_name, protocol_tag as tag_of, set_dir_name

    cfg = method.config
    if not isinstance(cfg, RelabelConfig):
        raise TypeError(f"{method.name}: the soft-label track needs a method with a relabel step")

    def run(path: Path | None, what: str, make_set: Callable[[], Any], p) -> dict[str, Any]:
        """The evaluation of `make_set()` under `p`, cached at `path` (resuming model by model)."""
        def go(**resume: Any):
            b = bar(f"soft track: {what}")
            try:
                return evaluate(make_set(), real, p, progress=b, device=device, **resume)
            finally:
                b.close()

        return cached_evaluation(path, go)

    hard_protocol = get_protocol("dsa", **parse_set_options(list(architecture)))
    hard_tag = tag_of("dsa", architecture)  # the tag a hard-label bench run on that architecture gives
    # kept beside the random set, keyed by teacher (recipe and weights), relabel recipe and the
    # protocol's full content (a preset's values may change under the same name): every method
    # relabelling the same way shares it
    values = for_set_size(dataclasses.asdict(protocol), len(syn.images))  # see Protocol.as_dict
    recipe = dataclasses.asdict(cfg.relabel_recipe())
    if recipe["label_epochs"] == SAME_TEACHER:
        del recipe["label_epochs"]  # the key from before the field: caches made then stay valid
    else:  # a labeler trained again has other weights, as a teacher does
        recipe["labeler_weights"] = labeler(teacher, real, cfg.label_epochs).info.get("weights_digest")
    relabel = json.dumps({"teacher": teacher.info.get("key"), "weights": teacher.info.get("weights_digest"),
                          **recipe, "protocol": values}, sort_keys=True, default=str)
    tag = hashlib.sha256(relabel.encode()).hexdigest()[:8]
    random_dir = set_dir.parent / set_dir_name(real.name, "random", ipc, seed, {}) if set_dir else None
    rnd_soft = run(random_dir / f"track-{protocol_tag}-relabel-{tag}.json" if random_dir else None,
                   "random subset, same soft labels",
                   lambda: random_soft_set(real, ipc, seed, teacher, cfg.relabel_recipe()), protocol)
    # keyed by the images themselves: a set distilled again (another teacher, another config) in the
    # same directory does not reuse the old images' result
    images = digest({"images": syn.images})
    hard_same = run(set_dir / f"track-{hard_tag}-hard-{images}.json" if set_dir else None,
                    "same images, hard labels", lambda: syn, hard_protocol)
    random_cell = results_dir / cell_name(real.name, "random", ipc, seed, hard_tag, {})
    if random_cell.is_file():
        hard_random = json.loads(random_cell.read_text())["evaluation"]
    else:
        hard_random = run(set_dir / f"track-{hard_tag}-random-hard.json" if set_dir else None,
                          "random subset, hard labels", lambda: get_method("random").distill(real, ipc, seed=seed),
                          hard_protocol)
    ref = results_dir / f"reference-{real.name}-{reference_key(real, ReferenceRecipe())}.json"
    full = json.loads(ref.read_text())["mean"] if ref.is_file() and not architecture else None
    return {"random_soft": rnd_soft, "hard_same_images": hard_same, "hard_random": hard_random,
            "full_data_hard": full, "storage_bytes": syn.storage_bytes,
            **label_robust_scores(soft_result["mean"], rnd_soft["mean"], hard_same["mean"],
                                  hard_random["mean"] if hard_random else None, full)}
