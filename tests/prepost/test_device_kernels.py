"""The CUDA source of device pre/postprocessing, checked without a GPU: nvcc compiles it for
sm_90 (where a CUDA toolkit is installed), and its two kernels, compiled as host C++ with the
CUDA built-ins emulated (threads and a barrier for ``__syncthreads``), agree with the host code.
tests/gpu/test_device_prepost.py runs the same kernels on a GPU."""

import shutil
import subprocess

import numpy as np
import pytest

from tracegen.prepost.device import _SOURCE
from tracegen.prepost.host import HostPreprocess, norm_constants, softmax_top_k

SHIM = r"""
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>
struct D3 { long long x = 0, y = 0, z = 0; };
D3 blockIdx, blockDim; thread_local D3 threadIdx;
std::barrier<>* block_barrier;
#define __global__
#define __restrict__
#define __shared__ static
#define __syncthreads() block_barrier->arrive_and_wait()
#define __expf expf
using std::min;
inline void store(float* p, float v) { *p = v; }
inline float load(const float* p) { return *p; }
"""
MAIN = r"""
int main(int argc, char** argv) {
  int batch, sh, sw, dh, dw, ch, n, k;
  FILE* f = fopen(argv[1], "rb");
  fread(&batch, 4, 1, f); fread(&sh, 4, 1, f); fread(&sw, 4, 1, f); fread(&dh, 4, 1, f); fread(&dw, 4, 1, f);
  fread(&ch, 4, 1, f); fread(&n, 4, 1, f); fread(&k, 4, 1, f);
  float sc[4], of[4]; fread(sc, 4, 4, f); fread(of, 4, 4, f);
  std::vector<unsigned char> frames((size_t)batch * sh * sw * 3); fread(frames.data(), 1, frames.size(), f);
  std::vector<float> logits((size_t)batch * n); fread(logits.data(), 4, logits.size(), f); fclose(f);
  std::vector<float> input((size_t)batch * ch * dh * dw, -99.f);
  std::vector<int> idx((size_t)batch * k); std::vector<float> prob((size_t)batch * k);
  blockDim.x = 256;
  long long total = (long long)batch * dh * dw;
  for (long long b = 0; b < (total + 255) / 256; ++b)
    for (long long t = 0; t < 256; ++t) {
      blockIdx.x = b; threadIdx.x = t;
      resize_normalize<float>(frames.data(), input.data(), batch, sh, sw, dh, dw, ch,
                              sc[0], sc[1], sc[2], sc[3], of[0], of[1], of[2], of[3]);
    }
  for (int b = 0; b < batch; ++b) {
    blockIdx.x = b; std::barrier<> bar(256); block_barrier = &bar; std::vector<std::thread> threads;
    for (int t = 0; t < 256; ++t)
      threads.emplace_back([&, t] { threadIdx.x = t; softmax_topk<float>(logits.data(), n, k, idx.data(), prob.data()); });
    for (auto& th : threads) th.join();
  }
  f = fopen(argv[2], "wb");
  fwrite(input.data(), 4, input.size(), f); fwrite(idx.data(), 4, idx.size(), f); fwrite(prob.data(), 4, prob.size(), f);
  fclose(f);
}
"""


def _kernels_only() -> str:
    """The kernels without the fp16 helpers (inline PTX has no host equivalent)."""
    return _SOURCE[_SOURCE.index("// Bilinear resize"):]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no CUDA toolkit (nvcc) here")
def test_nvcc_compiles_every_instantiation(tmp_path):
    src = tmp_path / "k.cu"
    src.write_text(_SOURCE + """
template __global__ void resize_normalize<float>(const unsigned char*, float*, int, int, int, int, int, int,
    float, float, float, float, float, float, float, float);
template __global__ void resize_normalize<unsigned short>(const unsigned char*, unsigned short*, int, int, int, int,
    int, int, float, float, float, float, float, float, float, float);
template __global__ void softmax_topk<float>(const float*, int, int, int*, float*);
template __global__ void softmax_topk<unsigned short>(const unsigned short*, int, int, int*, float*);
""")
    proc = subprocess.run(["nvcc", "-arch=sm_90", "-std=c++14", "-cubin", "-o", str(tmp_path / "k.cubin"), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler to emulate the kernels")
    where = tmp_path_factory.mktemp("emu")
    exe = where / "emu"
    (where / "emu.cpp").write_text(SHIM + _kernels_only() + MAIN)
    proc = subprocess.run(["g++", "-std=c++20", "-O1", "-pthread", "-o", str(exe), str(where / "emu.cpp")],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode and "barrier" in proc.stderr:
        pytest.skip("this C++ compiler has no <barrier> (C++20)")
    assert proc.returncode == 0, proc.stderr
    return exe


@pytest.mark.parametrize("src, dst", [((37, 91), (100, 60)), ((288, 288), (192, 192))])
def test_emulated_kernels_agree_with_the_host(tmp_path, emulator, src, dst):
    exe = emulator
    rng = np.random.default_rng(7)
    batch, n, k = 2, 1000, 5
    frames = rng.integers(0, 256, size=(batch, *src, 3), dtype=np.uint8)
    logits = (rng.permutation(batch * n).reshape(batch, n) / 300.0).astype(np.float32)
    scale, offset = norm_constants(3)
    header = np.array([batch, *src, *dst, 3, n, k], dtype=np.int32).tobytes()
    consts = np.concatenate([np.resize(scale, 4), np.resize(offset, 4)]).astype(np.float32).tobytes()
    (tmp_path / "in.bin").write_bytes(header + consts + frames.tobytes() + logits.tobytes())
    subprocess.run([str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")], check=True, timeout=60)
    out = np.fromfile(tmp_path / "out.bin", dtype=np.float32)
    size = batch * 3 * dst[0] * dst[1]
    got = out[:size].reshape(batch, 3, *dst)
    idx = out[size:size + batch * k].view(np.int32).reshape(batch, k)
    prob = out[size + batch * k:].reshape(batch, k)
    want = np.empty_like(got)
    HostPreprocess(3, *dst, library="numpy")(list(frames), want)
    assert np.abs(got - want).max() < 0.02  # one uint8 step is 0.017
    ref_idx, ref_prob = softmax_top_k(logits, k)
    assert idx.tolist() == ref_idx.tolist()
    assert np.allclose(prob, ref_prob, rtol=1e-5)
