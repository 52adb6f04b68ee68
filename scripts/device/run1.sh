export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p $OUT/r
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader
python3 -m pytest tests/test_gemm.py tests/test_attention_backward.py -m gpu -p no:cacheprovider -q 2>&1 | tail -3
python3 scripts/tune_gemm_tiles.py 2>&1 | tee $OUT/r/tiles.txt
python3 - <<'PY' 2>&1 | tee $OUT/r/breakdown.txt
import sys; sys.path.insert(0, "scripts")
import backward_breakdown as bb
bb.main(1024)
bb.main(4096)
PY
bash scripts/ncu_profile.sh gemm8192x8192x512 > $OUT/r/ncu_summary.txt 2>&1
grep -E "Duration|hmma|Warp Cycles" $OUT/r/ncu_summary.txt | head
cp $OUT/ncu.tgz $OUT/r/ 2>/dev/null
tar czf $OUT/r1.tgz -C $OUT r
