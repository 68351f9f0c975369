"""Where a DC / DSA outer step spends its time: the real side (`real_gradients`, one call per class),
the inner training (`fit` on the synthetic set) and the rest (the synthetic side's double backward,
the distance and the image step), per iteration of `outer` steps at the reference settings (256 real
images per class, width 128, no view pool), the first iteration (compiling) not counted.

    python benchmarks/screens/dc_profile.py [--method dsa] [--ipc 10] [--iterations 3]
    python benchmarks/screens/dc_profile.py --step   # one inner-training step, three ways, and its operators

Seconds are wall time on the calling thread; each part is timed around its calls. `--step` times one
training step of ConvNet-3 (width 128) on 100 images in eager fp32, eager bf16 and compiled bf16 (as
the inner training runs), then lists the compiled step's operators by self time (torch.profiler).
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from datadistill import load_dataset
from datadistill._runtime import tune_allocator
from datadistill.methods import dc as dc_module
from datadistill.methods import get_method


def step_profile(steps: int = 20) -> None:
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from datadistill.models import get_model

    torch.manual_seed(0)
    net = get_model("convnet", channels=1, num_classes=10, image_size=(28, 28), width=128)
    x, y = torch.randn(100, 1, 28, 28), torch.randint(0, 10, (100,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    compiled = torch.compile(step)
    for name, run in (("eager fp32", lambda: step(False)), ("eager bf16", lambda: step(True)),
                      ("compiled bf16", lambda: compiled(True))):
        for _ in range(3):  # warm-up (and compiling)
            run()
        t = time.perf_counter()
        for _ in range(steps):
            run()
        print(f"{name}: {(time.perf_counter() - t) / steps * 1000:.1f} ms per step")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            compiled(True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--method", default="dsa", choices=["dc", "dsa"])
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--step", action="store_true", help="profile one inner-training step instead")
    args = ap.parse_args()
    tune_allocator()  # as the CLI runs
    if args.step:
        step_profile()
        return
    parts: dict[str, float] = {}
    counts: dict[str, int] = {}

    def timed(owner: Any, name: str, key: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                parts[key] = parts.get(key, 0.0) + time.perf_counter() - t
                counts[key] = counts.get(key, 0) + 1
        setattr(owner, name, wrapper)

    timed(dc_module.DC, "real_gradients", "real side")
    timed(dc_module, "fit", "inner training")
    real = load_dataset(args.dataset)
    m = get_method(args.method, batch_real=256, width=128, init="real", checkpoint_every=0,
                   iterations=args.iterations, pool_size=0)
    outer, inner = m.loops(args.ipc)
    last = [time.perf_counter()]
    rows: list[dict[str, float]] = []

    def on_iteration(_progress: Any) -> None:
        now = time.perf_counter()
        rows.append({"total": now - last[0], **parts})
        last[0] = now
        parts.clear()

    m.distill(real, args.ipc, seed=0, callbacks=[on_iteration])
    rows = rows[1:]  # the first iteration compiles
    mean = {k: sum(r.get(k, 0.0) for r in rows) / len(rows) / outer for k in rows[0]}
    mean["rest (synthetic side, distance, step)"] = mean["total"] - mean.get("real side", 0) - mean.get("inner training", 0)
    print(f"{args.method}, IPC {args.ipc}: {outer} outer steps of (match + {inner} inner epochs) per iteration; "
          f"seconds per outer step, mean of {len(rows)} iterations:")
    for k, v in mean.items():
        print(f"  {k}: {v:.3f}")


if __name__ == "__main__":
    main()
