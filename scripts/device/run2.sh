# session 5, device run 2: GEMM tile widths at small sizes (+ cuBLAS's kernel there), D=64 forward with 64-key stages
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p $OUT/r
python3 -m pytest tests/test_gemm.py tests/test_attention_backward.py -m gpu -p no:cacheprovider -q > $OUT/r/tests.log 2>&1; tail -1 $OUT/r/tests.log
python3 scripts/tune_gemm_tiles.py 1000x1000x1000 1024x1024x1024 1536x1536x1536 2048x2048x2048 128x128x64 128x256x1024 2>&1 | tee $OUT/r/tiles.txt
for c in cublas1000x1000x1000 gemm1000x1000x1000 cublas1024x1024x1024; do
  ncu --clock-control none --profile-from-start off --section LaunchStats --section SpeedOfLight python3 scripts/ncu_target.py $c > $OUT/r/ncu_$c.txt 2>&1
  grep -E "^  [a-zA-Z_].*\(|Duration|Registers Per|Block Size|Grid Size|Dynamic Shared" $OUT/r/ncu_$c.txt | head -12
done
python3 scripts/tune_attention.py 1024 64 2>&1 | tee $OUT/r/attn1k.txt
python3 scripts/tune_attention.py 2048 64 2>&1 | tee $OUT/r/attn2k.txt
tar czf $OUT/r2.tgz -C $OUT r
