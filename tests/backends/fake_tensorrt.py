"""A stand-in for the parts of the TensorRT 10 Python API the backend uses, and a host-memory
device, so the backend's logic (profiles, cache keys, binding by name, errors) runs without a GPU."""

from __future__ import annotations

import types

import numpy as np


def make_fake_trt(*, refuse_engine: bool = False, parse_ok: bool = True, fp16_flag: bool = True,
                  version: str = "10.99.0-fake"):
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.calls = {"builds": 0, "profiles": [], "flags": [], "addresses": {}, "shapes": {}, "executes": 0}

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    class TensorIOMode:
        INPUT, OUTPUT = "in", "out"

    class BuilderFlag:
        if fp16_flag:  # removed in TensorRT 11 (strong typing only)
            FP16 = "fp16"

    class MemoryPoolType:
        WORKSPACE = "workspace"

    class DataType:
        FLOAT = "float"

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            trt.calls["profiles"].append((name, lo, opt, hi))
            trt.profile = (lo, opt, hi)

    class Config:
        def set_memory_pool_limit(self, pool, size):
            pass

        def set_flag(self, flag):
            trt.calls["flags"].append(flag)

        def add_optimization_profile(self, profile):
            pass

    class Error:
        def desc(self):
            return "Unsupported operator FancyOp"

    class Parser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            return parse_ok

        def get_error(self, i):
            return Error()

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            trt.calls["builds"] += 1
            lo, opt, hi = trt.profile
            return f"ENGINE {lo[0]} {opt[0]} {hi[0]} {'/'.join(map(str, lo[1:]))}".encode()

    class Context:
        def set_input_shape(self, name, shape):
            trt.calls["shapes"][name] = tuple(shape)

        def set_tensor_address(self, name, ptr):
            trt.calls["addresses"][name] = ptr

        def get_tensor_shape(self, name):
            return (trt.calls["shapes"]["input"][0], 1000)

        def execute_async_v3(self, stream):
            trt.calls["executes"] += 1
            return True

    class Engine:
        num_io_tensors = 2

        def __init__(self, data):
            _, lo, opt, hi, image = data.decode().split()
            self.profile = (int(lo), int(opt), int(hi))
            self.image = tuple(int(x) for x in image.split("/"))

        def get_tensor_name(self, i):
            return ["input", "logits"][i]

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if name == "input" else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return DataType.FLOAT

        def get_tensor_shape(self, name):
            return (-1, *self.image) if name == "input" else (-1, 1000)

        def get_tensor_profile_shape(self, name, index):
            return [(b, *self.image) for b in self.profile]

        def create_execution_context(self):
            return Context()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            if refuse_engine or not data.startswith(b"ENGINE"):
                return None
            return Engine(data)

    trt.Logger, trt.TensorIOMode, trt.BuilderFlag, trt.MemoryPoolType = Logger, TensorIOMode, BuilderFlag, MemoryPoolType
    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, Parser, Runtime
    trt.nptype = lambda dtype: np.float32
    return trt


class FakeBuffer(int):
    freed = False

    def free(self):
        self.freed = True


class HostCudaDevice:
    """Looks like CudaDevice to a backend; memory is host memory and copies are memcpy."""

    kind = "cuda"
    stream = object()
    stream_handle = 7

    def __init__(self):
        self.allocs = []
        self.captured = 0

    def info(self):
        return {"name": "Fake GPU", "compute_capability": "9.0"}

    def host_buffer(self, shape, dtype):
        return np.zeros(shape, dtype)

    def alloc(self, nbytes):
        buf = FakeBuffer(1000 + len(self.allocs))
        self.allocs.append((buf, nbytes))
        return buf

    def copy_to_device(self, ptr, host):
        return lambda: None

    def copy_to_host(self, host, ptr):
        return lambda: None

    def synchronize(self):
        pass

    def capture_graph(self, work):
        self.captured += 1
        return work
