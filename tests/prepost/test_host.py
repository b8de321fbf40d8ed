"""Host preprocessing and postprocessing: the arithmetic, with and without OpenCV."""

import numpy as np
import pytest

from tracegen.prepost.host import MEAN, STD, HostPreprocess, bilinear_taps, softmax_top_k

cv2 = pytest.importorskip("cv2")


def _reference(frame, h, w):
    """cv2.resize INTER_LINEAR in float64, then ImageNet normalisation (C, H, W)."""
    resized = cv2.resize(frame.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    return ((resized / 255.0 - MEAN) / STD).transpose(2, 0, 1)


@pytest.mark.parametrize("library", ["opencv", "numpy"])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 0.02), (np.float16, 0.03)])
@pytest.mark.parametrize("src, dst", [((288, 288), (192, 192)), ((37, 91), (100, 60))])
def test_resize_and_normalise_match_opencv(library, dtype, tol, src, dst):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, size=(2, *src, 3), dtype=np.uint8)
    out = np.full((2, 3, *dst), np.nan, dtype=dtype)
    pre = HostPreprocess(3, *dst, library=library)
    assert pre.library == library
    pre(list(frames), out)
    for frame, got in zip(frames, out):
        # one uint8 step after normalisation is 1 / (255 * 0.225) = 0.017
        assert np.abs(got.astype(np.float64) - _reference(frame, *dst)).max() < tol


def test_taps_are_half_pixel_centred_and_clamped():
    i0, i1, w = bilinear_taps(4, 2)  # downscale by 2: centres at 0.5 and 2.5
    assert i0.tolist() == [0, 2] and i1.tolist() == [1, 3] and np.allclose(w, 0.5)
    i0, i1, w = bilinear_taps(2, 4)  # upscale: borders clamp
    assert i0.tolist() == [0, 0, 0, 1] and i1.tolist() == [1, 1, 1, 1]
    assert np.allclose(w, [0, 0.25, 0.75, 0])


def test_softmax_top_k_is_sorted_and_normalised():
    rng = np.random.default_rng(2)
    logits = rng.permutation(3000).reshape(3, 1000).astype(np.float32) / 300  # no ties
    idx, prob = softmax_top_k(logits, k=5)
    flat = logits.astype(np.float64)
    soft = np.exp(flat - flat.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    for row in range(3):
        assert idx[row].tolist() == np.argsort(-flat[row], kind="stable")[:5].tolist()
        assert np.allclose(prob[row], soft[row, idx[row]], rtol=1e-3)
    assert (np.diff(prob, axis=1) <= 0).all()
