"""The seed's video pipeline, recorded with tracegen.Recorder.

The seed's author timed their own loop: a video frame, GPU preprocessing with torch, inference,
postprocessing, then ``time.sleep`` to pace the frame rate, with ``torch.cuda.synchronize()``
and a timer around each stage. This script is that loop with the timers replaced by
``rec.step(...)``: host times, CUDA-event times on the pipeline's stream, NVTX ranges, NVML
telemetry, all written as a tracegen run that ``tracegen report`` explains.

Per iteration: ``idle`` (time.sleep of the gap) -> ``preprocess`` (next synthetic 720p frame into
a pinned buffer, async upload, resize to 224x224 and normalise on the GPU) -> ``infer``
(torchvision ResNet-18, random weights, no download; a small built-in CNN without torchvision)
-> ``d2h`` (logits to pinned host memory) -> ``sync`` (wait for the stream) -> ``postprocess``
(top-5 on the host). Without a CUDA GPU the same loop runs on the CPU (no stream, no events).

    python3 examples/recorder/seed_pipeline.py --out runs [--gaps 0,20,100] [--iterations 300] [--warmup 20]
    tracegen report runs
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import numpy as np  # noqa: E402

import tracegen  # noqa: E402


def build_model(torch, device: str, half: bool):
    try:
        import torchvision

        model, name = torchvision.models.resnet18(weights=None), "torchvision resnet18 (random weights)"
    except ImportError:  # a small CNN of our own, enough to keep the GPU busy for a while
        nn = torch.nn
        model = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(128, 1000))
        name = "built-in 3-layer CNN (random weights)"
    torch.manual_seed(0)
    model = model.eval().to(device)
    return (model.half() if half else model), name


class Frames:
    """Synthetic 720p video: a fixed noise texture that scrolls one column per frame."""

    def __init__(self, seed: int = 0):
        self.base = np.random.default_rng(seed).integers(0, 256, size=(720, 1280, 3), dtype=np.uint8)
        self.i = 0

    def next_into(self, out: np.ndarray) -> None:
        k = self.i % 1280
        out[:, : 1280 - k] = self.base[:, k:]
        out[:, 1280 - k:] = self.base[:, :k]
        self.i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs", help="directory that receives the run")
    ap.add_argument("--run-id", help="name of the run directory")
    ap.add_argument("--gaps", default="0,20,100", help="sleep before each frame, ms (comma list; 0 = back to back)")
    ap.add_argument("--iterations", type=int, default=300, help="measured frames per gap")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up frames per gap (recorded, flagged)")
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        sys.exit("this example needs PyTorch: pip install torch torchvision")
    cuda = torch.cuda.is_available() and not args.cpu
    device = "cuda" if cuda else "cpu"
    model, model_name = build_model(torch, device, half=cuda)
    dtype = torch.float16 if cuda else torch.float32
    stream = torch.cuda.Stream() if cuda else None
    frames = Frames()
    host_frame = torch.empty((720, 1280, 3), dtype=torch.uint8, pin_memory=cuda)
    frame_np = host_frame.numpy()
    host_logits = torch.empty((1, 1000), dtype=dtype, pin_memory=cuda)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device, dtype=dtype).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device, dtype=dtype).view(1, 3, 1, 1) * 255
    gaps = [float(g) for g in args.gaps.split(",") if g.strip()]

    def preprocess():
        frames.next_into(frame_np)
        x = host_frame.to(device, non_blocking=True).permute(2, 0, 1).unsqueeze(0).to(dtype)
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        return (x - mean) / std

    from tracegen.importers.common import new_run_id

    run_id = args.run_id or new_run_id(f"seed-pipeline-{device}", "recorder")
    rec = tracegen.Recorder(out=args.out, run_id=run_id, model=model_name, backend=f"torch {torch.__version__}",
                            telemetry=True, config={"gaps_ms": gaps, "iterations": args.iterations,
                                                    "warmup": args.warmup, "device": device})
    ctx = torch.cuda.stream(stream) if cuda else None
    with rec, torch.inference_mode():
        if ctx is not None:
            ctx.__enter__()
        for gap in gaps:
            with rec.variant(idle_ms=gap, pacing="sleep" if gap else "none", warmup=args.warmup,
                             iterations=args.iterations, sync_mode="auto"):
                for _ in range(args.warmup + args.iterations):
                    with rec.iteration():
                        with rec.step("idle"):
                            time.sleep(gap / 1000.0)
                        with rec.step("preprocess", stream=stream):
                            x = preprocess()
                        with rec.step("infer", stream=stream):
                            y = model(x)
                        with rec.step("d2h", stream=stream):
                            host_logits.copy_(y, non_blocking=cuda)
                        if cuda:
                            with rec.step("sync"):
                                stream.synchronize()
                        with rec.step("postprocess"):
                            np.argsort(host_logits.float().numpy()[0])[-5:]
        if ctx is not None:
            ctx.__exit__(None, None, None)
    print(f"recorded {len(gaps)} variants x {args.warmup + args.iterations} frames on {device} -> {rec.run_dir}")
    print(f"next: tracegen report {rec.run_dir}")


if __name__ == "__main__":
    main()
