"""Host work around inference: make a frame, resize and normalise it, and pick the top-k.

Real work with the cost profile of a video pipeline's pre/post-processing, done in place into
the (pinned) input buffer so the timed loop allocates as little as possible.
"""

from __future__ import annotations

import numpy as np

# ImageNet normalisation, as most vision models expect.
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
SOURCE_FRAMES = 4


class FrameSource:
    """A few fixed-seed camera frames at 1.5x the model's resolution, cycled per image."""

    def __init__(self, image_shape: tuple[int, ...], seed: int = 0):
        channels, height, width = image_shape
        self.channels = channels
        src_h, src_w = max(1, height * 3 // 2), max(1, width * 3 // 2)
        rng = np.random.default_rng(seed)
        self.frames = rng.integers(0, 256, size=(SOURCE_FRAMES, src_h, src_w, 3), dtype=np.uint8)
        # Nearest-neighbour resize as precomputed index vectors.
        self.rows = (np.arange(height) * src_h // height).astype(np.intp)
        self.cols = (np.arange(width) * src_w // width).astype(np.intp)
        self.scale = (1.0 / (255.0 * _STD))[:channels].astype(np.float32)
        self.offset = (_MEAN / _STD)[:channels].astype(np.float32)
        self._counter = 0

    def fill(self, batch_buffer: np.ndarray) -> None:
        """Write the next ``len(batch_buffer)`` frames, resized and normalised, into the buffer."""
        for slot in batch_buffer:
            frame = self.frames[self._counter % SOURCE_FRAMES]
            self._counter += 1
            resized = frame[self.rows[:, None], self.cols[None, :], : self.channels]  # H, W, C
            np.multiply(resized.transpose(2, 0, 1), self.scale, out=slot, casting="unsafe")
            np.subtract(slot, self.offset, out=slot, casting="unsafe")


def top_k(output: np.ndarray, k: int = 5) -> np.ndarray:
    """Indices of the k best classes per image (unsorted within the k, as a detector's NMS
    input would be)."""
    flat = output.reshape(output.shape[0], -1)
    k = min(k, flat.shape[1])
    return np.argpartition(flat, flat.shape[1] - k, axis=1)[:, -k:]
