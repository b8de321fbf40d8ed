"""Device pre/postprocessing on tracegen's CUDA stream: two small CUDA kernels through CuPy.

What a production video pipeline does (DeepStream, DALI, CV-CUDA): the host only copies the raw
uint8 HWC frame into page-locked memory; the upload is the raw frame (a quarter of the bytes of
an fp32 CHW tensor at the same resolution); bilinear resize + normalisation run on the GPU and
write the model's input tensor in its own layout and dtype; after inference softmax + top-k run
on the GPU and only the k indices and probabilities travel back.

The kernels are launched with CuPy (compiled once per process by NVRTC, no nvcc needed) on the
device's own stream through ``cupy.cuda.ExternalStream``, so the runner's CUDA events bracket
them like any other step and the order with the copies and the model is the stream's. Pointers
are passed as raw addresses: no CuPy allocation, nothing per iteration but the launch. The resize
matches ``cv2.resize(INTER_LINEAR)`` (half-pixel centres, clamped borders) and
``tracegen.prepost.host`` within one uint8 step; tests/gpu/test_device_prepost.py checks both.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tracegen.errors import BackendError
from tracegen.prepost.host import TOP_K, norm_constants

MAX_CHANNELS = 4
MAX_K = 32
_THREADS = 256

_SOURCE = r"""
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(unsigned short* p, float v) {
    unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v)); *p = h;
}
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const unsigned short* p) {
    float v; asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(*p)); return v;
}

// Bilinear resize (half-pixel centres, clamped) of uint8 HWC frames into normalised CHW T.
template <typename T>
__global__ void resize_normalize(const unsigned char* __restrict__ src, T* __restrict__ dst,
                                 int batch, int sh, int sw, int dh, int dw, int channels,
                                 float s0, float s1, float s2, float s3,
                                 float o0, float o1, float o2, float o3) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long total = (long long)batch * dh * dw;
    if (i >= total) return;
    int x = (int)(i % dw), y = (int)((i / dw) % dh);
    long long b = i / ((long long)dw * dh);
    float fy = fminf(fmaxf((y + 0.5f) * ((float)sh / dh) - 0.5f, 0.f), (float)(sh - 1));
    float fx = fminf(fmaxf((x + 0.5f) * ((float)sw / dw) - 0.5f, 0.f), (float)(sw - 1));
    int y0 = (int)fy, x0 = (int)fx;
    int y1 = min(y0 + 1, sh - 1), x1 = min(x0 + 1, sw - 1);
    float wy = fy - y0, wx = fx - x0;
    const unsigned char* f = src + b * sh * sw * 3;
    const unsigned char* r0 = f + (long long)y0 * sw * 3;
    const unsigned char* r1 = f + (long long)y1 * sw * 3;
    float sc[4] = {s0, s1, s2, s3}, of[4] = {o0, o1, o2, o3};
#pragma unroll
    for (int c = 0; c < 4; ++c) {  // unrolled, so sc/of stay in registers
        if (c >= channels) break;
        int k = c % 3;
        float top = r0[x0 * 3 + k] + (r0[x1 * 3 + k] - (float)r0[x0 * 3 + k]) * wx;
        float bot = r1[x0 * 3 + k] + (r1[x1 * 3 + k] - (float)r1[x0 * 3 + k]) * wx;
        float v = top + (bot - top) * wy;
        store(dst + ((b * channels + c) * dh + y) * (long long)dw + x, v * sc[c] - of[c]);
    }
}

// Softmax + top-k per row: one block per image; k rounds of a block-wide arg-max.
template <typename T>
__global__ void softmax_topk(const T* __restrict__ logits, int n, int k,
                             int* __restrict__ out_idx, float* __restrict__ out_prob) {
    __shared__ float sval[256];
    __shared__ int sidx[256];
    __shared__ int chosen[32];
    const T* row = logits + (long long)blockIdx.x * n;
    int t = threadIdx.x;
    float m = -3.4e38f;
    for (int j = t; j < n; j += blockDim.x) m = fmaxf(m, load(row + j));
    sval[t] = m; __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) { if (t < s) sval[t] = fmaxf(sval[t], sval[t + s]); __syncthreads(); }
    float peak = sval[0]; __syncthreads();
    float acc = 0.f;
    for (int j = t; j < n; j += blockDim.x) acc += __expf(load(row + j) - peak);
    sval[t] = acc; __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) { if (t < s) sval[t] += sval[t + s]; __syncthreads(); }
    float denom = sval[0]; __syncthreads();
    for (int r = 0; r < k; ++r) {
        float best = -3.4e38f; int bi = 0x7fffffff;
        for (int j = t; j < n; j += blockDim.x) {
            bool taken = false;
            for (int q = 0; q < r; ++q) taken |= (chosen[q] == j);
            float v = load(row + j);
            if (!taken && (v > best || (v == best && j < bi))) { best = v; bi = j; }
        }
        sval[t] = best; sidx[t] = bi; __syncthreads();
        for (int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (t < s) {
                float v = sval[t + s]; int vi = sidx[t + s];
                if (v > sval[t] || (v == sval[t] && vi < sidx[t])) { sval[t] = v; sidx[t] = vi; }
            }
            __syncthreads();
        }
        if (t == 0) {
            chosen[r] = sidx[0];
            out_idx[blockIdx.x * k + r] = sidx[0];
            out_prob[blockIdx.x * k + r] = __expf(sval[0] - peak) / denom;
        }
        __syncthreads();
    }
}
"""
_NAMES = ("resize_normalize<float>", "resize_normalize<unsigned short>",
          "softmax_topk<float>", "softmax_topk<unsigned short>")
_module_cache: dict[str, Any] = {}


def _kernels(cupy) -> dict[str, Any]:
    """Compile once per process (NVRTC, about a second) and keep the functions."""
    if not _module_cache:
        try:
            module = cupy.RawModule(code=_SOURCE, options=("-std=c++14",), name_expressions=_NAMES)
            for name in _NAMES:
                _module_cache[name] = module.get_function(name)
        except Exception as exc:  # noqa: BLE001 - NVRTC/driver errors come in several types
            _module_cache.clear()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"the device pre/postprocessing kernels do not compile here ({first})",
                               "use --preprocess host --postprocess host") from None
    return _module_cache


def _suffix(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return "float"
    if dtype == np.float16:
        return "unsigned short"
    raise BackendError(f"device pre/postprocessing handles float32 and float16 tensors, not {dtype}",
                       "use --preprocess host --postprocess host for this model")


class DevicePrepost:
    """Buffers and launches of device pre/postprocessing for one prepared batch.

    ``stage(frames)`` (host) copies raw frames into the page-locked staging buffer; ``upload``
    enqueues its copy to the device; ``preprocess`` enqueues the resize into the model's input
    (``device_input``, an address); ``postprocess`` enqueues softmax + top-k of the model's
    output (``device_output()``, an address that may change per launch) and ``download`` the
    copy of the small result into ``indices`` / ``probs`` (page-locked)."""

    def __init__(self, device, frame_shape: tuple[int, int, int], input_shape: tuple[int, ...], input_dtype,
                 output_shape: tuple[int, ...], output_dtype, device_input: int | None,
                 device_output: Callable[[], int] | None, k: int = TOP_K):
        from tracegen.optional import require

        cupy = require("cupy")
        kernels = _kernels(cupy)
        batch = int(input_shape[0])
        if device_input is not None and len(input_shape) != 4:
            raise BackendError(f"device preprocessing resizes frames into an NCHW image input; this input has shape "
                               f"{tuple(input_shape)}", "use --preprocess host for this model")
        # Only a device preprocess reads the image geometry: a model without an image input
        # (token ids, masks) can still have its output post-processed on the device.
        channels, height, width = (int(d) for d in input_shape[1:]) if device_input is not None else (0, 0, 0)
        if channels > MAX_CHANNELS:
            raise BackendError(f"device preprocessing writes up to {MAX_CHANNELS} channels, the model takes {channels}",
                               "use --preprocess host")
        self.batch = batch
        self._stream = cupy.cuda.ExternalStream(device.stream_handle)
        sh, sw, _ = frame_shape
        self.staging = device.host_buffer((batch, sh, sw, 3), np.uint8)
        self._raw = device.alloc(self.staging.nbytes)
        self._allocs = [self._raw]
        self.upload = device.copy_to_device(int(self._raw), self.staging)
        self.preprocess = None
        if device_input is not None:
            scale, offset = norm_constants(channels)
            sc = [np.float32(x) for x in np.resize(scale, MAX_CHANNELS)]
            of = [np.float32(x) for x in np.resize(offset, MAX_CHANNELS)]
            fn = kernels[f"resize_normalize<{_suffix(input_dtype)}>"]
            total = batch * height * width
            grid, block = ((total + _THREADS - 1) // _THREADS,), (_THREADS,)
            args = (np.uint64(int(self._raw)), np.uint64(int(device_input)), np.int32(batch), np.int32(sh),
                    np.int32(sw), np.int32(height), np.int32(width), np.int32(channels), *sc, *of)
            stream = self._stream

            def preprocess() -> None:
                with stream:
                    fn(grid, block, args)
            self.preprocess = preprocess
        self.postprocess = self.download = None
        self.indices = self.probs = None
        if device_output is not None:
            n = int(np.prod(output_shape[1:]))
            k = max(1, min(k, n, MAX_K))
            self.indices = device.host_buffer((batch, k), np.int32)
            self.probs = device.host_buffer((batch, k), np.float32)
            result = device.alloc(self.indices.nbytes + self.probs.nbytes)
            self._allocs.append(result)
            d_idx, d_prob = int(result), int(result) + self.indices.nbytes
            post = kernels[f"softmax_topk<{_suffix(output_dtype)}>"]
            tail = (np.int32(n), np.int32(k), np.uint64(d_idx), np.uint64(d_prob))
            stream, grid, block, u64 = self._stream, (batch,), (_THREADS,), np.uint64

            def postprocess() -> None:
                with stream:
                    post(grid, block, (u64(device_output()), *tail))
            self.postprocess = postprocess
            get_idx = device.copy_to_host(self.indices, lambda: d_idx)
            get_prob = device.copy_to_host(self.probs, lambda: d_prob)

            def download() -> None:
                get_idx()
                get_prob()
            self.download = download
        self._try_once(device)

    def _try_once(self, device) -> None:
        """Launch each kernel once before the timed loop (the input it writes is rewritten every
        iteration), so a GPU or CuPy that cannot run them fails here as one line."""
        try:
            self.upload()
            for launch in (self.preprocess, self.postprocess):
                if launch is not None:
                    launch()
            device.synchronize()
        except Exception as exc:  # noqa: BLE001 - CuPy and the driver raise several types
            self.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"device pre/postprocessing cannot run here ({type(exc).__name__}: {first})",
                               "use --preprocess host --postprocess host") from None

    def stage(self, frames) -> None:
        """Host part of device preprocessing: copy the raw frames into page-locked memory."""
        for slot, frame in zip(self.staging, frames):
            np.copyto(slot, frame)

    def close(self) -> None:
        """Free the device buffers now (the device would free them at deactivate otherwise, and
        a run prepares every batch size in turn)."""
        for buf in self._allocs:
            try:
                buf.free()
            except Exception:  # noqa: BLE001 - already freed with its context
                pass
        self._allocs = []
