"""Whether this machine can keep time well enough for tests that judge gaps."""

import time

import numpy as np
import pytest


def timing_is_reliable() -> bool:
    """Whether this machine keeps time well enough to judge gaps: on a shared machine loaded far
    beyond its cores, a 2 ms sleep or spin comes back many ms late and no pacing can be judged."""
    from tracegen.run.pacing import spin_wait

    late = []
    for wait in (time.sleep, spin_wait) * 15:
        t0 = time.perf_counter()
        wait(0.002)
        late.append((time.perf_counter() - t0) * 1000 - 2.0)
    return float(np.percentile(late, 90)) < 0.5


def needs_timing():
    if not timing_is_reliable():
        pytest.skip("this machine is too loaded to keep 2 ms of time (p90 over 0.5 ms late); gaps cannot be judged")
