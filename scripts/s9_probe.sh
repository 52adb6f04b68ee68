#!/usr/bin/env bash
set -u
export PYTHONPATH=$PWD/src:$PWD/scripts PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
python3 -m pytest tests/test_attention_backward.py -m gpu -p no:cacheprovider -q 2>&1 | tail -3
python3 scripts/vs_cudnn.py 2>&1 | tee $OUT/vs_cudnn.txt
