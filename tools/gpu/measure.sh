#!/usr/bin/env bash
# The GPU measurements of docs/PERFORMANCE.md, in one run on a lent GPU machine, the peers in the same run.
#
#   tools/gpu/measure.sh APP_DIR EXTRA_DIR RESULTS_DIR
#
# APP_DIR: a self-contained `dotnet publish` of Api.Front and Bench in one folder (tools/gpu/publish.sh).
# EXTRA_DIR: embed-public.json (the oracle) and ../shared/gpu's export_models.py, peers.py and minilm-vocab.txt. RESULTS_DIR receives every figure as JSON and every log.
#
# Steps: (0) tools/gpu/baselines.sh, unless it already ran: the exported architectures and the peers;
# (1) the real all-MiniLM-L6-v2 on CUDA against the CPU and the oracle; (2) the one-machine default over HTTP
# (/embed short and long, /bertscore on the deberta-xlarge-mnli architecture), with the default settings, with
# many one-text requests, and with larger requests; (3) model-only throughput of the exported architectures.
# Each step has its own time limit, so one that hangs costs its limit, not the run. STEPS picks the steps (default
# all: "parity default merged large encoder").
set -u
steps=" ${STEPS:-parity default merged large encoder} "
want() { [[ "$steps" == *" $1 "* ]]; }
app=$(realpath "$1") extra=$(realpath "$2") res=$3
mkdir -p "$res"
res=$(realpath "$res")
models=/tmp/measure-models exported=${EXPORT_DIR:-/tmp/measure-exported}
mkdir -p "$models" "$exported"
step() { echo "== $(date +%T) $*"; }

# The CUDA libraries may live in Python wheels rather than in ldconfig's cache; ICU may be missing (the
# tokenizer refuses to run without it, see UnicodeRules), so a copy travels in the app folder.
libs=""
for lib in libcuda.so.1 libcudart.so.13 libcublasLt.so.13 libcublas.so.13 libcurand.so.10 libcufft.so.12 libcudnn.so.9; do
  if ! ldconfig -p | grep -qF "$lib"; then
    found=$(timeout 60 find /usr /opt /root -name "$lib" 2>/dev/null | head -1)
    [ -n "$found" ] && libs="$libs:$(dirname "$found")"
  fi
done
ldconfig -p | grep -q 'libicuuc\.so' || libs="$libs:$app/icu"
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$res/gpu.txt"
nproc | tee -a "$res/gpu.txt"

# The exports and the peers (tools/gpu/baselines.sh) may already run, started while the build was shipped.
[ -e "$res/.baselines-started" ] || bash "$(dirname "$0")/baselines.sh" "$extra" "$res" "$exported"
step "waiting for the exports and the peers"
for _ in $(seq 1 420); do [ -e "$res/.baselines-done" ] && break; sleep 1; done
cat "$res/baselines.log"; tail -3 "$res/export.log"; grep -E "^(st_|bertscore_)" "$res/peers.log"

want parity && step "parity: the real all-MiniLM-L6-v2 on CUDA against the CPU and the sentence-transformers oracle" &&
timeout 180 "$app/Bench" --scenario parity --device "${DEVICE:-cuda}" --oracle "$extra/embed-public.json" \
  --models "$models" --out "$res/parity.json"; echo "parity exit $?"

# The deberta-xlarge-mnli architecture with random weights, and peers.py's stand-in tokenizer (MiniLM's
# vocabulary), so that both sides see the same token counts. Under the real name it runs in fp32 when that export
# exists (bert_score's default precision); the fp16 export goes under a name of its own.
install_deberta() { # $1: ONNX file, $2: model name
  [ -f "$1" ] || return 0
  local dir=$models/$2
  mkdir -p "$dir"
  # An export with external weights is a folder: link all of it, so that ONNX Runtime finds the weights.
  if [ "$(basename "$1")" = model.onnx ]; then ln -sf "$(dirname "$1")"/* "$dir/"; else ln -sf "$1" "$dir/model.onnx"; fi
  cp "$extra/minilm-vocab.txt" "$dir/vocab.txt"
  echo '{"model_type": "deberta", "num_hidden_layers": 40, "hidden_size": 1024, "max_position_embeddings": 512}' > "$dir/config.json"
  echo '{"model_max_length": 512}' > "$dir/tokenizer_config.json"
}
if [ -f "$exported/debxl40_fp32/model.onnx" ]; then
  install_deberta "$exported/debxl40_fp32/model.onnx" microsoft/deberta-xlarge-mnli
else
  install_deberta "$exported/debxl40_fp16.onnx" microsoft/deberta-xlarge-mnli
fi
fp16_deberta=""
if [ -f "$exported/debxl40_fp16.onnx" ]; then
  mkdir -p "$models/local/deberta-xlarge-mnli-fp16"
  ln -sf "$exported/debxl40_fp16.onnx" "$models/local/deberta-xlarge-mnli-fp16/model.onnx"
  cp "$extra/minilm-vocab.txt" "$models/local/deberta-xlarge-mnli-fp16/vocab.txt"
  cp "$models/microsoft/deberta-xlarge-mnli/"*.json "$models/local/deberta-xlarge-mnli-fp16/" 2>/dev/null
  fp16_deberta=local/deberta-xlarge-mnli-fp16
fi
deberta=$models/microsoft/deberta-xlarge-mnli

get() { python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:8765$1', timeout=5).read().decode())"; }
front_pid=""
start_front() { # $1: tag; then NAME=VALUE settings
  local tag=$1; shift
  env "$@" TORCH_DEVICE="${DEVICE:-cuda}" MODELS_DIR="$models" "$app/Api.Front" --urls http://127.0.0.1:8765 > "$res/front-$tag.log" 2>&1 &
  front_pid=$!
  for _ in $(seq 1 120); do
    get /health > /dev/null 2>&1 && return 0
    sleep 1
  done
  echo "front did not become healthy"; tail -20 "$res/front-$tag.log"
}
stop_front() { kill "$front_pid" 2>/dev/null; wait "$front_pid" 2>/dev/null; front_pid=""; }
http() { # $1: tag; then Bench arguments
  local tag=$1; shift
  timeout 150 "$app/Bench" --out "$res/http-$tag.json" "$@"
  echo "bench $tag exit $?"
}

# Without the exported DeBERTa, /bertscore is measured on MiniLM so that the path is still timed.
bertscore_model=""
[ -d "$deberta" ] || bertscore_model="--model all-MiniLM-L6-v2"

memory() { nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | tee "$res/gpu-memory-$1.txt"; }

if want default; then
step "service, default settings (GPU_MAX_CONCURRENT=2, at most 100 texts per request)"
start_front default
http default-embed-short --scenario embed-short --requests 400 --batch 100 --concurrency 16
http default-embed-long --scenario embed-long --requests 60 --batch 100 --concurrency 8
http default-bertscore --scenario bertscore --requests 40 --batch 50 --concurrency 4 $bertscore_model
[ -n "$fp16_deberta" ] && http default-bertscore-fp16 --scenario bertscore --requests 40 --batch 50 --concurrency 4 --model "$fp16_deberta"
http default-embed-single --scenario embed-short --requests 3000 --batch 1 --concurrency 64
get /info > "$res/info.json"
memory default
stop_front
fi

if want merged; then
step "service, requests merged into shared forward passes (GPU_MAX_CONCURRENT=64)"
start_front merged GPU_MAX_CONCURRENT=64
http merged-embed-single --scenario embed-short --requests 6000 --batch 1 --concurrency 64
http merged-embed-short --scenario embed-short --requests 400 --batch 100 --concurrency 16
http merged-embed-long --scenario embed-long --requests 60 --batch 100 --concurrency 8
http merged-bertscore --scenario bertscore --requests 40 --batch 50 --concurrency 8 $bertscore_model
memory merged
stop_front
fi

if want large; then
step "service, larger requests (GPU_MAX_BATCH_SIZE=1000, GPU_MAX_CONCURRENT=4)"
start_front large GPU_MAX_BATCH_SIZE=1000 GPU_MAX_CONCURRENT=4
http large-embed-short --scenario embed-short --requests 60 --batch 1000 --concurrency 8
http large-embed-long --scenario embed-long --requests 30 --batch 500 --concurrency 4
http large-bertscore --scenario bertscore --requests 20 --batch 100 --concurrency 4 $bertscore_model
stop_front
fi

want encoder || { step "done"; exit 0; }
step "model-only throughput (OnnxEncoder, one caller)"
encoder() {
  [ -f "$1" ] || { echo "skip $3: $1 missing"; return; }
  timeout 120 "$app/Bench" --scenario encoder --device "${DEVICE:-cuda}" --seconds 2 --onnx "$1" --shapes "$2" --out "$res/encoder-$3.json"
}
encoder "$models/sentence-transformers/all-MiniLM-L6-v2/model.onnx" 32x20,256x20,64x128,256x128 minilm-fp32
encoder "$exported/minilm_fp16.onnx" 32x20,256x20,64x128,256x128 minilm-fp16
encoder "$exported/debxl40_fp16.onnx" 64x32,256x32 debxl40-fp16
encoder "$exported/debxl40_fp32/model.onnx" 64x32,256x32 debxl40-fp32

step "done"
