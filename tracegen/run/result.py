"""What a run returns to its caller (the CLI, ``run --nsys``, tests); no dependencies, so any
module can import it without loading the runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    run_id: str
    status: str  # complete | interrupted | failed
    variants_done: int
    iterations: int  # recorded, warm-up included
    error: str | None = None
