#!/usr/bin/env bash
# Nsight Systems on the lent GPU, in one call: a run whose CUDA graphs are traced node by node
# (--nsys now asks for --cuda-graph-trace=node), a focused capture of a longer idle-delay run,
# both imported with `tracegen nsys-import`, analysed, and packed for the way back.
#
#   device command: source .gpu/setup.sh && bash benchmarks/gpu_nsys_check.sh
#   carry:          [".gpu"]
#
# Writes under $OUT: node.tgz and focused.tgz (run directories with their reports, SQLite
# exports and imported tables), summary.txt (what each step printed, sizes, timings).
set -uo pipefail
OUT=${OUT:-/tmp/out}
R=/tmp/nsyscheck
rm -rf "$R" && mkdir -p "$R" "$OUT"
exec > >(tee "$OUT/summary.txt") 2>&1
set -x
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
nsys --version
COMMON=(--model builtin:small --backend torch --precision fp16 --scenario idle --pipeline infer -q --out "$R")

# 1. graph kernels node by node: graph and eager, back to back and after 20 ms sleeps
time python3 -m tracegen run "${COMMON[@]}" --launch graph,eager --idle-ms 0,20 --pacing sleep \
  --iterations 80 --warmup 10 --nsys --run-id h200-nsys-node
# 2. focused capture: 300 iterations per variant, only 20 ms sleep variants, two windows each
time python3 -m tracegen run "${COMMON[@]}" --launch graph,eager --idle-ms 0,20,100 --pacing sleep \
  --iterations 300 --warmup 10 --nsys-variants '*20ms-sleep*' --nsys-iterations 5-25,260-280 \
  --run-id h200-nsys-focused

for run in h200-nsys-node h200-nsys-focused; do
  ls -la "$R/$run"
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print('nsys:', json.dumps(m.get('nsys'))[:600])" "$R/$run/manifest.json"
  time python3 -m tracegen nsys-import "$R/$run"
  python3 -m tracegen analyze "$R/$run" --json > "$R/$run/analysis.json"
  python3 -m tracegen analyze "$R/$run" | head -40
  du -sh "$R/$run"/*
done

# The full-run report size the focused capture avoided: the same grid without the focus, 60 iterations.
time python3 -m tracegen run "${COMMON[@]}" --launch graph,eager --idle-ms 0,20,100 --pacing sleep \
  --iterations 60 --warmup 10 --nsys --run-id h200-nsys-unfocused-60
ls -la "$R/h200-nsys-unfocused-60"/*.nsys-rep

tar czf "$OUT/node.tgz" -C "$R" h200-nsys-node
tar czf "$OUT/focused.tgz" -C "$R" h200-nsys-focused
ls -la "$OUT"
