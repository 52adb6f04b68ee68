#!/usr/bin/env bash
# The GPU run of record, in two parts (each fits one 10-minute device call); logs and results under $OUT, packed
# into $OUT/results.tgz (the device tool returns few files).
#   part 1: every GPU test, the GPT example, the GEMM benchmark, the host-overhead profile
#   part 2: the attention benchmarks (forward, backward, warp-level forward)
# Usage: PYKITTENS_COMMIT=<hash> bash scripts/final_gpu_run.sh 1|2
set -u
# the device's copy of the tree may carry stale git metadata: name the commit from the machine that has the repo
: "${PYKITTENS_COMMIT:?set PYKITTENS_COMMIT=<short hash of the tree being run>}"
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p "$OUT/results"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit,driver_version --format=csv > "$OUT/gpu.txt"
if [ "${1:-1}" = 1 ]; then
  python3 -m pytest tests -m gpu -p no:cacheprovider -rf > "$OUT/gpu_tests.log" 2>&1
  tail -3 "$OUT/gpu_tests.log"
  python3 examples/gpt_training.py --steps 300 --out "$OUT/results" 2>/dev/null | tail -1
  suites=("gemm")
  python3 scripts/profile_host.py > "$OUT/results/host_profile.txt" 2>&1
else
  suites=("attention" "attention --backward" "attention --kernel warp --quick")
fi
for args in "${suites[@]}"; do
  python3 -m pykittens.bench $args --out "$OUT/results" 2>&1 | grep -v "it/s" >> "$OUT/bench.log"
done
grep -E "wrote|Error|Traceback" "$OUT/bench.log"
tar czf "$OUT/results.tgz" -C "$OUT" results
