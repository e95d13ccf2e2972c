#!/usr/bin/env bash
# What splitting one large request across hosts buys: one /bertscore request of PAIRS pairs (default 3,000), timed on
# clusters of 1, 2 and 3 silos on this machine (localhost clustering, an Api.Front in client mode), and on 3 silos
# with splitting off (GPU_SPLIT_MIN_TEXTS=0) as the control. Each cluster gets a warm-up request (model loads, JIT)
# and then ROUNDS timed ones, one at a time (Bench's bertscore scenario, --concurrency 1). Each row ends with the CPU
# time the cluster's processes (silos and front) spent per request, warm-up included: on a shared machine it moves
# less than the wall time, and says what splitting costs in work.
#
#   dotnet build -c Release Silo.Gpu && dotnet build -c Release Api.Front && dotnet build -c Release Bench
#   tools/bench/split-scaling.sh [ROUNDS] [OUT_DIR]     # default 1 round; OUT_DIR keeps Bench's JSON
#
# All silos share this machine's cores: on a CPU machine the figures say what the split costs and whether the silos
# together use the cores better than one; on a machine with a GPU per silo (TORCH_DEVICE=cuda:N is set per silo from
# its index when GPUS is given, e.g. GPUS=3), they give the speed-up. PAIRS, MODEL (default all-MiniLM-L6-v2),
# MODELS_DIR, TORCH_DEVICE and BASE_PORT (default 43000, nine ports from there) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-1}
out=${2:-}
pairs=${PAIRS:-3000}
model=${MODEL:-all-MiniLM-L6-v2}
base=${BASE_PORT:-43000}
source tools/bench/lib.sh
bench_begin
export MODEL_BERTSCORE="$model" ORLEANS_TLS=off
bench_quiet_env

# cluster SILOS SPLIT_MIN: starts SILOS silos and a front; leaves their pids in pids[].
cluster() {
  local silos=$1 split=$2 gateways=() i
  for i in $(seq 0 $((silos - 1))); do
    local device=()
    [ -n "${GPUS:-}" ] && device=(TORCH_DEVICE="cuda:$((i % GPUS))")
    env "${device[@]}" GPU_HOST_NAME="silo-$i" dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" \
      --Cluster:SiloPort=$((base + 2 * i)) --Cluster:PrimarySiloPort=$base --Cluster:GatewayPort=$((base + 2 * i + 1)) \
      >"$work/silo-$i.log" 2>&1 &
    pids+=($!)
    gateways+=($((base + 2 * i + 1)))
    [ "$i" -eq 0 ] && sleep 5 # the first silo holds membership
  done
  GPU_MAX_BATCH_SIZE=$((2 * pairs)) GPU_SPLIT_MIN_TEXTS=$split ASPNETCORE_URLS="http://127.0.0.1:$((base + 8))" \
    dotnet "Api.Front/$bin/Api.Front.dll" --Cluster:Mode=client --Cluster:Gateways="$(IFS=,; echo "${gateways[*]}")" \
    >"$work/front.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 240); do
    [ "$(curl -sf "http://127.0.0.1:$((base + 8))/health" | sed -n 's/.*"hosts":\([0-9]*\).*/\1/p')" = "$silos" ] && return 0
    sleep 1
  done
  tail -n 40 "$work"/*.log
  exit 1
}

# cpu_ticks: CPU time (user + system, in clock ticks) the cluster's processes have used so far.
cpu_ticks() {
  local total=0 pid
  for pid in "${pids[@]}"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

echo "| silos | splitting | scenario | requests × batch | concurrency | throughput | p50 ms | p99 ms | failures | CPU s per request |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for setup in "1 256" "2 256" "3 256" "3 0"; do
  read -r silos split <<<"$setup"
  cluster "$silos" "$split"
  label=$([ "$split" = 0 ] && echo off || echo "on ($split)")
  json=()
  [ -n "$out" ] && mkdir -p "$out" && json=(--out "$out/bertscore-$pairs-silos$silos-split$split.json")
  before=$(cpu_ticks)
  row=$(dotnet "Bench/$bin/Bench.dll" --url "http://127.0.0.1:$((base + 8))" --scenario bertscore --model "$model" \
    --requests "$rounds" --concurrency 1 --batch "$pairs" "${json[@]}" | tail -n 1)
  after=$(cpu_ticks)
  echo "| $silos | $label $row $(((after - before) / $(getconf CLK_TCK) / (rounds + 1))) |"
  stop
done
