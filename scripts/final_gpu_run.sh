#!/usr/bin/env bash
# The GPU run of record: every GPU test, the GPT example and the benchmarks, logs and results under $OUT.
set -u
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p "$OUT/results"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit,driver_version --format=csv > "$OUT/gpu.txt"
python3 -m pytest tests -m gpu -q -p no:cacheprovider -rf > "$OUT/gpu_tests.log" 2>&1
tail -3 "$OUT/gpu_tests.log"
python3 examples/gpt_training.py --steps 300 --out "$OUT/results" 2>/dev/null | tail -1
for args in "all" "attention --backward" "attention --kernel warp --quick"; do
  python3 -m pykittens.bench $args --out "$OUT/results" 2>&1 | grep -v "it/s" >> "$OUT/bench.log"
done
grep -E "wrote|Error|Traceback" "$OUT/bench.log"
