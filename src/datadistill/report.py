"""Run report: a short markdown summary of a distilled set and its evaluation."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._io import atomic_write_text
from .synthetic import SyntheticSet


def _fmt(result: Mapping[str, Any]) -> str:
    return f"{result['mean']:.2f} ± {result['std']:.2f}"


def write_report(run_dir: str | Path, syn: SyntheticSet, evaluations: Mapping[str, Mapping[str, Any]],
                 *, title: str | None = None) -> Path:
    """`evaluations`: row name -> EvalResult.as_dict() (e.g. {'dm': ..., 'random (same size)': ...})."""
    run_dir = Path(run_dir)
    lines = [f"# {title or f'{syn.method} on {syn.dataset}, {syn.ipc} images per class'}", ""]
    lines += [f"- dataset: `{syn.dataset}` ({syn.num_classes} classes, images {tuple(syn.images.shape[1:])})",
              (f"- method: `{syn.method}`, seed {syn.seed}, {len(syn.images)} images "
              f"({syn.storage_bytes['total'] / 1024:.1f} KiB stored)"),
              f"- distillation wall time: {syn.meta.get('wall_time_s', float('nan')):.1f} s", ""]
    if evaluations:
        first = next(iter(evaluations.values()))
        p = first["protocol"]
        lines += [f"## Test accuracy ({first['split']} split)", "",
                  (f"Protocol: {p['model']}, {p['epochs']} epochs, SGD lr {p['lr']} (momentum {p['momentum']}, "
                  f"weight decay {p['weight_decay']}), batch {p['batch_size']}, augmentation {p['augment']}, "
                  f"{p['label_mode']} labels, {p['num_models']} fresh models, {p['precision']}."), "",
                  "| set | accuracy % (mean ± std) | per model | train s |", "|---|---|---|---|"]
        for name, r in evaluations.items():
            per = ", ".join(f"{a:.1f}" for a in r["per_model"])
            lines.append(f"| {name} | {_fmt(r)} | {per} | {r['train_time_s']:.0f} |")
        lines.append("")
    if (run_dir / "grid.png").is_file():
        lines += ["## Images", "", "![distilled images](grid.png)", ""]
    if (run_dir / "loss.png").is_file():
        lines += ["## Matching loss", "", "![loss curve](loss.png)", ""]
    path = run_dir / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path


def save_loss_curve(run_dir: str | Path, out: str | Path) -> Path | None:
    """Plot the loss (and validation accuracy, when logged) of an iterative run from its
    `metrics.jsonl`; returns the PNG path, or None when the run has no metrics."""
    from .methods._matching import read_metrics

    rows = [r for r in read_metrics(run_dir) if "loss" in r]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["iteration"] for r in rows], [r["loss"] for r in rows], lw=1, color="tab:blue")
    ax.set_xlabel("iteration")
    ax.set_ylabel("matching loss")
    ax.set_yscale("log" if min(r["loss"] for r in rows) > 0 else "linear")
    val = [r for r in rows if "val_accuracy" in r]
    if val:
        ax2 = ax.twinx()
        ax2.plot([r["iteration"] for r in val], [r["val_accuracy"] for r in val], "o-", color="tab:orange", ms=3)
        ax2.set_ylabel("validation accuracy %")
    ax.set_title(Path(run_dir).name)
    fig.tight_layout()
    out = Path(out)
    from ._io import atomic_write_with

    atomic_write_with(out, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return out
