#!/usr/bin/env bash
# The GPU machine's preparations that need no .NET, one after the other: the checkpoint a user would have
# (make_checkpoints.py: deberta-xlarge-mnli's real architecture as a pytorch_model.bin in the models folder), then the
# peers on a card they have to themselves (../shared/gpu/peers.py: sentence-transformers and a bert_score replica).
# Started detached (setsid) in the first device call, while the build is shipped; tools/gpu/measure.py waits for its
# marker before it touches the GPU.
#
#   tools/gpu/baselines.sh EXTRA_DIR RESULTS_DIR MODELS_DIR
#
# EXPORTS=fp16 also exports the random-weight ONNX graphs of ../shared/gpu/export_models.py (the Python export path,
# for comparison with the graphs the service builds itself) into RESULTS_DIR/../measure-exported.
set -u
here=$(dirname "$(realpath "$0")")
extra=$(realpath "$1") res=$2 models=$3
mkdir -p "$res" "$models"
touch "$res/.baselines-started"
export PYTHONUNBUFFERED=1
echo "== $(date +%T) checkpoint" >> "$res/baselines.log"
timeout 240 python3 "$here/make_checkpoints.py" "$extra/minilm-vocab.txt" "$models" > "$res/checkpoints.log" 2>&1
echo "== $(date +%T) peers" >> "$res/baselines.log"
timeout 300 python3 "$extra/peers.py" "$extra/minilm-vocab.txt" "$res" > "$res/peers.log" 2>&1
if [[ " ${EXPORTS:-} " == *" fp16 "* ]]; then
  echo "== $(date +%T) export" >> "$res/baselines.log"
  timeout 300 python3 "$extra/export_models.py" "$res/../measure-exported" > "$res/export.log" 2>&1
fi
echo "== $(date +%T) done" >> "$res/baselines.log"
touch "$res/.baselines-done"
