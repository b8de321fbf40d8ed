"""GPU tests in tests/backends are marked ``gpu`` and skipped where they cannot run.

``gpu`` alone needs an NVIDIA GPU (NVML sees one) and pycuda; tests that also use PyTorch ask for
the ``torch_gpu`` fixture, which additionally needs torch (with CUDA) and onnx2torch.
"""

from __future__ import annotations

import functools

import pytest


@functools.cache
def have_cuda() -> bool:
    from tracegen.backends.registry import cuda_gpu_count
    from tracegen.optional import available

    return cuda_gpu_count() > 0 and available("pycuda.driver")


@functools.cache
def have_torch_cuda() -> bool:
    from tracegen.optional import available

    if not (have_cuda() and available("torch") and available("onnx2torch")):
        return False
    import torch

    return bool(torch.cuda.is_available())


@pytest.fixture(autouse=True)
def _skip_gpu_tests_without_gpu(request):
    if request.node.get_closest_marker("gpu") is not None and not have_cuda():
        pytest.skip("needs an NVIDIA GPU and pycuda")


@pytest.fixture
def torch_gpu():
    if not have_torch_cuda():
        pytest.skip("needs an NVIDIA GPU with torch (CUDA), pycuda and onnx2torch")
    import torch

    return torch
