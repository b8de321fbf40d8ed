"""Scheduled changes of a variant's gap or pacing at known iterations (``--schedule``).

``--schedule 0:200,20:200,0:200`` is 200 iterations back to back, then 200 with 20 ms gaps,
then 200 back to back: the stream starts, pauses and resumes as it does in production, and the
trace gets change points whose true positions are known. A segment may also switch the way the
gap is spent: ``20:200:spin``. The segments count measured iterations; warm-up iterations run
before them with the first segment's gap and pacing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracegen.errors import ConfigError

PACINGS = ("sleep", "spin", "keepalive")
_EXAMPLE = "e.g. --schedule 0:200,20:200,0:200 (GAP_MS:ITERATIONS[:PACING], comma-separated)"


@dataclass(frozen=True)
class Segment:
    gap_ms: float
    iterations: int
    pacing: str | None = None  # None: the variant's own pacing

    @property
    def spec(self) -> str:
        return f"{self.gap_ms:g}:{self.iterations}" + (f":{self.pacing}" if self.pacing else "")


@dataclass(frozen=True)
class Schedule:
    segments: tuple[Segment, ...]

    @property
    def spec(self) -> str:
        return ",".join(s.spec for s in self.segments)

    @property
    def iterations(self) -> int:
        return sum(s.iterations for s in self.segments)

    @property
    def max_gap_ms(self) -> float:
        return max(s.gap_ms for s in self.segments)

    @property
    def pacings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.pacing for s in self.segments if s.pacing))

    def starts(self, warmup: int = 0) -> list[int]:
        """Iteration index (0-based, warm-up included) where each segment begins."""
        out, at = [], warmup
        for s in self.segments:
            out.append(at)
            at += s.iterations
        return out

    def change_points(self, warmup: int = 0, pacing: str | None = None) -> list[int]:
        """Iterations where the gap or the pacing really changes (consecutive equal segments
        are one regime), in the run's iteration numbering: what a detector should find."""
        out = []
        prev = None
        for start, s in zip(self.starts(warmup), self.segments):
            regime = (s.gap_ms, (s.pacing or pacing) if s.gap_ms > 0 else None)
            if prev is not None and regime != prev:
                out.append(start)
            prev = regime
        return out

    def describe(self, warmup: int = 0, pacing: str | None = None) -> dict:
        """What the manifest records, so analysis and tests know the truth."""
        return {
            "spec": self.spec,
            "segments": [{"start_iteration": start, "iterations": s.iterations, "gap_ms": s.gap_ms,
                          "pacing": (s.pacing or pacing) if s.gap_ms > 0 else "none"}
                         for start, s in zip(self.starts(warmup), self.segments)],
            "change_points": self.change_points(warmup, pacing),
        }


def parse_schedule(value) -> Schedule:
    if isinstance(value, Schedule):
        return value
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    segments = []
    for raw in items:
        text = str(raw).strip()
        if not text:
            continue
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(f"--schedule segment {text!r} is not GAP_MS:ITERATIONS", _EXAMPLE)
        try:
            gap = float(parts[0])
        except ValueError:
            raise ConfigError(f"--schedule segment {text!r}: the gap {parts[0]!r} is not a number of ms", _EXAMPLE) from None
        try:
            n = int(parts[1])
        except ValueError:
            raise ConfigError(f"--schedule segment {text!r}: {parts[1]!r} is not a whole number of iterations",
                              _EXAMPLE) from None
        if not 0 <= gap < 3_600_000:
            raise ConfigError(f"--schedule segment {text!r}: the gap must be between 0 and 3600000 ms", _EXAMPLE)
        if n < 1:
            raise ConfigError(f"--schedule segment {text!r}: a segment needs at least 1 iteration", _EXAMPLE)
        pacing = parts[2].strip().lower() if len(parts) == 3 else None
        if pacing is not None and pacing not in PACINGS:
            raise ConfigError(f"--schedule segment {text!r}: unknown pacing {pacing!r}", f"choose from: {', '.join(PACINGS)}")
        segments.append(Segment(gap, n, pacing))
    if not segments:
        raise ConfigError("--schedule is empty", _EXAMPLE)
    if all(s.gap_ms == 0 for s in segments):
        raise ConfigError("--schedule has no gap in any segment, so nothing changes", _EXAMPLE)
    return Schedule(tuple(segments))
