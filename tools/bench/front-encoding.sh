#!/usr/bin/env bash
# What the answer's encoding costs the front: the same /v1/embeddings request of 32 short texts, answered as JSON
# numbers (encoding_format float) and as base64, against a Silo.Gpu and a client-mode Api.Front running as two
# processes (as in front-overhead.sh), so the front's CPU time per request is counted apart from the model's.
# The difference is what writing 32 × 384 floats as decimal text costs the front.
#
#   dotnet build -c Release Silo.Gpu && dotnet build -c Release Api.Front
#   tools/bench/front-encoding.sh [REQUESTS] [ROUNDS]      # default 200 requests, 3 rounds (after a warm-up), 4 at once
#
# TORCH_DEVICE, MODELS_DIR and BASE_PORT (default 44100, three ports from there) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
requests=${1:-200}
rounds=${2:-3}
base=${BASE_PORT:-44100}
source tools/bench/lib.sh
bench_begin
bench_quiet_env
export TORCH_DEVICE=${TORCH_DEVICE:-cpu}
start_silo_and_front "$base"

# 32 texts of 12 to 20 words, the same in every request (the silo's cost does not matter here, only the front's).
texts=$(for i in $(seq 1 32); do
  words=$((12 + i % 9))
  printf '"%s"\n' "$(for w in $(seq 1 "$words"); do printf 'word%d ' $(((i * 7 + w * 13) % 97)); done | sed 's/ $//')"
done | paste -sd,)
for format in float base64; do
  printf '{"input": [%s], "model": "all-MiniLM-L6-v2", "encoding_format": "%s"}' "$texts" "$format" >"$work/$format.json"
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
load() {
  local format=$1 n=$2
  seq 1 "$n" | xargs -P 4 -I{} curl -sf -o /dev/null -H 'Content-Type: application/json' \
    --data-binary "@$work/$format.json" "http://127.0.0.1:$base/v1/embeddings"
}

echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | encoding | requests × texts | seconds | answer bytes | front CPU µs per request | silo CPU µs per request |"
echo "|---|---|---|---|---|---|---|"
for format in float base64; do load "$format" 20; done
for round in $(seq 1 "$rounds"); do
  for format in float base64; do
    bytes=$(curl -sf -H 'Content-Type: application/json' --data-binary "@$work/$format.json" "http://127.0.0.1:$base/v1/embeddings" | wc -c)
    f0=$(ticks "$front"); s0=$(ticks "$silo"); t0=$(date +%s.%N)
    load "$format" "$requests"
    f1=$(ticks "$front"); s1=$(ticks "$silo"); t1=$(date +%s.%N)
    echo "| $round | $format | $requests × 32 | $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') | $bytes | $(((f1 - f0) * 1000000 / hz / requests)) | $(((s1 - s0) * 1000000 / hz / requests)) |"
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
