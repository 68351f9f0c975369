"""Terminal progress bars (tqdm) fed by the library's callbacks: `(done, total)` or a
`methods.Progress`. Used by the command-line layer only; the library itself just calls callbacks."""
from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm


class ProgressBar:
    """tqdm progress bar fed by `(done, total)` or `Progress` callbacks; shows ETA."""

    def __init__(self, desc: str, disable: bool, min_interval: float = 0.5) -> None:
        self.desc, self.disable, self.bar = desc, disable, None
        self.min_interval, self.last = min_interval, 0.0

    def __call__(self, done: Any, total: int | None = None) -> None:
        loss = None
        if total is None:  # a methods.Progress
            done, total, loss = done.step, done.total, done.loss
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, disable=self.disable, leave=False, dynamic_ncols=True)
        self.bar.n = done
        if loss is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        now = time.monotonic()
        if now - self.last >= self.min_interval or done >= total:  # redraw at most twice a second
            self.last = now
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
