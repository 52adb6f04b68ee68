#!/usr/bin/env bash
# Nsight Compute reports (text) of the named scripts/ncu_target.py cases, one file each under $OUT/ncu/, packed into
# $OUT/ncu.tgz; prints each profiled kernel's duration, tensor-pipe and shared-memory figures.
#   bash scripts/ncu_profile.sh bwd128 cudnn_bwd128 gemm4096
set -u
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p "$OUT/ncu"
SECTIONS="--section SpeedOfLight --section LaunchStats --section Occupancy --section ComputeWorkloadAnalysis
  --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats
  --section SchedulerStats --section InstructionStats --section SourceCounters"
METRICS="sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__cycles_active.avg"
for c in "$@"; do
  ncu --clock-control none --profile-from-start off $SECTIONS --metrics "$METRICS" --print-units base \
    python3 scripts/ncu_target.py "$c" > "$OUT/ncu/$c.txt" 2>&1
  echo "== $c"
  grep -E "^  [a-zA-Z_].*\(|Duration|hmma_cycles_active|Registers Per|Block Size|Grid Size|Dynamic Shared|mem_shared.sum|Warp Cycles Per Issued|No kernels" "$OUT/ncu/$c.txt" | head -40
done
tar czf "$OUT/ncu.tgz" -C "$OUT" ncu
