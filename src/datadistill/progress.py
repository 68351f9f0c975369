"""Terminal progress bars (tqdm) fed by the library's callbacks: `(done, total)` or a
`methods.Progress`. Used by the command-line layer only; the library itself just calls callbacks."""
from __future__ import annotations

import time
from typing import Any

from tqdm.auto import tqdm


class ProgressBar:
    """tqdm progress bar fed by `(done, total)` or `Progress` callbacks; shows ETA."""

    def __init__(self, desc: str, disable: bool, min_interval: float = 0.5) -> None:
        self.desc, self.disable, self.bar, self.shown = desc, disable, None, desc
        self.min_interval, self.last = min_interval, 0.0

    def __call__(self, done: Any, total: int | None = None) -> None:
        loss, message = None, ""
        if total is None:  # a methods.Progress
            done, total, loss, message = done.step, done.total, done.loss, done.message
        desc = f"{self.desc} ({message})" if message else self.desc
        if self.bar is not None and (self.bar.total != total or self.shown != desc):  # a new stage
            self.close()
        if self.bar is None:
            self.shown = desc
            # a stage resumed part-way (a bench cell whose first models were kept) starts its bar at `done`,
            # so the rate and ETA count only the work done now, not the kept work as if done in an instant
            self.bar = tqdm(total=total, initial=done, desc=desc, disable=self.disable, leave=False,
                            dynamic_ncols=True)
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
