#!/usr/bin/env bash
# One call on the lent H200 (from the checkout root, after staging with ../shared/gpu/stage.sh):
#   command: source .gpu/setup.sh && bash examples/pipeline/record_h200.sh     carry: [".gpu"]
# Writes under $OUT (at most 8 files): timings.txt (what ran, exit status, seconds; the default
# GPU run's wall time), summary.txt (per-variant medians of every run + `tracegen analyze`),
# log.txt (all output), gpu_tests.txt, bench_host_preprocess.txt and runs.tar.gz (the run
# directories). Budget: under 8 minutes; every step has its own time limit and later steps get
# what is left, so one failing step never costs the others.
set -u
OUT=${OUT:-/tmp/tracegen-out}
work=/tmp/tracegen-pipeline-runs
rm -rf "$work"; mkdir -p "$OUT" "$work"
T="$OUT/timings.txt"; LOG="$OUT/log.txt"
t0=$(date +%s)
: > "$T"; : > "$LOG"
left() { echo $(( 470 - ($(date +%s) - t0) )); }

step() {  # step NAME LIMIT_S OUTFILE COMMAND...
  local name=$1 limit=$2 out=$3; shift 3
  local budget; budget=$(left)
  (( limit > budget )) && limit=$budget
  if (( limit < 20 )); then echo "$name skipped: out of time" >> "$T"; return; fi
  local s e rc
  s=$(date +%s.%N)
  echo "=== $name: $* (limit ${limit}s)" >> "$LOG"
  timeout -s TERM -k 15 "$limit" "$@" >> "$out" 2>&1; rc=$?
  e=$(date +%s.%N)
  printf '%-24s rc=%-3s seconds=%s  %s\n' "$name" "$rc" "$(awk -v a="$s" -v b="$e" 'BEGIN{printf "%.1f", b - a}')" "$*" >> "$T"
}

{ nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,persistence_mode --format=csv
  lscpu | grep -E 'Model name|^CPU\(s\)'; python3 -c 'import torch, cupy, cv2, numpy; print("torch", torch.__version__, "cupy", cupy.__version__, "opencv", cv2.__version__, "numpy", numpy.__version__)'
} >> "$T" 2>&1

# 1. The idle-delay signature: engine alone vs full pipeline with device pre/postprocessing.
step pipeline-device 150 "$LOG" python3 -m tracegen run --model builtin:small --backend torch --precision fp16 \
  --scenario idle --idle-ms 0,20 --pacing sleep,spin,keepalive --launch graph --pipeline infer,full \
  --preprocess device --postprocess device --iterations 300 --warmup 20 -o "$work" --run-id h200-pipeline-device
# 2. The default GPU run, timed (its wall time is the README's number).
if grep -q '"status": "complete"' "$work/h200-pipeline-device/manifest.json" 2>/dev/null; then
  step default-gpu-run 330 "$LOG" python3 -m tracegen run -o "$work" --run-id h200-default
else  # device pre/postprocessing failed above (see log.txt): still time the default grid, on the host path
  step default-gpu-run-host 330 "$LOG" python3 -m tracegen run --preprocess host --postprocess host -o "$work" \
    --run-id h200-default
fi
# 3. Real GPU traces with known change points (for the change-point tests and benchmarks):
#    back to back, 20 ms gaps, back to back; the manifest's `arrivals` holds the true positions.
step schedule 70 "$LOG" python3 -m tracegen run --model builtin:small --backend torch --precision fp16 \
  --scenario idle --schedule 0:200,20:200,0:200 --pacing sleep,spin --launch graph,eager --pipeline infer \
  --warmup 20 -o "$work" --run-id h200-schedule
# 4. The same pipeline with host (OpenCV) pre/postprocessing, for the host share.
step pipeline-host 80 "$LOG" python3 -m tracegen run --model builtin:small --backend torch --precision fp16 \
  --scenario idle --idle-ms 0,20 --pacing sleep,spin --launch graph --pipeline full \
  --preprocess host --postprocess host --iterations 300 --warmup 20 -o "$work" --run-id h200-pipeline-host
# 5. Host preprocessing on this machine's CPU: OpenCV against the numpy code.
step bench-host-preprocess 45 "$OUT/bench_host_preprocess.txt" python3 benchmarks/bench_host_preprocess.py --rounds 5
# 6. Summaries (fast), then the GPU tests with what time is left.
step summarize 40 "$OUT/summary.txt" python3 examples/pipeline/summarize.py "$work"/h200-pipeline-device \
  "$work"/h200-pipeline-host "$work"/h200-schedule "$work"/h200-default
step analyze 40 "$OUT/summary.txt" python3 -m tracegen analyze "$work"/h200-pipeline-device
step gpu-tests 200 "$OUT/gpu_tests.txt" python3 -m pytest -q -p no:cacheprovider tests/gpu
tar czf "$OUT/runs.tar.gz" -C "$work" . 2>> "$LOG"
echo "total seconds=$(( $(date +%s) - t0 ))" >> "$T"
cat "$T"
