#!/usr/bin/env bash
# What one request costs the front itself. A Silo.Gpu and an Api.Front in client mode run as two processes on this
# machine (localhost clustering), so the CPU time each spends is counted apart: the front's is its own overhead per
# request (HTTP, key, JSON in and out, validation, routing, the grain call's serialization), whatever the model costs
# in the silo. Bench loads the front with, in turn:
#   health         GET /health: HTTP and the front's own answer, no grain call
#   status         GET /status: one grain call per host, no inference
#   embed-short    POST /embed of 1 short text, then of 32: the compute path, with the model's work in the silo
#
#   dotnet build -c Release Silo.Gpu && dotnet build -c Release Api.Front && dotnet build -c Release Bench
#   tools/bench/front-overhead.sh [ROUNDS] [OUT_DIR]      # default 3 rounds after a warm-up; OUT_DIR keeps Bench's JSON
#
# TORCH_DEVICE, MODELS_DIR and BASE_PORT (default 44000, three ports from there) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
out=${2:-}
base=${BASE_PORT:-44000}
source tools/bench/lib.sh
bench_begin
bench_quiet_env
export TORCH_DEVICE=${TORCH_DEVICE:-cpu}
start_silo_and_front "$base"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
scenarios='health 4000 8 1
status 2000 8 1
embed-short 1000 8 1
embed-short 200 4 32'

bench() {
  local round=$1 json=() f0 s0 f1 s1 row
  while read -r scenario requests concurrency batch; do
    json=()
    [ -n "$out" ] && [ "$round" != warm-up ] && mkdir -p "$out" && json=(--out "$out/$round-$scenario-$batch.json")
    f0=$(ticks "$front"); s0=$(ticks "$silo")
    row=$(dotnet "Bench/$bin/Bench.dll" --url "http://127.0.0.1:$base" --scenario "$scenario" --requests "$requests" \
      --concurrency "$concurrency" --batch "$batch" "${json[@]}" | tail -n 1)
    f1=$(ticks "$front"); s1=$(ticks "$silo")
    echo "| $round $row $(((f1 - f0) * 1000000 / hz / requests)) | $(((s1 - s0) * 1000000 / hz / requests)) |"
  done <<<"$scenarios"
}

echo "machine: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | scenario | requests × batch | concurrency | throughput | p50 ms | p99 ms | failures | front CPU µs per request | silo CPU µs per request |"
echo "|---|---|---|---|---|---|---|---|---|---|"
bench warm-up
for round in $(seq 1 "$rounds"); do
  bench "$round"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
