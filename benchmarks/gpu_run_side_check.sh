#!/usr/bin/env bash
# The staged runner on a GPU in one call: the GPU tests of the run side, then a run killed with
# SIGKILL mid-way, resumed, and analysed. Results under $OUT (default ./out).
#   source .gpu/setup.sh && bash benchmarks/gpu_run_side_check.sh
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
python3 -m pytest -q -m gpu tests/gpu tests/backends > "$OUT/gpu_tests.txt" 2>&1; echo "gpu tests: exit $?" | tee -a "$OUT/summary.txt"
python3 -m tracegen run --scenario idle --idle-ms 0,20 --pacing sleep,spin --iterations 400 -q \
    --out "$OUT/runs" --run-id killed > "$OUT/run.txt" 2>&1 &
pid=$!; sleep 25; kill -9 "$pid"; wait "$pid"; echo "killed: exit $?" | tee -a "$OUT/summary.txt"
python3 -m tracegen analyze "$OUT/runs/killed" --json > "$OUT/before_resume.json" 2>>"$OUT/summary.txt"
python3 -m tracegen run --resume "$OUT/runs/killed" > "$OUT/resume.txt" 2>&1; echo "resume: exit $?" | tee -a "$OUT/summary.txt"
python3 -m tracegen analyze "$OUT/runs/killed" --json --fail-on critical > "$OUT/after_resume.json" 2>>"$OUT/summary.txt"
echo "analyze --fail-on critical: exit $?" | tee -a "$OUT/summary.txt"
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
for name in ("before_resume", "after_resume"):
    try:
        run = json.load(open(f"{sys.argv[1]}/{name}.json"))["run"]
        print(name, run["status"], run["variants_complete"], "/", run["variants_planned"], "variants,",
              run["measured_iterations"], "measured iterations, resumed:", len(run["resumed"]))
    except Exception as exc:
        print(name, "unreadable:", exc)
PY
