cd scripts; export PYTHONPATH=$PWD/../src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
for r in 1 2; do
python3 tune_attention.py 1024,2048,4096,16384 D=128 HALF_TURN=True > $OUT/half$r.log 2>&1
grep -A40 "^| D" $OUT/half$r.log; tail -1 $OUT/half$r.log
done
