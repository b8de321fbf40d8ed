"""The pycuda device layer: logic against a stand-in pycuda everywhere, behaviour on a real GPU
(marked gpu: sync modes taking effect, teardown at exit, copies, graphs, keep-alive)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest

from tracegen.backends import cuda as cuda_layer
from tracegen.backends.cuda import SYNC_FLAGS, CudaDevice, decode_sync_flags
from tracegen.errors import BackendError, MissingDependency

ROOT = Path(__file__).resolve().parents[2]


# -- a stand-in pycuda.driver and libcuda ----------------------------------------------------------
class FakeLib:
    """libcuda's flag calls on one context."""

    def __init__(self, flags=0, set_rc=0, ignore_set=False, has_set=True):
        self.flags = flags
        self.set_rc = set_rc
        self.ignore_set = ignore_set
        self.set_calls: list[int] = []
        self.primary_calls: list[int] = []
        if has_set:
            self.cuCtxSetFlags = self._set

    def cuCtxGetFlags(self, ref):
        ref._obj.value = self.flags
        return 0

    def _set(self, value):
        self.set_calls.append(value.value)
        if self.set_rc == 0 and not self.ignore_set:
            self.flags = value.value
        return self.set_rc

    def cuDeviceGet(self, ref, ordinal):
        ref._obj.value = ordinal.value
        return 0

    def cuDevicePrimaryCtxSetFlags_v2(self, dev, value):
        self.primary_calls.append(value.value)
        self.flags = value.value
        return 0


def make_fake_pycuda(count=1, lib=None, pending_s=0.0):
    drv = types.ModuleType("pycuda.driver")
    log = drv.log = {"push": 0, "pop": 0, "detach": 0, "memsets": 0, "freed": 0, "overlap": 0, "retained": 0}

    class Error(Exception):
        pass

    class MemoryError_(Error):
        pass

    class Context:
        handle = 0xC0

        def push(self):
            log["push"] += 1

        def pop(self):
            log["pop"] += 1

        def detach(self):
            log["detach"] += 1

    class Device:
        @staticmethod
        def count():
            return count

        def __init__(self, i):
            self.i = i

        def retain_primary_context(self):
            log["retained"] += 1
            return Context()

        def name(self):
            return "Fake GPU"

        def compute_capability(self):
            return (9, 0)

    class Stream:
        handle = 0x5EED

        def __init__(self, flags=0):
            assert flags == 1  # CU_STREAM_NON_BLOCKING
            self.busy_until = 0.0
            self.synced = 0

        def synchronize(self):
            self.synced += 1
            self.busy_until = 0.0

        def is_done(self):
            return time.perf_counter() >= self.busy_until

    class Event:
        def record(self, stream):
            pass

        def time_since(self, other):
            return 1.2345  # ms

    class Buf(int):
        def free(self):
            log["freed"] += 1

    def mem_alloc(n):
        if n > 1 << 40:
            raise MemoryError_("out of memory")
        return Buf(0x1000)

    def memset_d8_async(ptr, value, n, stream):
        if not stream.is_done():
            log["overlap"] += 1
        log["memsets"] += 1
        stream.busy_until = time.perf_counter() + pending_s

    drv.Error, drv.MemoryError, drv.Context, drv.Device, drv.Stream, drv.Event = Error, MemoryError_, Context, Device, Stream, Event
    drv.init = lambda: None
    drv.mem_alloc, drv.memset_d8_async = mem_alloc, memset_d8_async
    drv.mem_get_info = lambda: (1 << 30, 80 << 30)
    drv.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    drv.get_driver_version = lambda: 13000
    drv.lib = lib or FakeLib()
    return drv


@pytest.fixture
def fake_cuda(monkeypatch):
    def install(**kw):
        lib = kw.pop("lib", None) or FakeLib()
        drv = make_fake_pycuda(lib=lib, **kw)
        pkg = types.ModuleType("pycuda")
        pkg.driver = drv
        monkeypatch.setitem(sys.modules, "pycuda", pkg)
        monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
        monkeypatch.setattr(cuda_layer, "_libcuda", lambda: lib)
        return drv

    return install


@pytest.fixture
def exit_hooks(monkeypatch):
    hooks: list = []
    monkeypatch.setattr(cuda_layer.atexit, "register", hooks.append)
    monkeypatch.setattr(cuda_layer.atexit, "unregister", lambda fn: hooks.remove(fn) if fn in hooks else None)
    return hooks


# -- logic, everywhere ------------------------------------------------------------------------------
def test_unknown_sync_mode_is_a_clear_error():
    with pytest.raises(BackendError, match="unknown sync mode 'busy'.*auto, spin, yield, blocking"):
        CudaDevice(sync_mode="busy")


def test_sync_flag_values_match_cuda_h():
    assert SYNC_FLAGS == {"auto": 0, "spin": 1, "yield": 2, "blocking": 4}
    assert decode_sync_flags(0x4 | 0x8) == "blocking"  # other context flags are ignored
    assert decode_sync_flags(None) is None


def test_missing_pycuda_has_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(MissingDependency, match="pip install pycuda"):
        CudaDevice().activate()


@pytest.mark.parametrize("mode", list(SYNC_FLAGS))
def test_activate_sets_and_reads_back_the_sync_mode(fake_cuda, exit_hooks, mode):
    drv = fake_cuda(lib=FakeLib(flags=0x8 | 0x1))  # another flag bit set, spin from before
    dev = CudaDevice(sync_mode=mode)
    dev.activate()
    assert dev.applied_flags == SYNC_FLAGS[mode]
    assert drv.lib.flags == 0x8 | SYNC_FLAGS[mode]  # other bits kept
    assert dev.flag_method == "cuCtxSetFlags"
    assert dev.stream_handle == 0x5EED and dev.context_handle == 0xC0
    assert exit_hooks == [dev._exit_hook]
    assert dev.info()["context_sync_mode"] == mode
    dev.deactivate()
    assert (drv.log["push"], drv.log["pop"], drv.log["detach"]) == (1, 1, 1)
    assert exit_hooks == []


def test_old_driver_sets_the_primary_context_flags_before_retaining(fake_cuda, exit_hooks):
    drv = fake_cuda(lib=FakeLib(has_set=False))
    dev = CudaDevice(sync_mode="blocking")
    dev.activate()
    assert drv.lib.primary_calls == [4] and dev.applied_flags == 4
    assert dev.flag_method == "cuDevicePrimaryCtxSetFlags"
    dev.deactivate()


def test_refused_flags_undo_the_partial_activation(fake_cuda, exit_hooks):
    drv = fake_cuda(lib=FakeLib(set_rc=201))
    dev = CudaDevice(sync_mode="spin")
    with pytest.raises(BackendError, match="refused sync mode spin.*error 201"):
        dev.activate()
    assert (drv.log["push"], drv.log["pop"], drv.log["detach"]) == (1, 1, 1)
    assert dev.context is None and exit_hooks == []
    dev.deactivate()  # and again: nothing left to do
    assert drv.log["pop"] == 1


def test_flags_that_do_not_stick_are_an_error_not_a_silent_default(fake_cuda, exit_hooks):
    fake_cuda(lib=FakeLib(ignore_set=True))
    with pytest.raises(BackendError, match="sync mode yield could not be set.*it is auto"):
        CudaDevice(sync_mode="yield").activate()


def test_deactivate_is_idempotent_and_safe_before_activate(fake_cuda, exit_hooks):
    drv = fake_cuda()
    dev = CudaDevice()
    dev.deactivate()
    dev.activate()
    dev.activate()  # already active: no second push
    dev.deactivate()
    dev.deactivate()
    assert (drv.log["push"], drv.log["pop"], drv.log["detach"]) == (1, 1, 1)


def test_exit_hook_pops_a_context_left_active(fake_cuda, exit_hooks):
    drv = fake_cuda()
    dev = CudaDevice()
    dev.activate()
    hook = exit_hooks.pop()  # what atexit would call at interpreter exit
    hook()
    assert (drv.log["pop"], drv.log["detach"]) == (1, 1)
    dev.deactivate()
    assert drv.log["pop"] == 1


def test_no_gpu_is_a_clear_error(fake_cuda, exit_hooks):
    fake_cuda(count=0)
    with pytest.raises(BackendError, match="no CUDA device 0 \\(0 found\\)"):
        CudaDevice().activate()


def test_timer_reports_integer_nanoseconds(fake_cuda, exit_hooks):
    fake_cuda()
    dev = CudaDevice()
    dev.activate()
    t = dev.timer()
    t.start()
    t.stop()
    assert t.elapsed_ns() == 1_234_500 and isinstance(t.elapsed_ns(), int)
    dev.deactivate()
    assert t._start is None  # events destroyed with the context, not after it


def test_allocation_that_does_not_fit_names_free_memory(fake_cuda, exit_hooks):
    fake_cuda()
    dev = CudaDevice()
    dev.activate()
    with pytest.raises(BackendError, match="do not fit in GPU memory \\(1024 of 81920 MiB free\\)"):
        dev.alloc(1 << 41)
    dev.deactivate()


def test_keepalive_lasts_the_gap_with_one_operation_in_flight(fake_cuda, exit_hooks):
    drv = fake_cuda(pending_s=0.002)  # each memset "runs" 2 ms
    dev = CudaDevice()
    dev.activate()
    side = dev.side_stream
    t = time.perf_counter()
    dev.keepalive(0.03)
    elapsed = time.perf_counter() - t
    assert 0.03 <= elapsed < 0.045
    assert drv.log["overlap"] == 0  # never enqueued behind a running one
    assert 5 <= drv.log["memsets"] <= 16  # about one per 2 ms, not one per loop turn
    assert side.synced >= 1 and dev.keepalive_ops == drv.log["memsets"]
    dev.deactivate()
    assert drv.log["freed"] == 1  # the keep-alive buffer, freed before the context goes


# -- on a real GPU -----------------------------------------------------------------------------------
def _busy(dev, gib: int = 1, count: int = 120):
    """Enqueue ~50 ms of memsets (no kernel compilation needed)."""
    buf = dev.alloc(gib << 30)
    for _ in range(count):
        dev.cuda.memset_d8_async(int(buf), 1, gib << 30, dev.stream)
    return buf


@pytest.mark.gpu
def test_sync_mode_changes_how_the_host_waits():
    ratios = {}
    for mode in ("spin", "blocking", "spin"):  # switching back and forth on one primary context
        dev = CudaDevice(sync_mode=mode)
        dev.activate()
        try:
            assert dev.applied_flags == SYNC_FLAGS[mode]
            buf = _busy(dev)
            w, c = time.perf_counter(), time.thread_time()
            dev.synchronize()
            wall, cpu = time.perf_counter() - w, time.thread_time() - c
            buf.free()
        finally:
            dev.deactivate()
        assert wall > 0.01, "the GPU work was too short to tell the modes apart"
        ratios[mode] = cpu / wall
    assert ratios["spin"] > 0.7, ratios
    assert ratios["blocking"] < 0.3, ratios


@pytest.mark.gpu
def test_copies_timers_and_graph_replay():
    dev = CudaDevice(sync_mode="spin")
    dev.activate()
    try:
        host = dev.host_buffer((1 << 20,), np.float32)
        host[:] = np.arange(host.size, dtype=np.float32)
        back = dev.host_buffer((1 << 20,), np.float32)
        buf = dev.alloc(host.nbytes)
        timer = dev.timer()
        timer.start()
        dev.copy_to_device(int(buf), host)()
        dev.copy_to_host(back, lambda: int(buf))()
        timer.stop()
        dev.synchronize()
        assert np.array_equal(host, back) and timer.elapsed_ns() > 0
        small = dev.host_buffer((4096,), np.uint8)
        graph = dev.capture_graph(lambda: dev.cuda.memset_d8_async(int(buf), 7, small.nbytes, dev.stream))
        dev.synchronize()
        graph()
        dev.copy_to_host(small, lambda: int(buf))()
        dev.synchronize()
        assert (small == 7).all()
        info = dev.info()
        assert info["name"] and info["compute_capability"] and info["context_sync_mode"] == "spin"
    finally:
        dev.deactivate()


@pytest.mark.gpu
def test_keepalive_on_the_gpu():
    dev = CudaDevice(sync_mode="blocking")
    dev.activate()
    try:
        t = time.perf_counter()
        dev.keepalive(0.02)
        assert 0.02 <= time.perf_counter() - t < 0.03
        assert dev.keepalive_ops >= 5
        assert dev.side_stream.is_done()
    finally:
        dev.deactivate()


_EXIT_SCRIPTS = {
    "no deactivate": """
        dev = CudaDevice(sync_mode="blocking"); dev.activate()
        buf = dev.alloc(1 << 20); dev.keepalive(0.005)
    """,
    "exception": """
        dev = CudaDevice(sync_mode="spin"); dev.activate()
        raise RuntimeError("boom")
    """,
    "ctrl-c": """
        import os, signal
        dev = CudaDevice(); dev.activate()
        t = dev.timer(); t.start(); dev.keepalive(0.002); t.stop()
        os.kill(os.getpid(), signal.SIGINT); time.sleep(1)
    """,
    "twice": """
        for mode in ("spin", "blocking"):
            dev = CudaDevice(sync_mode=mode); dev.activate(); dev.synchronize(); dev.deactivate(); dev.deactivate()
        print("ok")
    """,
}


@pytest.mark.gpu
@pytest.mark.parametrize("case", list(_EXIT_SCRIPTS))
def test_process_exit_never_aborts_with_a_context_on_the_stack(case):
    code = "import time\nfrom tracegen.backends.cuda import CudaDevice\n" + textwrap.dedent(_EXIT_SCRIPTS[case])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "context stack was not empty" not in proc.stderr
    assert "PyCUDA WARNING" not in proc.stderr
    assert proc.returncode in (0, 1, 130, -2), proc.stderr  # never -6 (abort)
    if case == "twice":
        assert proc.returncode == 0 and "ok" in proc.stdout
