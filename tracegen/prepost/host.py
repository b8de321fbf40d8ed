"""Host pre/postprocessing: resize raw frames and normalise them into the model's input buffer,
then softmax + top-k of the output, the way a CPU video pipeline does it.

The resize is bilinear (OpenCV ``INTER_LINEAR``, half-pixel centres, as ``cv2.resize`` and
``torch.nn.functional.interpolate(align_corners=False)`` do). OpenCV does the work when it is
installed (``opencv-python-headless``, a dependency): per frame one SIMD resize into a reused
uint8 image, then per channel one fused convert (``x * scale - offset`` straight into the
(pinned) float input buffer, fp16 included). benchmarks/bench_host_preprocess.py measures it
against the numpy code this replaced; without OpenCV the numpy fallback below does the same
bilinear arithmetic.
"""

from __future__ import annotations

import numpy as np

# ImageNet normalisation, as most vision models expect.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TOP_K = 5


def norm_constants(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``x_norm = x_uint8 * scale - offset`` per channel (one multiply-add per value)."""
    scale = (1.0 / (255.0 * STD))[:channels]
    offset = (MEAN / STD)[:channels]
    if channels > len(MEAN):
        scale = np.resize(scale, channels)
        offset = np.resize(offset, channels)
    return scale.astype(np.float32), offset.astype(np.float32)


def bilinear_taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices i0, i1 and weight of i1 for each destination index (half-pixel centres,
    clamped at the borders): the arithmetic of cv2.resize INTER_LINEAR and of the device kernel."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    pos = np.clip(pos, 0.0, src - 1)
    i0 = np.floor(pos).astype(np.intp)
    i1 = np.minimum(i0 + 1, src - 1)
    return i0, i1, (pos - i0).astype(np.float32)


def _opencv():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def host_library() -> str:
    """What host preprocessing uses here: ``opencv`` when it imports, else ``numpy``."""
    return "opencv" if _opencv() is not None else "numpy"


class HostPreprocess:
    """Resize + normalise uint8 HWC frames into a (B, C, H, W) buffer of the model's dtype."""

    def __init__(self, channels: int, height: int, width: int, library: str = "auto"):
        self.channels, self.height, self.width = channels, height, width
        self.scale, self.offset = norm_constants(channels)
        cv2 = _opencv() if library in ("auto", "opencv") else None
        if library == "opencv" and cv2 is None:
            from tracegen.optional import require

            require("cv2")
        self.cv2 = cv2
        self.library = "opencv" if cv2 is not None else "numpy"
        self._resized = np.empty((height, width, 3), dtype=np.uint8)
        self._plane = np.empty((height, width), dtype=np.uint8)
        self._taps: dict[tuple[int, int], tuple] = {}

    def __call__(self, frames, out: np.ndarray) -> None:
        for frame, slot in zip(frames, out):
            if self.cv2 is not None:
                self._opencv_one(frame, slot)
            else:
                self._numpy_one(frame, slot)

    def _opencv_one(self, frame: np.ndarray, slot: np.ndarray) -> None:
        cv2 = self.cv2
        depth = cv2.CV_16F if slot.dtype == np.float16 else cv2.CV_32F
        resized = cv2.resize(frame, (self.width, self.height), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        for c in range(self.channels):
            plane = cv2.extractChannel(resized, c % resized.shape[2], dst=self._plane)
            cv2.addWeighted(plane, float(self.scale[c]), plane, 0.0, -float(self.offset[c]), dst=slot[c], dtype=depth)

    def _numpy_one(self, frame: np.ndarray, slot: np.ndarray) -> None:
        key = frame.shape[:2]
        if key not in self._taps:
            (y0, y1, wy), (x0, x1, wx) = bilinear_taps(key[0], self.height), bilinear_taps(key[1], self.width)
            self._taps[key] = (y0, y1, wy[:, None, None], x0, x1, wx[None, :, None])
        y0, y1, wy, x0, x1, wx = self._taps[key]
        # Separable: rows first (on the source width), then columns; one channel gather at the end.
        rows = frame[y0].astype(np.float32)
        rows += (frame[y1] - rows) * wy
        rgb = rows[:, x0]
        rgb += (rows[:, x1] - rgb) * wx  # H, W, 3
        chans = rgb[:, :, np.arange(self.channels) % rgb.shape[2]].transpose(2, 0, 1)
        np.subtract(chans * self.scale[:, None, None], self.offset[:, None, None], out=slot, casting="unsafe")


def softmax_top_k(logits: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """Indices and probabilities of the k best classes per image, best first."""
    flat = logits.reshape(logits.shape[0], -1).astype(np.float32, copy=False)
    k = min(k, flat.shape[1])
    idx = np.argpartition(flat, flat.shape[1] - k, axis=1)[:, -k:]
    top = np.take_along_axis(flat, idx, axis=1)
    order = np.argsort(-top, axis=1)
    idx, top = np.take_along_axis(idx, order, axis=1), np.take_along_axis(top, order, axis=1)
    peak = flat.max(axis=1, keepdims=True)
    denom = np.exp(flat - peak).sum(axis=1, keepdims=True)
    return idx.astype(np.int32), np.exp(top - peak) / denom
