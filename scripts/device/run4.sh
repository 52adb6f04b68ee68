# session 5, device run 4: GEMM epilogue overlap (OVERLAP) and clusters on the picked tile configs, two rounds
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p $OUT/r
python3 -m pytest tests/test_gemm.py -m gpu -p no:cacheprovider -o addopts="" -q > $OUT/r/tests.log 2>&1; grep -E "^FAILED|passed|failed" $OUT/r/tests.log | tail -3
python3 scripts/tune_gemm_tiles.py 2>&1 | tee $OUT/r/tiles4.txt
