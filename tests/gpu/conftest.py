import pytest

from tracegen.backends.registry import cuda_gpu_count
from tracegen.optional import available

HAVE_GPU = cuda_gpu_count() > 0 and available("torch") and available("pycuda.driver") and available("onnx2torch")


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with torch, pycuda and onnx2torch")
    for item in items:
        if "gpu" in item.keywords and not HAVE_GPU:
            item.add_marker(skip)
