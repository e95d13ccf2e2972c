# Sourced by the bench scripts (not run): a scratch folder and the processes a script starts, both cleaned up on exit,
# the quiet production environment the services run in, and the one-silo + client-mode-front pair that counts the
# front's CPU time apart from the model's. Expects `set -euo pipefail` and the repository root as working folder.

bin=bin/Release/net10.0

# Makes $work (kept in $KEEP_LOGS on exit when set) and $pids; on exit, kills every pid in $pids and removes $work.
bench_begin() {
  work=$(mktemp -d)
  pids=()
  trap bench_end EXIT
}

bench_end() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP_LOGS:-}" ]; then cp -r "$work" "$KEEP_LOGS"; fi
  rm -rf "$work"
}

# Production settings, warnings only in the logs; MiniLM as the BERTScore default too, so no large model is fetched.
bench_quiet_env() {
  export DOTNET_ENVIRONMENT=Production MODEL_BERTSCORE=${MODEL_BERTSCORE:-all-MiniLM-L6-v2} \
    Logging__LogLevel__Default=Warning Logging__LogLevel__OrleansGpu=Warning
}

# The embed-oracle load (Bench's embed-oracle scenario): CLIENTS clients (8), requests of BATCH texts (32), REQUESTS per
# round (96), from ORACLE (../shared/oracles/embed-public.json).
oracle_load_settings() {
  clients=${CLIENTS:-8}
  batch=${BATCH:-32}
  requests=${REQUESTS:-96}
  oracle=${ORACLE:-../shared/oracles/embed-public.json}
}

# wait_for_port PORT: until something listens on 127.0.0.1:PORT (at most 3 minutes).
wait_for_port() {
  for _ in $(seq 1 180); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 1; done
  return 1
}

# wait_for_health URL [SECONDS]: until URL/health answers; else prints the logs in $work and fails.
wait_for_health() {
  for _ in $(seq 1 "${2:-180}"); do curl -sf "$1/health" >/dev/null && return 0; sleep 1; done
  tail -n 40 "$work"/*.log 2>/dev/null || true
  return 1
}

# start_silo_and_front BASE: a Silo.Gpu (silo port BASE+1, gateway BASE+2, localhost membership) and a client-mode
# Api.Front on http://127.0.0.1:BASE, as two processes; sets $silo and $front to their pids and waits until healthy.
start_silo_and_front() {
  local base=$1
  GPU_HOST_NAME=silo dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" \
    --Cluster:SiloPort=$((base + 1)) --Cluster:PrimarySiloPort=$((base + 1)) --Cluster:GatewayPort=$((base + 2)) >"$work/silo.log" 2>&1 &
  silo=$!
  pids+=("$silo")
  # The front starts once the silo's gateway listens.
  wait_for_port $((base + 2))
  ASPNETCORE_URLS="http://127.0.0.1:$base" dotnet "Api.Front/$bin/Api.Front.dll" --Cluster:Mode=client --Cluster:Gateways=$((base + 2)) >"$work/front.log" 2>&1 &
  front=$!
  pids+=("$front")
  wait_for_health "http://127.0.0.1:$base"
}
