# session 5, device run 5: the backward's dQ in a warpgroup of its own (DQ_WG, D=128) against dQ by the consumers
export PYTHONPATH=$PWD/src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
mkdir -p $OUT/r
# (tests: run 5 first attempt, 23 passed)
cd scripts
python3 ab_backward.py 1024 D=128 DQ_WG=False,W=12 2>&1 | tee $OUT/r/ab1k.txt
python3 ab_backward.py 4096 D=128 DQ_WG=False,W=12 2>&1 | tee $OUT/r/ab4k.txt
python3 -c "import backward_breakdown as bb; bb.main(1024); bb.main(4096)" 2>&1 | tee $OUT/r/breakdown.txt
