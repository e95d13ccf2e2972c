#!/usr/bin/env bash
# The service against raw ONNX Runtime on the same model, cores and real sentences (issue 12, goal 1): useful
# (non-padding) tokens/s of the one-machine default front over HTTP (CLIENTS clients, each sending requests of BATCH of
# the embedding oracle's texts, Bench's embed-oracle scenario), and of raw ONNX Runtime in the Bench process while the
# front idles (Bench's encoder scenario on the same model.onnx, ONNX Runtime's default threads, one caller): 32 × 32
# random tokens (no padding: the ceiling), and the oracle's token ids in batches of 32 (as they come, and longest
# first). Rounds alternate which goes first, so that a shared machine weighs on both alike.
#
# During each service run it also records where the CPU went: the front's threads by name from /proc (batcher
# workers = forward passes; ONNX Runtime's own pool threads; .NET thread-pool workers = HTTP, JSON, Orleans calls,
# tokenization; GC and JIT), the client's CPU, and the engine's metrics (time in forward passes, tokenization,
# padding share, queueing).
#
#   dotnet build -c Release Api.Front && dotnet build -c Release Bench
#   tools/bench/cpu-ceiling.sh [ROUNDS] [OUT_DIR]     # default 3 rounds; OUT_DIR keeps the JSON and the table
#
# Settings of the front pass through the environment (GPU_MAX_CONCURRENT=2 tools/bench/cpu-ceiling.sh measures the
# seed's admission). CLIENTS (8), BATCH (32), REQUESTS (96), SECONDS_RAW (raw, per workload; 4), ORACLE
# (../shared/oracles/embed-public.json), MODELS_DIR, BASE_PORT (48700) and FRONT_DLL (another build of the front, to
# compare commits) can be set too.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
seconds=${SECONDS_RAW:-4}
port=${BASE_PORT:-48700}
models=${MODELS_DIR:-$HOME/.cache/orleansgpu/models}
url="http://127.0.0.1:$port"
source tools/bench/lib.sh
oracle_load_settings
bench_begin
bench_quiet_env

MODELS_DIR="$models" ASPNETCORE_URLS="$url" dotnet "${FRONT_DLL:-Api.Front/$bin/Api.Front.dll}" >"$out/front.log" 2>&1 &
front=$!
pids+=("$front")
if ! wait_for_health "$url" 240; then tail -n 40 "$out/front.log"; exit 1; fi
onnx="$models/sentence-transformers/all-MiniLM-L6-v2/model.onnx"
[ -f "$onnx" ] || { echo "no $onnx"; exit 1; }

# threads: "name ticks" for every thread of the front (names cut at 15 characters, as Linux keeps them).
threads() {
  for t in /proc/"$front"/task/*; do
    # comm may hold spaces; utime and stime are fields 14 and 15 of stat, counted after the ")" that ends comm.
    local stat name
    stat=$(cat "$t/stat" 2>/dev/null) || continue
    name=$(cat "$t/comm" 2>/dev/null) || continue
    echo "${t##*/}|$name|$(echo "${stat##*) }" | awk '{print $12 + $13}')"
  done
}

raw() {
  dotnet "Bench/$bin/Bench.dll" --scenario encoder --device cpu --onnx "$onnx" --oracle "$oracle" \
    --shapes 32x32,32xoracle,32xoracle-sorted --seconds "$seconds" --out "$out/raw-$1.json" >/dev/null
}

service() {
  threads >"$out/threads-before-$1.txt"
  curl -sf "$url/metrics" >"$out/metrics-before-$1.txt"
  /usr/bin/env time -f "%U %S" -o "$out/client-cpu-$1.txt" dotnet "Bench/$bin/Bench.dll" --url "$url" --scenario embed-oracle \
    --oracle "$oracle" --requests "$requests" --concurrency "$clients" --batch "$batch" --out "$out/service-$1.json" >/dev/null
  threads >"$out/threads-after-$1.txt"
  curl -sf "$url/metrics" >"$out/metrics-after-$1.txt"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); commit $(git rev-parse --short HEAD);" \
  "load average at the start $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/machine.txt"
env | grep -E '^(GPU_|TORCH_DEVICE)' | tee -a "$out/machine.txt" || true
# Warm-up: the model's first passes and the JIT, on both sides.
dotnet "Bench/$bin/Bench.dll" --url "$url" --scenario embed-oracle --oracle "$oracle" --requests 16 --concurrency "$clients" --batch "$batch" >/dev/null
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then raw "$round"; service "$round"; else service "$round"; raw "$round"; fi
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"
python3 tools/bench/cpu-ceiling-report.py "$out" "$rounds" "$(getconf CLK_TCK)" | tee "$out/report.md"
