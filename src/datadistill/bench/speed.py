"""Speed benchmarks measured side by side in one process: the straightforward eager fp32 path
against the library's fast path, same data, same seeds, with the accuracy each reaches."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from .._io import atomic_write_json
from .._runtime import machine
from ..errors import ConfigError

DEFAULT_EVAL_PATHS = ("eager-fp32-plain", "eager-fp32", "fast")
PATH_TEXT = {"eager-fp32-plain": "nn.Conv2d + GroupNorm in eager fp32", "eager-fp32": "our models in eager fp32",
             "eager-bf16": "our models in eager bf16 autocast", "fast": "bf16 autocast + torch.compile",
             "fast-fp32": "fast in fp32 (no autocast)", "fast-channels-last": "fast with channels_last weights",
             "fast-loop-optimizer": "fast with the optimiser's per-tensor loop (PyTorch's CPU default) for its fused kernel"}
OPTIMIZERS = ("sgd", "adamw")


def evaluation_speed(dataset: str = "fashion-mnist", *, ipc: int = 10, epochs: int = 1000, data_dir: str | None = None,
                     results_dir: Path | None = None, paths: tuple[str, ...] = DEFAULT_EVAL_PATHS,
                     quiet: bool = False, model: str = "convnet", batch_size: int | None = None,
                     rounds: int = 1, optimizer: str = "sgd") -> dict[str, Any]:
    """Train one `model` under the 'dsa' protocol (DSA, `epochs`, batch `batch_size`: default the
    protocol's) on a random real subset of `ipc` images per class, once per path; report seconds
    and test accuracy of each. Paths: 'eager-fp32-plain' (ConvNet only: plain nn.Conv2d + GroupNorm
    modules), 'eager-fp32', 'eager-bf16', 'fast' (compiled bf16, as evaluation runs), 'fast-fp32'
    (compiled, no autocast: what `precision=fp32` runs; bf16 gains nothing on a CPU without bf16
    kernels) and
    'fast-channels-last' ('fast' with channels_last weights) and 'fast-loop-optimizer' ('fast' with
    the optimiser's per-tensor loop instead of its fused kernel). `optimizer`: 'sgd' (the dsa
    protocol's) or 'adamw' (the soft protocol's AdamW, lr, weight decay and cosine schedule, here on
    hard labels). `rounds` > 1 times every path again,
    alternating the order (A B, B A, ...), and reports each path's mean: a path's time depends on
    when in the run it goes (on this machine one path's four rounds took 36.7, 29.9, 25.2 and
    26.3 s). The results file is named by dataset, IPC, epochs, and (when not the
    defaults) model, batch, paths and rounds, so one comparison never replaces another."""
    from .. import distill, load_dataset
    from ..evaluation import evaluate, get_protocol

    unknown = [p for p in paths if p not in PATH_TEXT]
    if unknown:
        raise ConfigError(f"unknown speed path(s) {', '.join(unknown)}; valid: {', '.join(PATH_TEXT)}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"speed optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    _check_rounds(rounds)  # before the data loads
    if "eager-fp32-plain" in paths and model != "convnet":
        raise ConfigError("speed path eager-fp32-plain is the plain ConvNet: use it with --model convnet")
    real = load_dataset(dataset, data_dir=data_dir)
    syn = distill(real, "random", ipc, seed=0)
    plain = {"model_kwargs": {"fast_first_block": False}}  # nn.Conv2d -> GroupNorm, as a user would write it
    fast = dict(precision="bf16", compile=True)
    settings = {"eager-fp32-plain": dict(precision="fp32", compile=False, **plain),
                "eager-fp32": dict(precision="fp32", compile=False), "eager-bf16": dict(precision="bf16", compile=False),
                "fast": fast, "fast-fp32": dict(precision="fp32", compile=True), "fast-channels-last": fast,
                "fast-loop-optimizer": fast}
    base = get_protocol("dsa", epochs=epochs, num_models=1, model=model)
    if optimizer == "adamw":
        soft = get_protocol("soft")
        base = base.replace(optimizer=soft.optimizer, lr=soft.lr, weight_decay=soft.weight_decay, schedule=soft.schedule)
    if batch_size is not None:
        base = base.replace(batch_size=batch_size)
    batch = base.batch_for(len(syn.images))
    accs: dict[str, float] = {}

    def measure(name: str) -> Callable[[], float]:
        protocol = base.replace(**settings[name])
        fmt = "channels_last" if name == "fast-channels-last" else "contiguous"
        fused = name != "fast-loop-optimizer"

        def run() -> float:
            if protocol.compile and name not in accs:  # compile outside the timed run, as a second model finds it
                evaluate(syn, real, protocol.replace(epochs=1), memory_format=fmt, fused_optimizer=fused)
            t0 = time.perf_counter()
            r = evaluate(syn, real, protocol, memory_format=fmt, fused_optimizer=fused)
            accs[name] = r.mean
            if not quiet:
                print(f"{name}: {r.train_time_s:.1f} s training, {r.mean:.2f}% test "
                      f"({time.perf_counter() - t0:.0f} s total)", flush=True)
            return r.train_time_s
        return run

    times = alternating({name: measure(name) for name in paths}, rounds)
    figures: dict[str, Any] = {}
    for name in paths:
        _put_times(figures, f"{name} train s", times[name], rounds)
        figures[f"{name} test acc %"] = round(accs[name], 2)
    for slow in ("eager-fp32-plain", "eager-fp32"):
        if slow in paths and "fast" in paths:
            figures[f"speed-up vs {slow}"] = round(figures[f"{slow} train s"] / figures["fast train s"], 2)
    if "fast" in paths and "fast-fp32" in paths:  # below 1 on a CPU without bf16 kernels (AVX2 only)
        figures["bf16 speed-up vs fp32"] = round(figures["fast-fp32 train s"] / figures["fast train s"], 2)
    if "fast" in paths and "fast-channels-last" in paths:
        figures["channels-last speed-up"] = round(figures["fast train s"] / figures["fast-channels-last train s"], 2)
    if "fast" in paths and "fast-loop-optimizer" in paths:
        figures["fused-optimizer speed-up"] = round(figures["fast-loop-optimizer train s"] / figures["fast train s"], 2)
    label = "ConvNet-3" if model == "convnet" else model
    what = (f"evaluation, one {label} model, IPC {ipc}, {epochs} epochs, DSA, batch {batch}"
            + (", AdamW (the soft protocol's optimiser)" if optimizer == "adamw" else ""))
    setting = (f"{dataset}, random real subset seed 0, {torch.get_num_threads()} threads; "
               + "; ".join(f"{name}: {PATH_TEXT[name]}" for name in paths))
    command = (f"datadistill speed --dataset {dataset} --ipc {ipc} --epochs {epochs} --paths {','.join(paths)}"
               + (f" --model {model}" if model != "convnet" else "")
               + (f" --batch-size {batch_size}" if batch_size is not None else "")
               + (f" --rounds {rounds}" if rounds > 1 else "")
               + (f" --optimizer {optimizer}" if optimizer != "sgd" else ""))
    name = f"speed-eval-{dataset}-ipc{ipc}-ep{epochs}"
    if model != "convnet" or batch_size is not None:
        name += f"-{model}-b{batch}"
    if tuple(paths) != DEFAULT_EVAL_PATHS:
        name += "-" + "+".join(paths)
    if optimizer != "sgd":
        name += f"-{optimizer}"
    return _speed_row(what, setting, figures, command, rounds, results_dir, name)


def alternating(measures: dict[str, Callable[[], float]], rounds: int,
                report: Callable[[str, float], None] | None = None) -> dict[str, list[float]]:
    """Run every measurement `rounds` times, the order alternating (A B C, C B A, ...), and return
    each one's results in round order; `report(name, value)` after each. A time depends on when in
    a run it is taken (the machine drifts), so a fixed order favours whichever measurement goes last."""
    _check_rounds(rounds)
    names = list(measures)
    out: dict[str, list[float]] = {name: [] for name in names}
    for k in range(rounds):
        for name in (names if k % 2 == 0 else names[::-1]):
            out[name].append(measures[name]())
            if report is not None:
                report(name, out[name][-1])
    return out


def _check_rounds(rounds: int) -> None:
    if rounds < 1:
        raise ConfigError(f"speed rounds must be positive, got {rounds}")


def _rounds_suffix(rounds: int) -> str:
    return f"-r{rounds}" if rounds > 1 else ""


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _put_times(figures: dict[str, Any], label: str, values: list[float], rounds: int, digits: int = 1) -> None:
    """figures[label]: the mean of one path's times; with several rounds, also each round's."""
    figures[label] = round(_mean(values), digits)
    _put_rounds(figures, label, values, rounds, digits)


def _put_rounds(figures: dict[str, Any], label: str, values: list[float], rounds: int, digits: int) -> None:
    """figures['<label> per round']: each round's time of one path, when there are several rounds."""
    if rounds > 1:
        figures[f"{label} per round"] = [round(t, digits) for t in values]


def _speed_row(what: str, setting: str, figures: dict[str, Any], command: str, rounds: int,
               results_dir: Path | None, name: str) -> dict[str, Any]:
    """A speed row (what, setting, figures, command, machine, finished), written atomically to
    `results_dir`/`name`[-rN].json when a directory is given."""
    row = {"what": what + (f", {rounds} rounds (order alternating)" if rounds > 1 else ""), "setting": setting,
           "figures": figures, "command": command, "machine": machine(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if results_dir is not None:
        atomic_write_json(Path(results_dir) / f"{name}{_rounds_suffix(rounds)}.json", row)
    return row


def _iteration_times(callback_times: list[float], skip: int) -> float:
    diffs = [b - a for a, b in zip(callback_times[skip:], callback_times[skip + 1:])]
    return sum(diffs) / len(diffs)


def dm_straightforward(real, images: torch.Tensor, ipc: int, *, iterations: int, batch_real: int = 256,
                       width: int = 128, lr: float = 1.0, seed: int = 0) -> float:
    """Seconds per DM iteration written the straightforward way (as the reference `main_DM.py`):
    eager fp32, plain nn.Conv2d -> GroupNorm modules, a fresh network every iteration, and per class
    256 fresh real images and the class's synthetic images through it under one shared DSA draw."""
    from ..augment import DSAConfig
    from ..augment.dsa import apply, broadcast, sample
    from ..models import get_model

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    syn = images.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=lr, momentum=0.5)
    dsa = DSAConfig()
    hw = tuple(real.image_shape[1:])
    times = []
    for _ in range(iterations + 1):  # the first iteration is a warm-up
        t0 = time.perf_counter()
        net = get_model("convnet", channels=real.channels, num_classes=real.num_classes, image_size=hw,
                        width=width, fast_first_block=False)
        for p in net.parameters():
            p.requires_grad_(False)
        loss = torch.zeros(())
        for c in range(real.num_classes):
            img_real = real.sample_class(c, batch_real, g)
            img_syn = syn[c * ipc:(c + 1) * ipc]
            params = sample(dsa, 1, hw, g, batch_shared=True)
            out_real = net.embed(apply(img_real, broadcast(params, batch_real))).detach()
            out_syn = net.embed(apply(img_syn, broadcast(params, ipc)))
            loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / iterations


def dm_speed(dataset: str = "fashion-mnist", *, ipc: int = 10, straightforward_iterations: int = 5,
             steady_iterations: int = 200, data_dir: str | None = None, results_dir: Path | None = None,
             quiet: bool = False, rounds: int = 1) -> dict[str, Any]:
    """Seconds per DM iteration at the reference settings (256 real images per class, DSA, width
    128), side by side in one process: the straightforward per-class loop; ours with a fresh view
    every iteration (`pool_size=0`: classes batched, bf16, compiled); ours with the view pool (the
    steady per-iteration cost, the cost of building one view, and the amortised cost per iteration
    of the default schedule, counting every view it builds). `rounds` > 1 times all three again,
    the order alternating, and reports means (see `alternating`)."""
    from .. import load_dataset
    from ..methods import get_method

    _check_rounds(rounds)  # before the data loads
    real = load_dataset(dataset, data_dir=data_dir)
    default = get_method("dm").config
    g = torch.Generator().manual_seed(0)
    images = torch.cat([real.sample_class(c, ipc, g) for c in range(real.num_classes)])

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    def timed(iterations: int, **overrides) -> float:
        stamps: list[float] = []
        get_method("dm", iterations=iterations, checkpoint_every=0, **overrides).distill(
            real, ipc, seed=0, callbacks=[lambda p: stamps.append(time.perf_counter())])
        return _iteration_times(stamps, skip=3)  # the first iterations compile and build the pool

    times = alternating({
        "straightforward": lambda: dm_straightforward(real, images, ipc, iterations=straightforward_iterations),
        "fresh": lambda: timed(straightforward_iterations + 4, pool_size=0),  # pool_size=0: a fresh view each
        "steady": lambda: timed(steady_iterations, pool_size=8, refresh_every=0),
    }, rounds, report=lambda name, t: say(f"{name}: {t:.4f} s/iteration"))
    t_plain, t_fresh, t_steady = (_mean(times[k]) for k in ("straightforward", "fresh", "steady"))
    figures: dict[str, Any] = {"straightforward s/iter": round(t_plain, 3),
                               "ours, fresh view every iteration s/iter": round(t_fresh, 3),
                               "ours, pooled steady s/iter": round(t_steady, 4)}
    view_cost = max(t_fresh - t_steady, 0.0)
    figures["one view build s"] = round(view_cost, 3)
    n_views = default.pool_size + (default.iterations // default.refresh_every if default.refresh_every else 0)
    amortised = t_steady + n_views * view_cost / default.iterations
    figures["ours, default schedule amortised s/iter"] = round(amortised, 4)
    say(f"ours, pooled: {t_steady:.4f} s/iteration steady, one view {view_cost:.3f} s, default schedule "
        f"({default.iterations} iterations, {n_views} views) {amortised:.4f} s/iteration amortised")
    figures["speed-up (straightforward / amortised)"] = round(t_plain / amortised, 1)
    figures["speed-up (straightforward / fresh view)"] = round(t_plain / t_fresh, 1)
    for key, values in times.items():
        _put_rounds(figures, f"{key} s/iter", values, rounds, 4)
    what = f"DM iteration, IPC {ipc}, 256 real images per class, DSA, ConvNet-3 width 128"
    setting = (f"{dataset}, {torch.get_num_threads()} threads; straightforward: the reference's per-class "
               "loop in eager fp32 with a fresh network and fresh real images every iteration; ours: classes "
               "batched, bf16 autocast, compiled synthetic side, real class means cached per view "
               f"(default pool {default.pool_size} views, one replaced every {default.refresh_every} "
               "iterations)")
    command = f"datadistill speed --what dm --dataset {dataset} --ipc {ipc}" + (f" --rounds {rounds}" if rounds > 1 else "")
    return _speed_row(what, setting, figures, command, rounds, results_dir, f"speed-dm-{dataset}-ipc{ipc}")


def dc_straightforward(real, images: torch.Tensor, ipc: int, *, outer_steps: int, outer_loop: int, inner_loop: int,
                       batch_real: int = 256, width: int = 128, dsa: bool = True, seed: int = 0) -> float:
    """Seconds per DC / DSA outer step written the straightforward way (as the reference `main.py`):
    eager fp32, plain modules; per class a real gradient (256 images) and a synthetic gradient with
    `create_graph`, one image step, then `inner_loop` epochs of training the network on the set.
    Like the reference, an iteration of `outer` steps trains the network after all but the last, so
    the figure is (match + inner * (outer - 1) / outer), the two parts timed separately."""
    import torch.nn.functional as F

    from ..augment import DSAConfig
    from ..augment.dsa import apply, augment, broadcast, sample
    from ..methods.dc import gradient_distance
    from ..models import get_model

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    syn = images.detach().clone().requires_grad_(True)
    labels = torch.arange(real.num_classes).repeat_interleave(ipc)
    opt = torch.optim.SGD([syn], lr=0.1, momentum=0.5)
    cfg = DSAConfig()
    hw = tuple(real.image_shape[1:])
    net = get_model("convnet", channels=real.channels, num_classes=real.num_classes, image_size=hw, width=width,
                    fast_first_block=False)
    opt_net = torch.optim.SGD(net.parameters(), lr=0.01)
    params = list(net.parameters())
    match_times, inner_times = [], []
    for _ in range(outer_steps + 1):  # the first step is a warm-up
        t0 = time.perf_counter()
        loss = torch.zeros(())
        for c in range(real.num_classes):
            x_real, x_syn = real.sample_class(c, batch_real, g), syn[c * ipc:(c + 1) * ipc]
            if dsa:
                p = sample(cfg, 1, hw, g, batch_shared=True)
                x_real, x_syn = apply(x_real, broadcast(p, batch_real)), apply(x_syn, broadcast(p, ipc))
            gw_real = [t.detach() for t in torch.autograd.grad(
                F.cross_entropy(net(x_real), torch.full((batch_real,), c)), params)]
            gw_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), torch.full((ipc,), c)), params, create_graph=True)
            loss = loss + gradient_distance(list(gw_syn), gw_real)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        x_train = syn.detach().clone()
        for _ in range(inner_loop):
            order = torch.randperm(len(x_train), generator=g)
            for s in range(0, len(order), 256):
                idx = order[s:s + 256]
                xb = augment(x_train[idx], cfg, g) if dsa else x_train[idx]
                opt_net.zero_grad()
                F.cross_entropy(net(xb), labels[idx]).backward()
                opt_net.step()
        match_times.append(t1 - t0)
        inner_times.append(time.perf_counter() - t1)
    match, inner = sum(match_times[1:]) / outer_steps, sum(inner_times[1:]) / outer_steps
    return match + inner * (outer_loop - 1) / outer_loop


def dc_speed(dataset: str = "fashion-mnist", *, ipc: int = 10, method: str = "dsa", outer_steps: int = 3,
             schedule: dict[str, Any] | None = None, data_dir: str | None = None, results_dir: Path | None = None,
             quiet: bool = False, rounds: int = 1, widths: tuple[int, ...] = ()) -> dict[str, Any]:
    """Seconds per DC / DSA outer step (matching + the inner training) at the reference settings,
    the straightforward loop against ours, side by side in one process. With `schedule` naming a
    view pool ({"pool_size": P, "refresh_every": R, "iterations": I}), also ours with the pool: the
    steady cost, the cost of one view, and the amortised cost of that schedule counting every view.
    `widths`: also ours with the network at each of these widths during distillation (the `width`
    budget knob), and its speed-up over ours at the reference width 128.
    `rounds` > 1 times them all again, the order alternating, and reports means (see `alternating`)."""
    from .. import load_dataset
    from ..methods import get_method

    reference = {"batch_real": 256, "outer_loop": 0, "inner_loop": 0, "width": 128, "init": "real",
                 "checkpoint_every": 0}
    _check_rounds(rounds)  # before the data loads
    if any(w < 1 or w == reference["width"] for w in widths) or len(set(widths)) != len(widths):
        raise ConfigError(f"speed widths must be distinct positive widths other than the reference "
                          f"{reference['width']}, got {list(widths)}")
    real = load_dataset(dataset, data_dir=data_dir)
    m = get_method(method, **reference)
    outer, inner = m.loops(ipc)
    g = torch.Generator().manual_seed(0)
    images = torch.cat([real.sample_class(c, ipc, g) for c in range(real.num_classes)])

    def say(msg: str) -> None:
        if not quiet:
            print(msg, flush=True)

    def timed(**overrides) -> Callable[[], float]:
        def run() -> float:
            stamps: list[float] = []
            get_method(method, **{**reference, "iterations": max(2, 8 // outer), **overrides}).distill(
                real, ipc, seed=0, callbacks=[lambda p: stamps.append(time.perf_counter())])
            return _iteration_times(stamps, skip=0) / outer  # the first iteration (compiling) is not timed
        return run

    measures = {"straightforward": lambda: dc_straightforward(real, images, ipc, outer_steps=outer_steps,
                                                              outer_loop=outer, inner_loop=inner, dsa=m.config.dsa),
                "ours": timed(pool_size=0)}
    pooled_schedule = bool(schedule and schedule.get("pool_size"))
    if pooled_schedule:
        measures["pooled steady"] = timed(pool_size=4, refresh_every=0)  # the views are built in the first
    for w in widths:
        measures[f"ours, width {w}"] = timed(pool_size=0, width=w)
    times = alternating(measures, rounds, report=lambda name, t: say(f"{name}: {t:.4f} s per outer step"))
    t_plain, t_ours = _mean(times["straightforward"]), _mean(times["ours"])
    figures: dict[str, Any] = {"straightforward s/outer step": round(t_plain, 3), "ours s/outer step": round(t_ours, 3),
                               "speed-up": round(t_plain / t_ours, 2)}
    pooled = ""
    if pooled_schedule:
        size, every = int(schedule["pool_size"]), int(schedule.get("refresh_every", 0))
        total = int(schedule.get("iterations", m.config.iterations))
        steady = _mean(times["pooled steady"])
        view_cost = max(t_ours - steady, 0.0) * outer
        n_views = size + (total // every if every else 0)
        amortised = steady + n_views * view_cost / total / outer
        figures["ours, pooled steady s/outer step"] = round(steady, 4)
        figures["one view build s"] = round(view_cost, 3)
        figures["ours, pooled schedule amortised s/outer step"] = round(amortised, 4)
        figures["speed-up (straightforward / pooled amortised)"] = round(t_plain / amortised, 1)
        say(f"ours, pooled: {steady:.4f} s steady, one view {view_cost:.3f} s; {total} iterations with {n_views} "
            f"views: {amortised:.4f} s per outer step amortised")
        pooled = (f"; pooled: the first outer step's real gradients cached per view (pool {size}, one replaced "
                  f"every {every} iterations, {total} iterations)")
    for w in widths:
        t_w = _mean(times[f"ours, width {w}"])
        figures[f"ours, width {w} s/outer step"] = round(t_w, 3)
        figures[f"speed-up (ours / width {w})"] = round(t_ours / t_w, 2)
        say(f"ours at width {w}: {t_w:.4f} s per outer step, {t_ours / t_w:.2f}x ours at width {reference['width']}")
    for key, values in times.items():
        _put_rounds(figures, f"{key} s/outer step", values, rounds, 4)
    what = f"{method.upper()} outer step (match + {inner} inner epochs), IPC {ipc}, 256 real images per class"
    setting = (f"{dataset}, {torch.get_num_threads()} threads, ConvNet-3 width 128; straightforward: the "
               "reference's loops in eager fp32 with plain modules; ours: compiled bf16 real side, eager bf16 "
               "synthetic side (double backward), compiled bf16 inner training" + pooled
               + "".join(f"; ours, width {w}: the same with the network at width {w} during distillation"
                         for w in widths))
    command = (f"datadistill speed --what {method} --dataset {dataset} --ipc {ipc}"
               + "".join(f" --set {k}={v}" for k, v in (schedule or {}).items())
               + (f" --widths {','.join(map(str, widths))}" if widths else "")
               + (f" --rounds {rounds}" if rounds > 1 else ""))
    key = f"speed-{method}-{dataset}-ipc{ipc}" + (f"-w{'-'.join(map(str, widths))}" if widths else "")
    return _speed_row(what, setting, figures, command, rounds, results_dir, key)


def teacher_speed(dataset: str = "fashion-mnist", *, steps: int = 16, data_dir: str | None = None,
                  results_dir: Path | None = None, quiet: bool = False, rounds: int = 1) -> dict[str, Any]:
    """The default teacher recipe's training step (`TeacherRecipe`: ConvNet-3 with batch norm,
    batch 256, crop and flip, bf16, compiled, SGD), side by side: the first block's batch norm
    through the nn.BatchNorm2d module ('modules') against its statistics from the patches
    ('patch-statistics', `patch_conv_batch_norm`, what `train_teacher` runs). Each path trains a
    fresh teacher model on the first `steps` batches of the training split: one epoch to compile,
    then two timed epochs; the figure is milliseconds per step. `rounds` > 1 alternates the order."""
    from .. import load_dataset
    from ..evaluation.train import fit
    from ..teachers import TeacherRecipe, build_teacher_model, teacher_fit_options

    if steps < 1:
        raise ConfigError(f"speed teacher steps must be positive, got {steps}")
    _check_rounds(rounds)
    real = load_dataset(dataset, data_dir=data_dir)
    recipe = TeacherRecipe()
    n = min(len(real.train), steps * recipe.batch_size)
    steps = -(-n // recipe.batch_size)
    x, y = real.train.x[:n], real.train.y[:n]
    options = teacher_fit_options(real, recipe)  # as train_teacher trains
    paths = ("modules", "patch-statistics")

    def measure(name: str) -> Callable[[], float]:
        def run() -> float:
            model = build_teacher_model(real, recipe)
            model.patch_batch_norm = name == "patch-statistics"
            ends: list[float] = []
            t0 = time.perf_counter()
            fit(model, x, y, epochs=3, generator=torch.Generator().manual_seed(recipe.seed),
                on_epoch=lambda e, _l: ends.append(time.perf_counter()), **options)
            ms = (ends[2] - ends[0]) / (2 * steps) * 1000
            if not quiet:
                print(f"{name}: {ms:.1f} ms per step ({time.perf_counter() - t0:.0f} s with compiling)", flush=True)
            return ms
        return run

    times = alternating({name: measure(name) for name in paths}, rounds)
    figures: dict[str, Any] = {}
    for name in paths:
        _put_times(figures, f"{name} ms/step", times[name], rounds)
    figures["speed-up"] = round(figures["modules ms/step"] / figures["patch-statistics ms/step"], 2)
    width = dict(recipe.model_kwargs).get("width", 128)
    what = (f"teacher training step (default recipe: ConvNet-3 of width {width} with batch norm, batch {recipe.batch_size}, "
            f"{recipe.augment}, {recipe.precision}, compiled), {steps} steps x 2 epochs")
    setting = (f"{dataset}, the first {n} training images, {torch.get_num_threads()} threads; modules: the first "
               "block's nn.BatchNorm2d; patch-statistics: its batch statistics from the patches' mean and "
               "covariance, folded into the conv (what teachers train with)")
    command = (f"datadistill speed --what teacher --dataset {dataset} --iterations {steps}"
               + (f" --rounds {rounds}" if rounds > 1 else ""))
    return _speed_row(what, setting, figures, command, rounds, results_dir, f"speed-teacher-{dataset}-s{steps}")


SCALEOUT_METHODS = ("dm", "dm-multilayer", "dc", "dsa")


def scaleout_speed(dataset: str = "fashion-mnist", *, method: str = "dm", ipc: int = 10, iterations: int = 300,
                   processes: int = 2, eval_models: int = 2, epochs: int = 300, data_dir: str | None = None,
                   results_dir: Path | None = None, quiet: bool = False, rounds: int = 1) -> dict[str, Any]:
    """One process against `processes` processes under torchrun, side by side on this machine:
    `datadistill distill` of `method` (its defaults, `iterations` iterations, seed 0, from random
    real images so that no init stage is timed), then `datadistill evaluate` of the set it made
    (`eval_models` ConvNet-3 models, the dsa protocol for `epochs` epochs). Three arms: 'one' (one
    process with every thread this process has), 'one-narrow' (one process with the threads each
    split process gets) and 'split' (`processes` processes under torchrun, each with its share of
    the threads, OMP_NUM_THREADS as torchrun sets it). 'split' against 'one' is what a user of this
    machine gains; against 'one-narrow', how the work divides (the same arithmetic per process, so
    the same images and accuracies to the bit). Figures: the distillation's own wall time (the
    manifest's, without start-up and data loading), each command's wall time as a user waits for
    it, the speed-ups, and the largest pixel difference and equal accuracies against each single-
    process arm. `rounds` > 1 alternates the order."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if method not in SCALEOUT_METHODS:
        raise ConfigError(f"speed scaleout --method must be one of {', '.join(SCALEOUT_METHODS)}, got {method!r}")
    if processes < 2:
        raise ConfigError(f"speed scaleout processes must be at least 2, got {processes}")
    for name, value in (("iterations", iterations), ("eval models", eval_models), ("epochs", epochs)):
        if value < 1:
            raise ConfigError(f"speed scaleout {name} must be positive, got {value}")
    _check_rounds(rounds)
    threads = torch.get_num_threads()
    narrow = max(1, threads // processes)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    one = [sys.executable, "-m", "datadistill"]
    launch = {"one": (one, threads), "one-narrow": (one, narrow),
              "split": ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                         str(processes), "-m", "datadistill"], narrow)}
    data = ["--dataset", dataset] + (["--data-dir", data_dir] if data_dir else [])
    distill_args = ["distill", *data, "--method", method, "--ipc", str(ipc), "--seed", "0",
                    "--set", f"iterations={iterations}", "--set", "init=real"]
    eval_args = ["--protocol", "dsa", "--eval-set", f"num_models={eval_models}", "--eval-set", f"epochs={epochs}"]
    work = Path(tempfile.mkdtemp(prefix="datadistill-scaleout-"))
    runs = dict.fromkeys(launch, 0)
    got: dict[str, dict[str, Any]] = {}
    times: dict[str, list[float]] = {}

    def run(cmd: list[str], threads_each: int) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env={**env, "OMP_NUM_THREADS": str(threads_each)}, capture_output=True, text=True)
        if done.returncode != 0:  # the command's own one-line error (torchrun adds a report after it)
            lines = [ln for ln in done.stderr.splitlines() if ln.startswith("datadistill: error")]
            tail = lines[0] if lines else (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ConfigError(f"speed scaleout: {' '.join(cmd[:6])} ... failed: {tail}")
        return time.perf_counter() - t0

    def measure(arm: str) -> Callable[[], float]:
        def go() -> float:
            prefix, each = launch[arm]
            runs[arm] += 1
            out = work / f"{arm}{runs[arm]}"
            wall = run([*prefix, "-q", *distill_args, "--out", str(out)], each)
            manifest = json.loads((out / "manifest.json").read_text())
            eval_wall = run([*prefix, "-q", "evaluate", str(out), *data[2:], *eval_args], each)  # the set it made
            result = json.loads((out / "manifest.json").read_text())["evaluation"]["convnet"]
            got[arm] = {"out": out, "per_model": result["per_model"]}
            times.setdefault(f"{arm} distill wall s", []).append(float(manifest["wall_time_s"]))
            times.setdefault(f"{arm} distill command s", []).append(wall)
            times.setdefault(f"{arm} evaluate command s", []).append(eval_wall)
            if not quiet:
                print(f"{arm}: distill {manifest['wall_time_s']:.1f} s ({wall:.1f} s command), evaluate "
                      f"{eval_wall:.1f} s", flush=True)
            return wall + eval_wall
        return go

    figures: dict[str, Any] = {}
    try:
        alternating({arm: measure(arm) for arm in launch}, rounds)
        from ..synthetic import SyntheticSet

        images = {arm: SyntheticSet.load(got[arm]["out"]).images for arm in launch}
        for key, values in times.items():
            _put_times(figures, key, values, rounds)
        for arm in ("one", "one-narrow"):
            figures[f"distill speed-up (split / {arm})"] = round(
                figures[f"{arm} distill wall s"] / figures["split distill wall s"], 2)
            figures[f"evaluate speed-up (split / {arm})"] = round(
                figures[f"{arm} evaluate command s"] / figures["split evaluate command s"], 2)
            figures[f"largest pixel difference (split / {arm})"] = float((images["split"] - images[arm]).abs().max())
            figures[f"same model accuracies (split / {arm})"] = got["split"]["per_model"] == got[arm]["per_model"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    what = (f"scale-out: 1 process against {processes} under torchrun, {method} IPC {ipc} ({iterations} iterations "
            f"from random real images), then the evaluation of its set ({eval_models} ConvNet-3 models, dsa "
            f"protocol, {epochs} epochs)")
    setting = (f"{dataset}; one: 1 process of {threads} threads; one-narrow: 1 process of {narrow}; split: "
               f"{processes} processes of {narrow} under torchrun, the classes split across them (distill) and the "
               f"models (evaluate); {method}'s defaults")
    command = (f"datadistill speed --what scaleout --method {method} --dataset {dataset} --ipc {ipc} "
               f"--iterations {iterations} --processes {processes} --eval-models {eval_models} --epochs {epochs}"
               + (f" --rounds {rounds}" if rounds > 1 else ""))
    return _speed_row(what, setting, figures, command, rounds, results_dir,
                      f"speed-scaleout-{method}-{dataset}-ipc{ipc}-p{processes}")
