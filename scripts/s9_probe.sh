#!/usr/bin/env bash
# session 9 probe (temporary): causal backward head-group size and diagonal-only mask, interleaved A/B
set -u
export PYTHONPATH=$PWD/src:$PWD/scripts PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
cd scripts
python3 ab_backward.py 16384 causal=1 HEAD_GROUP=1 HEAD_GROUP=2 HEAD_GROUP=4 MASK_DIAG=True 2>&1 | tee $OUT/ab16k.txt
python3 ab_backward.py 8192 causal=1 HEAD_GROUP=2 HEAD_GROUP=4 MASK_DIAG=True 2>&1 | tee $OUT/ab8k.txt
python3 ab_backward.py 4096 causal=1 HEAD_GROUP=2 HEAD_GROUP=4 HEAD_GROUP=16 MASK_DIAG=True 2>&1 | tee $OUT/ab4k.txt
python3 ab_backward.py 1024 causal=1 HEAD_GROUP=4 HEAD_GROUP=16 MASK_DIAG=True 2>&1 | tee $OUT/ab1k.txt
