#!/usr/bin/env bash
# The GPU-side preparations that need no .NET: export the random-weight architectures (export_models.py) and time
# the peers (peers.py), one after the other so that the peers have the card to themselves. It can run detached
# while the build is still being shipped; tools/gpu/measure.sh waits for its marker before it touches the GPU.
#
#   tools/gpu/baselines.sh EXTRA_DIR RESULTS_DIR EXPORT_DIR
set -u
extra=$(realpath "$1") res=$2 exported=$3
mkdir -p "$res" "$exported"
touch "$res/.baselines-started"
export PYTHONUNBUFFERED=1
echo "== $(date +%T) export" >> "$res/baselines.log"
timeout 300 python3 "$extra/export_models.py" "$exported" > "$res/export.log" 2>&1
echo "== $(date +%T) peers" >> "$res/baselines.log"
timeout 300 python3 "$extra/peers.py" "$extra/minilm-vocab.txt" "$res" > "$res/peers.log" 2>&1
echo "== $(date +%T) done" >> "$res/baselines.log"
touch "$res/.baselines-done"
