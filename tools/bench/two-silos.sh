#!/usr/bin/env bash
# What two silos on this machine's cores do against one (issue 12, goal 7): two clusters run at once, each a client-mode
# Api.Front over localhost clustering, one with one Silo.Gpu and one with two; Bench loads them in turn with the same
# real sentences (embed-oracle: CLIENTS clients, requests of BATCH of the embedding oracle's texts; too small to be
# split, so the front routes whole requests, least-busy), the order alternating from round to round. Each row ends
# with the CPU time the cluster's processes (silos and front) spent per request.
#
#   dotnet build -c Release Silo.Gpu && dotnet build -c Release Api.Front && dotnet build -c Release Bench
#   tools/bench/two-silos.sh [ROUNDS] [OUT_DIR]      # default 3 rounds after a warm-up; OUT_DIR keeps Bench's JSON
#
# Settings of the silos pass through the environment (defaults otherwise). CLIENTS (8), BATCH (32), REQUESTS (96),
# ORACLE (../shared/oracles/embed-public.json), MODELS_DIR and BASE_PORT (48600, twenty ports from there) can be set.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
out=${2:-$(mktemp -d)}
mkdir -p "$out"
base=${BASE_PORT:-48600}
source tools/bench/lib.sh
oracle_load_settings
bench_begin
bench_quiet_env
export ORLEANS_TLS=off
declare -A cluster_pids

# start NAME SILOS OFFSET: SILOS silos (the first holds membership) and a client-mode front on BASE_PORT+OFFSET+9.
start() {
  local name=$1 silos=$2 offset=$3 gateways=() i
  for i in $(seq 0 $((silos - 1))); do
    GPU_HOST_NAME="$name-$i" dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" \
      --Cluster:SiloPort=$((base + offset + 2 * i)) --Cluster:PrimarySiloPort=$((base + offset)) \
      --Cluster:GatewayPort=$((base + offset + 2 * i + 1)) >"$out/$name-silo-$i.log" 2>&1 &
    pids+=($!)
    cluster_pids[$name]+=" $!"
    gateways+=($((base + offset + 2 * i + 1)))
    # The others join once the first, which holds membership, listens.
    if [ "$i" -eq 0 ]; then
      wait_for_port $((base + offset))
    fi
  done
  ASPNETCORE_URLS="http://127.0.0.1:$((base + offset + 9))" dotnet "Api.Front/$bin/Api.Front.dll" --Cluster:Mode=client \
    --Cluster:Gateways="$(IFS=,; echo "${gateways[*]}")" >"$out/$name-front.log" 2>&1 &
  pids+=($!)
  cluster_pids[$name]+=" $!"
}

ready() {
  local port=$1 silos=$2
  for _ in $(seq 1 300); do
    [ "$(curl -sf "http://127.0.0.1:$port/health" | sed -n 's/.*"hosts":\([0-9]*\).*/\1/p')" = "$silos" ] && return 0
    sleep 1
  done
  tail -n 40 "$out"/*.log
  exit 1
}

cpu_ticks() {
  local total=0 pid
  for pid in ${cluster_pids[$1]}; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
  echo "$total"
}

start one 1 0
start two 2 10
ready $((base + 9)) 1
ready $((base + 19)) 2

declare -A port=([one]=$((base + 9)) [two]=$((base + 19)))
bench() {
  local name=$1 round=$2 count=$3 before after row
  before=$(cpu_ticks "$name")
  row=$(dotnet "Bench/$bin/Bench.dll" --url "http://127.0.0.1:${port[$name]}" --scenario embed-oracle --oracle "$oracle" \
    --requests "$count" --concurrency "$clients" --batch "$batch" --out "$out/$name-$round.json" | grep '^| embed-oracle')
  after=$(cpu_ticks "$name")
  echo "| $round | $name $row $(((after - before) * 1000 / $(getconf CLK_TCK) / count)) | $(jq .useful_tokens_per_s "$out/$name-$round.json") |"
}

echo "machine: $(nproc) cores; commit $(git rev-parse --short HEAD); load average at the start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| round | silos | scenario | requests × batch | concurrency | texts/s | p50 ms | p99 ms | failures | CPU ms per request | useful tokens/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
bench one warm-up 16
bench two warm-up 16
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then bench one "$round" "$requests"; bench two "$round" "$requests"
  else bench two "$round" "$requests"; bench one "$round" "$requests"; fi
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
