#!/usr/bin/env bash
# session 9 probe (temporary): backward causal block order / diagonal-only mask A/B, and L2/DRAM counters at 16k
set -u
export PYTHONPATH=$PWD/src:$PWD/scripts PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
cd scripts
python3 ab_backward.py 16384 D=128 HEAD_GROUP=1 HEAD_GROUP=2 HEAD_GROUP=4 HEAD_GROUP=16 MASK_DIAG=True 2>&1 | tee $OUT/ab16k.txt
python3 ab_backward.py 4096 HEAD_GROUP=2 HEAD_GROUP=4 HEAD_GROUP=16 MASK_DIAG=True 2>&1 | tee $OUT/ab4k.txt
cd ..
M=lts__t_sector_hit_rate.pct,dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,lts__t_sectors_op_red.sum
for c in bwd128c_16384 cudnn_bwd128c_16384 bwd128_16384 cudnn_bwd128_16384; do
  ncu --clock-control none --profile-from-start off --metrics $M --print-units base python3 scripts/ncu_target.py $c > $OUT/ncu_$c.txt 2>&1
  echo "== $c"; grep -E "^  [a-zA-Z_].*\(|lts__|dram__|gpu__time|per_second|hmma" $OUT/ncu_$c.txt | head -40
done
