"""What the DSA screen scripts share: their common arguments and their resumable results file."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from datadistill._runtime import tune_allocator


def start(description: str, iterations: str, set_option: bool = True,
          arguments: Callable[[argparse.ArgumentParser], None] | None = None,
          ) -> tuple[argparse.Namespace, Path, dict[str, Any]]:
    """Parse --out / --dataset / --iterations (default `iterations`) / --seed (and --set, for a screen
    that takes extra config fields; `arguments` adds a screen's own), tune the allocator, make the
    output folder: (arguments, results path, the results kept there so far)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--iterations", default=iterations)
    ap.add_argument("--seed", type=int, default=0)
    if set_option:
        ap.add_argument("--set", action="append", default=[], help="extra dsa config field=value (float or str)")
    if arguments is not None:
        arguments(ap)
    args = ap.parse_args()
    tune_allocator()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    return args, results_path, json.loads(results_path.read_text()) if results_path.exists() else {}
