"""The synthetic camera: a few fixed-seed raw frames (uint8, H x W x 3) at 1.5x the model's
resolution, which the pipeline's preprocessing (tracegen.prepost) resizes into the model's input."""

from __future__ import annotations

import numpy as np

SOURCE_FRAMES = 4


class FrameSource:
    def __init__(self, image_shape: tuple[int, ...], seed: int = 0):
        channels, height, width = image_shape
        src_h, src_w = max(1, height * 3 // 2), max(1, width * 3 // 2)
        rng = np.random.default_rng(seed)
        self.frames = rng.integers(0, 256, size=(SOURCE_FRAMES, src_h, src_w, 3), dtype=np.uint8)
        self._shape = (channels, height, width)
        self._pre = None
        self._counter = 0

    def fill(self, batch_buffer: np.ndarray) -> None:
        """Write the next ``len(batch_buffer)`` frames, resized and normalised on the host
        (tracegen.prepost.host), into the buffer."""
        if self._pre is None:
            from tracegen.prepost.host import HostPreprocess

            self._pre = HostPreprocess(*self._shape)
        n = len(batch_buffer)
        frames = [self.frames[(self._counter + j) % SOURCE_FRAMES] for j in range(n)]
        self._counter += n
        self._pre(frames, batch_buffer)
