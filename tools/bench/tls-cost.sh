#!/usr/bin/env bash
# What mutual TLS on the cluster's connections costs per request. Starts two clusters on this machine at once, each a
# Silo.Gpu and an Api.Front in client mode connected through the silo's gateway (localhost clustering: membership
# plays no part in a request's cost): one with certificates from `Silo.Gpu make-certs`, one without TLS. Bench then
# loads them in turn, round after round, with the same scenarios, so both are measured in the same run.
#
#   dotnet build -c Release Silo.Gpu && dotnet build -c Release Api.Front && dotnet build -c Release Bench
#   tools/bench/tls-cost.sh [ROUNDS] [OUT_DIR]          # default 3 rounds; OUT_DIR keeps Bench's JSON
#
# Each Bench row is printed with the cluster it measured (tls or plain); a warm-up round comes first, and the order of
# the two clusters alternates from round to round. TORCH_DEVICE, MODELS_DIR and the ports
# (BASE_PORT, default 42000, six ports from there) can be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
out=${2:-}
base=${BASE_PORT:-42000}
bin=bin/Release/net10.0
work=$(mktemp -d)
pids=()
declare -A cluster_pids
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export DOTNET_ENVIRONMENT=Production MODEL_BERTSCORE=all-MiniLM-L6-v2 \
  Logging__LogLevel__Default=Warning Logging__LogLevel__OrleansGpu=Information
dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" make-certs --hosts silo,front --out "$work/certs" >/dev/null

# start MODE PORT_OFFSET: a silo and a front, with the cluster's certificates (tls) or without TLS (plain).
start() {
  local mode=$1 offset=$2 silo_tls=(ORLEANS_TLS=off) front_tls=(ORLEANS_TLS=off)
  local silo_port=$((base + offset)) gateway_port=$((base + offset + 1))
  if [ "$mode" = tls ]; then
    silo_tls=(ORLEANS_TLS_CA="$work/certs/ca.pem" ORLEANS_TLS_CERT="$work/certs/silo.pem" ORLEANS_TLS_KEY="$work/certs/silo.key")
    front_tls=(ORLEANS_TLS_CA="$work/certs/ca.pem" ORLEANS_TLS_CERT="$work/certs/front.pem" ORLEANS_TLS_KEY="$work/certs/front.key")
  fi
  env "${silo_tls[@]}" GPU_HOST_NAME="silo-$mode" dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" \
    --Cluster:SiloPort=$silo_port --Cluster:PrimarySiloPort=$silo_port --Cluster:GatewayPort=$gateway_port \
    >"$work/silo-$mode.log" 2>&1 &
  pids+=($!)
  cluster_pids[$mode]=$!
  env "${front_tls[@]}" ASPNETCORE_URLS="http://127.0.0.1:$((base + offset + 2))" dotnet "Api.Front/$bin/Api.Front.dll" \
    --Cluster:Mode=client --Cluster:Gateways=$gateway_port >"$work/front-$mode.log" 2>&1 &
  pids+=($!)
  cluster_pids[$mode]+=" $!"
}

# cpu_ticks MODE: CPU time (user + system, in clock ticks) the cluster's silo and front have used so far.
cpu_ticks() {
  local total=0 pid
  for pid in ${cluster_pids[$1]}; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}

start tls 0
start plain 3
for port in $((base + 2)) $((base + 5)); do
  for _ in $(seq 1 180); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 1
  done
  curl -sf "http://127.0.0.1:$port/health" >/dev/null || { tail -n 40 "$work"/*.log; exit 1; }
done
for log in silo-tls front-tls; do
  grep -q "Cluster TLS on" "$work/$log.log" || { echo "$log did not report TLS:"; cat "$work/$log.log"; exit 1; }
done

scenarios='status 2000 8 1
embed-short 400 4 1
embed-short 40 4 32'

# bench MODE ROUND: every scenario once against one cluster, its rows prefixed with the cluster and the round and
# followed by the CPU time its silo and front spent per request (less sensitive than throughput to what else runs).
bench() {
  local mode=$1 round=$2 port before after
  port=$([ "$mode" = tls ] && echo $((base + 2)) || echo $((base + 5)))
  while read -r scenario requests concurrency batch; do
    local json=()
    [ -n "$out" ] && [ "$round" != warm-up ] && mkdir -p "$out" && json=(--out "$out/$mode-$round-$scenario-$batch.json")
    before=$(cpu_ticks "$mode")
    row=$(dotnet "Bench/$bin/Bench.dll" --url "http://127.0.0.1:$port" --scenario "$scenario" --requests "$requests" \
      --concurrency "$concurrency" --batch "$batch" "${json[@]}" | tail -n 1)
    after=$(cpu_ticks "$mode")
    echo "| $mode | $round $row $(((after - before) * 1000000 / $(getconf CLK_TCK) / requests)) |"
  done <<<"$scenarios"
}

echo "| cluster | round | scenario | requests × batch | concurrency | throughput | p50 ms | p99 ms | failures | CPU µs per request (silo + front) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
# A warm-up round (JIT, model sessions, connections) for both, then the rounds proper, the order swapped each time.
bench tls warm-up
bench plain warm-up
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="tls plain"; else order="plain tls"; fi
  for mode in $order; do
    bench "$mode" "$round"
  done
done
