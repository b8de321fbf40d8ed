"""When the next frame arrives: arrival patterns of the idle scenario.

A pattern decides how long the host waits before each iteration; the pacing (sleep, spin,
keep-alive) decides how it waits. The runner times the wait as the ``idle`` step, so the trace
holds the real gap, not the requested one.

- ``fixed``: the same gap before every iteration (the seed's ``time.sleep(0.02)``).
- ``fps``: a frame-rate deadline, as a video pipeline paces: frame ``i`` is due at
  ``start + i * interval`` and the gap is what remains of the interval after the work. A frame
  that is late starts at once; one more than a whole interval late moves the deadlines on
  (frames are dropped, not bunched up).
- ``poisson``: exponential gaps with the given mean (seeded), so arrivals form a Poisson process
  whenever the work is short against the gap (perf_analyzer's ``--request-distribution poisson``
  draws its intervals the same way).
- ``burst:N``: N iterations back to back, then one gap.

Gaps of every pattern except ``fps`` are drawn before the loop (no random numbers or allocation
inside the timed loop) and can be planned ahead, e.g. for the run's ETA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from tracegen.errors import ConfigError

KINDS = ("fixed", "fps", "poisson", "burst")
_EXAMPLE = "e.g. --arrival fixed, poisson or burst:4 (and --fps 30 for frame-rate pacing)"


@dataclass(frozen=True)
class Arrival:
    kind: str = "fixed"
    burst: int = 1  # iterations back to back per gap (burst only)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown arrival pattern {self.kind!r}", _EXAMPLE)
        if self.burst < 1:
            raise ConfigError(f"a burst needs at least 1 iteration, got {self.burst}", "e.g. --arrival burst:4")

    @property
    def spec(self) -> str:
        """The option text that gives this pattern back (``parse_arrival(a.spec) == a``)."""
        return f"burst:{self.burst}" if self.kind == "burst" else self.kind

    def label(self, gap_ms: float) -> str:
        """Short name of a paced variant's arrivals, e.g. ``20ms``, ``fps30``, ``poisson20ms``."""
        if self.kind == "fps":
            return f"fps{1000.0 / gap_ms:.4g}" if gap_ms > 0 else "fps-max"
        if self.kind == "poisson":
            return f"poisson{gap_ms:g}ms"
        if self.kind == "burst":
            return f"burst{self.burst}-{gap_ms:g}ms"
        return f"{gap_ms:g}ms"

    def gaps_ms(self, gap_ms: float, n: int, rng: np.random.Generator | None = None,
                first_index: int = 0) -> np.ndarray:
        """The requested gap (ms) before each of ``n`` iterations. ``fps`` has no fixed gaps
        (they depend on the work) and returns the frame interval as an upper bound.
        ``first_index`` is the position of the first of them in the variant (burst phase)."""
        if n <= 0:
            return np.zeros(0)
        if self.kind == "poisson":
            rng = rng if rng is not None else np.random.default_rng(0)
            return rng.exponential(gap_ms, n) if gap_ms > 0 else np.zeros(n)
        if self.kind == "burst":
            index = np.arange(first_index, first_index + n)
            return np.where(index % self.burst == 0, gap_ms, 0.0)
        return np.full(n, float(gap_ms))


def parse_arrival(value) -> Arrival:
    if isinstance(value, Arrival):
        return value
    text = str(value).strip().lower()
    kind, _, arg = text.partition(":")
    if kind == "burst":
        try:
            n = int(arg)
        except ValueError:
            raise ConfigError(f"--arrival {text!r} needs the burst length", "e.g. --arrival burst:4") from None
        return Arrival("burst", n)
    if arg:
        raise ConfigError(f"--arrival {text!r} takes no argument", _EXAMPLE)
    if kind == "fps":
        raise ConfigError("frame-rate pacing is its own option", "use --fps 30 (or --fps 30,60)")
    return Arrival(kind)


def arrival_of(spec: str) -> Arrival:
    """The pattern of a planned variant (``Variant.arrival``), frame-rate pacing included."""
    return Arrival("fps") if spec == "fps" else parse_arrival(spec)


def parse_fps(value) -> tuple[float, ...]:
    """``--fps 30,60`` -> frame rates; each becomes a frame interval of ``1000 / fps`` ms."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            fps = float(text)
        except ValueError:
            raise ConfigError(f"--fps takes frames per second, got {text!r}", "e.g. --fps 30") from None
        if not 0.001 <= fps <= 100_000:
            raise ConfigError(f"--fps must be between 0.001 and 100000, got {text}", "e.g. --fps 30")
        out.append(fps)
    if not out:
        raise ConfigError("--fps is empty", "e.g. --fps 30")
    return tuple(dict.fromkeys(out))


# -- waiting --------------------------------------------------------------------------------------
Wait = Callable[[float], None]  # waits the given seconds in some way (sleep, spin, keep-alive)


class GapPacer:
    """Waits the planned gap before each iteration: a zero-argument callable the runner times.

    ``gaps_s[i]`` and ``waits[i]`` are the gap and the way of waiting of iteration ``i``; a
    variant with a schedule changes either at its change points. Past the plan the last gap
    is repeated."""

    def __init__(self, gaps_s: Sequence[float], waits: Sequence[Wait]):
        if len(gaps_s) != len(waits) or not len(gaps_s):
            raise ValueError("one gap and one wait per iteration")
        self._plan = list(zip((float(g) for g in gaps_s), waits))
        self._i = 0

    def __call__(self) -> None:
        plan, i = self._plan, self._i
        gap, wait = plan[i] if i < len(plan) else plan[-1]
        self._i = i + 1
        if gap > 0:
            wait(gap)


class FramePacer:
    """Frame-rate deadlines: the gap is what remains of the frame interval.

    Deadlines are kept on the ideal grid ``start + i * interval`` (sleep's overshoot does not
    accumulate); a frame later than one whole interval moves the grid to now."""

    def __init__(self, interval_s: float, wait: Wait, clock: Callable[[], float] = time.perf_counter):
        self.interval = float(interval_s)
        self._wait, self._clock = wait, clock
        self._due: float | None = None
        self.late = 0  # frames that found their deadline already past

    def __call__(self) -> None:
        now = self._clock()
        due = now if self._due is None else self._due
        left = due - now
        if left > 0:
            self._wait(left)
        elif self._due is not None:
            self.late += 1
        nxt = due + self.interval
        if nxt < now:  # more than a whole interval behind: drop, do not bunch up
            nxt = now + self.interval
        self._due = nxt


# -- one variant's plan ------------------------------------------------------------------------------
def plan_gaps(arrival: Arrival, gap_ms: float, pacing: str, *, warmup: int, iterations: int,
              schedule=None, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Requested gap (ms) and pacing of every iteration of a variant, warm-up first.

    With a schedule (``tracegen.run.schedule.Schedule``) the segments give the gaps of the
    measured iterations and warm-up uses the first segment. Poisson gaps come from a generator
    seeded by ``seed``, so a run with the same seed waits the same gaps."""
    rng = np.random.default_rng(seed)
    if schedule is None:
        n = warmup + iterations
        return arrival.gaps_ms(gap_ms, n, rng), [pacing] * n
    first = schedule.segments[0]
    gaps = [arrival.gaps_ms(first.gap_ms, warmup, rng)]
    pacings = [first.pacing or pacing] * warmup
    at = warmup
    for seg in schedule.segments:
        gaps.append(arrival.gaps_ms(seg.gap_ms, seg.iterations, rng, first_index=at - warmup))
        pacings += [seg.pacing or pacing] * seg.iterations
        at += seg.iterations
    return np.concatenate(gaps), pacings


def make_arrival_pacer(arrival: Arrival, gap_ms: float, pacing: str, wait_for: Callable[[str], Wait], *,
                       warmup: int, iterations: int, schedule=None, seed: int = 0) -> Callable[[], None]:
    """The zero-argument pacer of one variant; ``wait_for(pacing)`` gives the wait function of a
    pacing mode (sleep, spin, keep-alive on the device)."""
    if pacing == "none" or (schedule is None and gap_ms <= 0):
        return _no_wait
    if arrival.kind == "fps":
        if schedule is not None:
            raise ConfigError("--schedule changes gaps, which frame-rate pacing computes itself",
                              "use --schedule with --arrival fixed|poisson|burst:N, or --fps without --schedule")
        return FramePacer(gap_ms / 1000.0, wait_for(pacing))
    gaps, pacings = plan_gaps(arrival, gap_ms, pacing, warmup=warmup, iterations=iterations,
                              schedule=schedule, seed=seed)
    waits = {p: wait_for(p) for p in set(pacings)}
    return GapPacer(gaps / 1000.0, [waits[p] for p in pacings])


def _no_wait() -> None:
    pass


def waiter(pacing: str, device) -> Wait:
    """How a gap of some seconds is spent: sleep, busy-wait, or the device's keep-alive work."""
    if pacing == "sleep":
        return time.sleep
    if pacing == "spin":
        from tracegen.run.pacing import spin_wait

        return spin_wait
    if pacing == "keepalive":
        if not device.supports_keepalive:
            raise ConfigError(f"--pacing keepalive needs a GPU backend (the {device.kind} device has nothing to keep busy)",
                              "use --pacing sleep,spin on the CPU")
        return device.keepalive
    raise ConfigError(f"unknown pacing {pacing!r}", "choose from: sleep, spin, keepalive")
