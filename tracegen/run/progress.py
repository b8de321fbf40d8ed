"""Terminal progress of a run: the whole run's ETA from the start, the variant in flight, and one
line per finished variant (the only output when stdout is not a terminal, e.g. in CI)."""

from __future__ import annotations

import numpy as np

from tracegen.run.eta import RunEta, format_duration


class ProgressBar:
    def __init__(self, console, enabled: bool, n_variants: int, eta: RunEta | None = None, first_index: int = 0):
        self.console = console
        self.enabled = enabled and console is not None
        self.n_variants = n_variants
        self.eta = eta
        self._progress = None
        self._run_task = None
        self._index = first_index  # variants done before this process started (a resumed run)

    def __enter__(self):
        if self.enabled and self.eta is not None:
            self.console.print(f"plan: {self.n_variants} variants, about {format_duration(self.eta.total_s())} "
                               "(planned gaps + estimated work; refined as variants finish)")
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), console=self.console, transient=True,
                refresh_per_second=4,
            )
            self._progress.__enter__()
            self._run_task = self._progress.add_task("run", total=self.n_variants, completed=self._index,
                                                     unit="variants", eta=self._eta_text())
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def _eta_text(self) -> str:
        if self.eta is None:
            return ""
        return f"run eta {format_duration(self.eta.remaining_s())}"

    def start_variant(self, v, total: int):
        self._index += 1
        if self.eta is not None:
            self.eta.observe(v.variant_id, 0)
        if self._progress is None:
            return None
        return self._progress.add_task(f"[{self._index}/{self.n_variants}] {v.name}", total=total, unit="it", eta="")

    def advance(self, task, done: int, v=None, work_s: float | None = None) -> None:
        """Called about 100 times per variant; feeds the ETA the recent work time per iteration."""
        if self.eta is not None and v is not None:
            self.eta.observe(v.variant_id, done, work_s)
        if self._progress is not None and task is not None:
            self._progress.update(task, completed=done)
            self._progress.update(self._run_task, eta=self._eta_text())

    def end_variant(self, task, v, done: int, interrupted: bool = False, work_ns: np.ndarray | None = None) -> None:
        """``work_ns``: per-iteration time of every step but the idle gap."""
        measured = work_ns[v.warmup:done] if work_ns is not None and done > v.warmup else None
        if self.eta is not None:
            if measured is not None:
                self.eta.observe(v.variant_id, done, float(np.mean(measured)) / 1e9)
            self.eta.finish(v.variant_id)
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
            self._progress.update(self._run_task, completed=self._index, eta=self._eta_text())
        if not self.enabled:
            return
        if interrupted:
            self.console.print(f"[yellow]interrupted[/] {v.name}: kept {done} iterations")
            return
        lat = f"  p50 {np.median(measured) / 1e6:.3f} ms" if measured is not None else ""
        left = ""
        if self.eta is not None:
            left = (f"  (run {format_duration(self.eta.elapsed_s())} elapsed, "
                    f"~{format_duration(self.eta.remaining_s())} left)")
        self.console.print(f"[green]done[/] [{self._index}/{self.n_variants}] {v.name}: {done} it{lat}{left}")
