"""Progress on the terminal: the variant in flight with iterations and ETA, plus one line per
finished variant (the only output when stdout is not a terminal, e.g. in CI)."""

from __future__ import annotations

import numpy as np

from tracegen.run.plan import Variant


class ProgressBar:
    def __init__(self, console, enabled: bool, n_variants: int, first_index: int = 0):
        self.console = console
        self.enabled = enabled and console is not None
        self.n_variants = n_variants
        self._progress = None
        self._index = first_index

    def __enter__(self):
        if self.enabled and self.console.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("it"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console,
                transient=True, refresh_per_second=4,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def start_variant(self, v: Variant, total: int):
        self._index += 1
        if self._progress is None:
            return None
        return self._progress.add_task(f"[{self._index}/{self.n_variants}] {v.name}", total=total)

    def advance(self, task, done: int) -> None:
        if self._progress is not None and task is not None:
            self._progress.update(task, completed=done)

    def end_variant(self, task, v: Variant, done: int, interrupted: bool = False,
                    work_ns: np.ndarray | None = None) -> None:
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
        if not self.enabled:
            return
        if interrupted:
            self.console.print(f"[yellow]interrupted[/] {v.name}: kept {done} iterations")
            return
        lat = ""
        if work_ns is not None and done > v.warmup:
            lat = f"  p50 {np.median(work_ns[v.warmup:done]) / 1e6:.3f} ms"
        self.console.print(f"[green]done[/] [{self._index}/{self.n_variants}] {v.name}: {done} it{lat}")
