# session 5, device run 6: 8-byte vector loads (lse/delta) + DQ_WG; GPU tests of the touched ops, main-kernel A/B
export PYTHONPATH=$PWD/src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p $OUT/r
python3 -m pytest tests/test_ops_memory_vectors.py tests/test_attention_backward.py tests/test_attention.py -m gpu -p no:cacheprovider -o addopts="" -q > $OUT/r/tests.log 2>&1; grep -E "^FAILED|passed|failed" $OUT/r/tests.log | tail -5
cd scripts
python3 ab_backward.py 1024 D=128 DQ_WG=False,W=12 2>&1 | tee $OUT/r/ab1k.txt
python3 ab_backward.py 4096 D=128 DQ_WG=False,W=12 2>&1 | tee $OUT/r/ab4k.txt
python3 -c "import backward_breakdown as bb; bb.main(1024); bb.main(4096)" 2>&1 | tee $OUT/r/breakdown.txt
