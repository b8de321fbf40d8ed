"""Host preprocessing: resize a raw camera frame and normalise it into the model's input buffer.

Compares, per frame (median over interleaved rounds, one process):
  * numpy-nearest: the numpy code tracegen 0.1 used (nearest-neighbour gather, two passes);
  * numpy-bilinear: tracegen's fallback without OpenCV (same arithmetic as cv2 INTER_LINEAR);
  * opencv: what tracegen uses (cv2.resize INTER_LINEAR, then one fused convert per channel
    straight into the float buffer);
  * opencv+numpy: cv2.resize, then numpy normalise (to show where the time goes);
  * pillow+numpy: Pillow's bilinear resize, then numpy normalise (when Pillow is installed).
Source frames are 1.5x the model resolution, as tracegen's frame source makes them.

    python benchmarks/bench_host_preprocess.py [--rounds 15] [--sizes tiny,small,large] [--dtype float32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracegen.prepost.host import HostPreprocess, norm_constants  # noqa: E402

SIZES = {"tiny": (192, 192), "small": (448, 768), "large": (576, 1024)}


def numpy_nearest(h, w, sh, sw):
    """tracegen 0.1's preprocessing (nearest neighbour by index vectors, multiply then subtract)."""
    rows = (np.arange(h) * sh // h).astype(np.intp)
    cols = (np.arange(w) * sw // w).astype(np.intp)
    scale, offset = (s.reshape(3, 1, 1) for s in norm_constants(3))

    def run(frame, slot):
        resized = frame[rows[:, None], cols[None, :], :3]
        np.multiply(resized.transpose(2, 0, 1), scale, out=slot, casting="unsafe")
        np.subtract(slot, offset, out=slot, casting="unsafe")
    return run


def opencv_numpy(h, w):
    import cv2

    scale, offset = (s.reshape(3, 1, 1) for s in norm_constants(3))
    tmp = np.empty((h, w, 3), np.uint8)

    def run(frame, slot):
        r = cv2.resize(frame, (w, h), dst=tmp, interpolation=cv2.INTER_LINEAR)
        np.multiply(r.transpose(2, 0, 1), scale, out=slot, casting="unsafe")
        np.subtract(slot, offset, out=slot, casting="unsafe")
    return run


def pillow_numpy(h, w):
    from PIL import Image

    scale, offset = (s.reshape(3, 1, 1) for s in norm_constants(3))

    def run(frame, slot):
        r = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
        np.multiply(r.transpose(2, 0, 1), scale, out=slot, casting="unsafe")
        np.subtract(slot, offset, out=slot, casting="unsafe")
    return run


def methods(h, w, sh, sw):
    out = {"numpy-nearest": numpy_nearest(h, w, sh, sw)}
    fallback = HostPreprocess(3, h, w, library="numpy")
    out["numpy-bilinear"] = lambda f, s: fallback([f], s[None])
    try:
        fast = HostPreprocess(3, h, w, library="opencv")
        out["opencv"] = lambda f, s: fast([f], s[None])
        out["opencv+numpy"] = opencv_numpy(h, w)
    except Exception as exc:  # noqa: BLE001
        print(f"opencv unavailable: {exc}")
    try:
        out["pillow+numpy"] = pillow_numpy(h, w)
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=10, help="frames per method per round")
    ap.add_argument("--sizes", default="tiny,small,large")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    args = ap.parse_args()
    try:
        import cv2

        print(f"opencv {cv2.__version__}, {cv2.getNumThreads()} threads; numpy {np.__version__}")
    except ImportError:
        print(f"numpy {np.__version__} (no opencv)")
    print(f"\n| model input | source frame | method | median ms/frame | vs numpy-nearest |\n| --- | --- | --- | --- | --- |")
    for name in args.sizes.split(","):
        h, w = SIZES[name]
        sh, sw = h * 3 // 2, w * 3 // 2
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, size=(4, sh, sw, 3), dtype=np.uint8)
        slot = np.empty((3, h, w), dtype=args.dtype)
        ms = methods(h, w, sh, sw)
        times: dict[str, list[float]] = {m: [] for m in ms}
        for r in range(args.rounds + 1):
            for m, fn in ms.items():
                t0 = time.perf_counter_ns()
                for i in range(args.per_round):
                    fn(frames[i % 4], slot)
                if r:  # round 0 warms up
                    times[m].append((time.perf_counter_ns() - t0) / args.per_round / 1e6)
        base = statistics.median(times["numpy-nearest"])
        for m, t in times.items():
            med = statistics.median(t)
            print(f"| {name} {h}x{w} | {sh}x{sw} | {m} | {med:.3f} | {base / med:.1f}x |")


if __name__ == "__main__":
    main()
