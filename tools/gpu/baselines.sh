#!/usr/bin/env bash
# The GPU-side preparations that need no .NET: export the random-weight architectures (export_models.py, and
# export_deberta_fp32.py beside this script) and time the peers (peers.py), one after the other so that the peers have the card to themselves. It can run detached
# while the build is still being shipped; tools/gpu/measure.sh waits for its marker before it touches the GPU.
#
#   tools/gpu/baselines.sh EXTRA_DIR RESULTS_DIR EXPORT_DIR
set -u
extra=$(realpath "$1") res=$2 exported=$3
mkdir -p "$res" "$exported"
touch "$res/.baselines-started"
export PYTHONUNBUFFERED=1
# EXPORTS picks the exports (default both): "fp16" is export_models.py (MiniLM fp32/fp16, DeBERTa fp16), "fp32"
# the fp32 DeBERTa.
if [[ " ${EXPORTS:-fp16 fp32} " == *" fp16 "* ]]; then
  echo "== $(date +%T) export" >> "$res/baselines.log"
  timeout 300 python3 "$extra/export_models.py" "$exported" > "$res/export.log" 2>&1
fi
if [[ " ${EXPORTS:-fp16 fp32} " == *" fp32 "* ]]; then
  echo "== $(date +%T) export fp32 DeBERTa" >> "$res/baselines.log"
  timeout 300 python3 "$(dirname "$0")/export_deberta_fp32.py" "$exported/debxl40_fp32" > "$res/export-fp32.log" 2>&1
fi
echo "== $(date +%T) peers" >> "$res/baselines.log"
timeout 300 python3 "$extra/peers.py" "$extra/minilm-vocab.txt" "$res" > "$res/peers.log" 2>&1
echo "== $(date +%T) done" >> "$res/baselines.log"
touch "$res/.baselines-done"
