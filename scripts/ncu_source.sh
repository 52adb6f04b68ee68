#!/usr/bin/env bash
# Per-SASS-instruction stall samples and full section details of one scripts/ncu_target.py case's kernels matching
# a name regex: $OUT/src_<case>.csv (source page, SASS) and $OUT/det_<case>.txt, packed into $OUT/ncu_src.tgz.
#   bash scripts/ncu_source.sh bwd128 'pk_attention_bwd$'
set -u
export PYTHONPATH=src PYKITTENS_CACHE_DIR=/tmp/pkc PYTHONUNBUFFERED=1
c=$1; k=$2
mkdir -p "$OUT/src"
ncu --clock-control none --profile-from-start off -k "regex:$k" --section WarpStateStats --section SourceCounters \
  --section SpeedOfLight --section InstructionStats -o "/tmp/$c" -f python3 scripts/ncu_target.py "$c" > /dev/null 2>&1
ncu -i "/tmp/$c.ncu-rep" --page source --csv --print-source sass > "$OUT/src/src_$c.csv" 2>&1
ncu -i "/tmp/$c.ncu-rep" --page details --print-details all > "$OUT/src/det_$c.txt" 2>&1
wc -l "$OUT/src/src_$c.csv" "$OUT/src/det_$c.txt"
tar czf "$OUT/ncu_src.tgz" -C "$OUT" src
