"""The pycuda device layer on a real GPU. Marked gpu: skipped without one."""

import time

import numpy as np
import pytest

pytestmark = pytest.mark.gpu


@pytest.fixture
def device():
    from tracegen.backends.cuda import CudaDevice

    dev = CudaDevice(sync_mode="blocking")
    dev.activate()
    yield dev
    dev.deactivate()


def test_sync_mode_is_set_on_the_context(device):
    from tracegen.backends.cuda import SYNC_FLAGS

    assert device.applied_flags == SYNC_FLAGS["blocking"]


def test_copies_and_timers(device):
    host = device.host_buffer((1 << 20,), np.float32)
    host[:] = np.arange(host.size, dtype=np.float32)
    back = device.host_buffer((1 << 20,), np.float32)
    buf = device.alloc(host.nbytes)
    timer = device.timer()
    timer.start()
    device.copy_to_device(int(buf), host)()
    device.copy_to_host(back, lambda: int(buf))()
    timer.stop()
    device.synchronize()
    assert np.array_equal(host, back)
    assert timer.elapsed_ns() > 0


def test_captured_graph_replays_the_work(device):
    host = device.host_buffer((4096,), np.uint8)
    buf = device.alloc(host.nbytes)
    graph = device.capture_graph(lambda: device.cuda.memset_d8_async(int(buf), 7, host.nbytes, device.stream))
    device.synchronize()
    graph()
    device.copy_to_host(host, lambda: int(buf))()
    device.synchronize()
    assert (host == 7).all()


def test_keepalive_lasts_the_gap(device):
    t = time.perf_counter()
    device.keepalive(0.02)
    assert 0.02 <= time.perf_counter() - t < 0.03


def test_allocation_too_large_is_a_clear_error(device):
    from tracegen.errors import BackendError

    with pytest.raises(BackendError, match="do not fit in GPU memory"):
        device.alloc(1 << 50)
