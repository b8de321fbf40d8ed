"""Terminal progress of a run: the whole run's ETA from the start, the variant in flight, and one
line per finished variant (the only output when stdout is not a terminal, e.g. in CI)."""

from __future__ import annotations

import numpy as np

from tracegen.run.eta import RunEta, format_duration


class ProgressBar:
    def __init__(self, console, enabled: bool, n_variants: int, eta: RunEta | None = None):
        self.console = console
        self.enabled = enabled and console is not None
        self.n_variants = n_variants
        self.eta = eta
        self.stride = 1
        self._progress = None
        self._run_task = None
        self._index = 0

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
            self._run_task = self._progress.add_task("run", total=self.n_variants, unit="variants", eta=self._eta_text())
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False

    def _eta_text(self) -> str:
        if self.eta is None:
            return ""
        return f"run eta {format_duration(self.eta.remaining_s())}"

    def start_variant(self, v, total: int):
        self._index += 1
        # Update the bar about 100 times per variant, not every iteration.
        self.stride = max(1, total // 100)
        if self.eta is not None:
            self.eta.observe(v.variant_id, 0)
        if self._progress is None:
            return None
        return self._progress.add_task(f"[{self._index}/{self.n_variants}] {v.name}", total=total, unit="it", eta="")

    def advance(self, task, done: int, v=None, rec=None) -> None:
        """Called every ``stride`` iterations; feeds the ETA the work time of the last stride."""
        if self.eta is not None and v is not None:
            self.eta.observe(v.variant_id, done, _work_s(rec, max(0, done - self.stride), done))
        if self._progress is not None and task is not None:
            self._progress.update(task, completed=done)
            self._progress.update(self._run_task, eta=self._eta_text())

    def end_variant(self, task, v, done: int, interrupted: bool = False, rec=None) -> None:
        if self.eta is not None:
            if rec is not None and done:
                self.eta.observe(v.variant_id, done, _work_s(rec, min(v.warmup, done - 1), done))
            self.eta.finish(v.variant_id)
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
            self._progress.update(self._run_task, completed=self._index, eta=self._eta_text())
        if not self.enabled:
            return
        if interrupted:
            self.console.print(f"[yellow]interrupted[/] {v.name}: kept {done} iterations")
            return
        lat = ""
        if rec is not None and done > v.warmup:
            n = len(rec.codes)
            m = rec.marks[v.warmup:done].reshape(done - v.warmup, n, 2)
            work = (m[:, 1:, 1] - m[:, 1:, 0]).sum(axis=1)  # every step but idle
            lat = f"  p50 {np.median(work) / 1e6:.3f} ms"
        left = ""
        if self.eta is not None:
            left = (f"  (run {format_duration(self.eta.elapsed_s())} elapsed, "
                    f"~{format_duration(self.eta.remaining_s())} left)")
        self.console.print(f"[green]done[/] [{self._index}/{self.n_variants}] {v.name}: {done} it{lat}{left}")


def _work_s(rec, start: int, end: int) -> float | None:
    """Mean seconds per iteration of everything but the idle gap, iterations ``start..end``:
    from the end of the gap to the end of the last step (bookkeeping between steps included)."""
    if rec is None or end <= start:
        return None
    marks = rec.marks[start:end]
    return float(np.mean(marks[:, -1] - marks[:, 1])) / 1e9
