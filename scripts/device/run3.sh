# session 5, device run 3: GEMM ring depth and wgmma lag for narrow tiles at small sizes
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p $OUT/r
python3 scripts/tune_gemm_tiles.py 2>&1 | tee $OUT/r/tiles3.txt
