#!/usr/bin/env bash
# Membership at scale on one machine: N Silo.Gpu processes (CPU device, no model warm-up) in one PostgreSQL membership
# table with mutual TLS, and a front in client mode. Reports how long the silos take to join, what each holds (memory,
# CPU while idle: probes, table reads, load reports), what the front spends polling N hosts, the database's
# transactions per second, how long membership takes to declare a SIGKILLed silo dead, and how long a SIGTERMed one
# takes to leave.
#
#   dotnet build -c Release Silo.Gpu && dotnet build -c Release Api.Front
#   eval "$(tools/postgres/start-local.sh)"        # exports ORLEANSGPU_TEST_POSTGRES (an administrator's connection)
#   tools/bench/membership.sh [N]                  # default 20 silos; BASE_PORT (default 43000) and 2N+1 ports after it
#                                                  # SETTLE: seconds (default 10) between the front seeing all hosts and the idle window
#
# It creates a database of its own (dropped at the end) and prints one line per figure.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20}
base=${BASE_PORT:-43000}
bin=bin/Release/net10.0
admin=${ORLEANSGPU_TEST_POSTGRES:?set ORLEANSGPU_TEST_POSTGRES: eval \"\$(tools/postgres/start-local.sh)\"}
field() { sed -n "s/.*$1=\([^;]*\).*/\1/p" <<<"$admin"; }
export PGHOST=$(field Host) PGPORT=$(field Port) PGUSER=$(field Username) PGPASSWORD=$(field Password)
db="orleansgpu_scale_$$"
work=$(mktemp -d)
declare -A pid=()
cleanup() {
  for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
sql() { psql -d "$db" -tAc "$1"; }
active() { sql "SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3"; }
status_of() { sql "SELECT Status FROM OrleansMembershipTable WHERE SiloName = '$1' ORDER BY Generation DESC LIMIT 1"; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
rss_mb() { awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$1/status"; }

psql -q -d postgres -c "CREATE DATABASE $db" >/dev/null
export ORLEANS_POSTGRES="Host=$PGHOST;Port=$PGPORT;Username=$PGUSER;Password=$PGPASSWORD;Database=$db"
export ORLEANS_CLUSTER_ID=scale ORLEANS_ADVERTISED_IP=127.0.0.1 TORCH_DEVICE=cpu GPU_WARM_DEFAULTS=false \
  DOTNET_ENVIRONMENT=Production Logging__LogLevel__Default=Warning Logging__LogLevel__OrleansGpu=Information \
  HF_HUB_OFFLINE=1 MODELS_DIR="$work/models"
dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" apply-schema >/dev/null
hosts=$(seq -s, -f "s%g" 1 "$n"),front
dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" make-certs --hosts "$hosts" --out "$work/certs" >/dev/null
export ORLEANS_TLS_CA="$work/certs/ca.pem"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo) GiB; load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A started=()
for i in $(seq 1 "$n"); do
  started[s$i]=$(now)
  GPU_HOST_NAME=s$i ORLEANS_TLS_CERT="$work/certs/s$i.pem" ORLEANS_TLS_KEY="$work/certs/s$i.key" \
    dotnet "Silo.Gpu/$bin/Silo.Gpu.dll" --Cluster:SiloPort=$((base + 2 * i)) --Cluster:GatewayPort=$((base + 2 * i + 1)) \
    >"$work/s$i.log" 2>&1 &
  pid[s$i]=$!
done

# Join: the first time each silo is seen active in the table.
declare -A joined=()
first=$(now)
while [ "${#joined[@]}" -lt "$n" ]; do
  for name in $(sql "SELECT SiloName FROM OrleansMembershipTable WHERE Status = 3"); do
    [ -z "${joined[$name]:-}" ] && joined[$name]=$(now)
  done
  if [ "$(elapsed "$first" "$(now)" | cut -d. -f1)" -gt 600 ]; then echo "not all silos joined in 10 minutes"; tail -n 20 "$work"/s1.log; exit 1; fi
  sleep 0.2
done
all=$(now)
times=$(for name in "${!joined[@]}"; do elapsed "${started[$name]}" "${joined[$name]}"; echo; done | sort -n)
echo "join: $n silos started at once; each active after $(head -n1 <<<"$times")-$(tail -n1 <<<"$times") s (median $(sed -n "$(((n + 1) / 2))p" <<<"$times") s); all active $(elapsed "$first" "$all") s after the first start"

# The front, polling every host's load once a second.
ASPNETCORE_URLS="http://127.0.0.1:$base" ORLEANS_TLS_CERT="$work/certs/front.pem" ORLEANS_TLS_KEY="$work/certs/front.key" \
  dotnet "Api.Front/$bin/Api.Front.dll" >"$work/front.log" 2>&1 &
pid[front]=$!
for _ in $(seq 1 600); do
  [ "$(curl -sf "http://127.0.0.1:$base/health" | sed -n 's/.*"hosts":\([0-9]*\).*/\1/p')" = "$n" ] && break
  sleep 0.5
done
echo "front: sees $(curl -sf "http://127.0.0.1:$base/health" | sed -n 's/.*"hosts":\([0-9]*\).*/\1/p') hosts"

# Idle cost over 30 s: what membership, probes and the front's load polling take with nothing to compute.
sleep "${SETTLE:-10}"
silos=(); for i in $(seq 1 "$n"); do silos+=("${pid[s$i]}"); done
xact() { sql "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$db'"; }
# What the transactions are: scans of the membership table (each whole-table read, by a silo's refresh or the front's
# host list, and each single-row read), rows written (IAmAlive, status, suspicions) and version bumps (a change of
# membership every silo then reads the table for). The statistics collector flushes about once a second.
tables() {
  sql "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)) FILTER (WHERE relname = 'orleansmembershiptable'), 0),
              coalesce(sum(n_tup_upd) FILTER (WHERE relname = 'orleansmembershiptable'), 0),
              coalesce(sum(n_tup_upd) FILTER (WHERE relname = 'orleansmembershipversiontable'), 0)
       FROM pg_stat_user_tables" | tr '|' ' '
}
sleep 2
s0=$(ticks "${silos[@]}"); f0=$(ticks "${pid[front]}"); x0=$(xact); read -r r0 u0 v0 < <(tables); t0=$(now)
sleep 30
s1=$(ticks "${silos[@]}"); f1=$(ticks "${pid[front]}"); x1=$(xact); t1=$(now); sleep 2; read -r r1 u1 v1 < <(tables)
hz=$(getconf CLK_TCK)
seconds=$(elapsed "$t0" "$t1")
rss=$(for p in "${silos[@]}"; do rss_mb "$p"; done | sort -n)
echo "silo memory (RSS): $(head -n1 <<<"$rss")-$(tail -n1 <<<"$rss") MB each, $(paste -sd+ <<<"$rss" | bc) MB for $n; front $(rss_mb "${pid[front]}") MB"
echo "idle CPU over ${seconds} s: silos $(awk -v t=$((s1 - s0)) -v hz="$hz" -v s="$seconds" -v n="$n" 'BEGIN { printf "%.1f%% of a core each (%.2f cores for all)", 100 * t / hz / s / n, t / hz / s }'); front polling $n hosts $(awk -v t=$((f1 - f0)) -v hz="$hz" -v s="$seconds" 'BEGIN { printf "%.1f%% of a core", 100 * t / hz / s }')"
echo "PostgreSQL: $(awk -v x=$((x1 - x0)) -v s="$seconds" 'BEGIN { printf "%.1f", x / s }') transactions/s on the membership database"
echo "membership table: $(awk -v r=$((r1 - r0)) -v u=$((u1 - u0)) -v v=$((v1 - v0)) -v s="$seconds" 'BEGIN { printf "%.1f scans/s, %.1f row updates/s, %.2f version bumps/s", r / s, u / s, v / s }')"

# A silo killed: how long until the table says dead, and until the front stops listing it.
victim=s$n
t0=$(now); kill -9 "${pid[$victim]}"; unset "pid[$victim]"
until [ "$(status_of "$victim")" = 6 ]; do sleep 0.2; done
dead=$(now)
until [ "$(curl -sf "http://127.0.0.1:$base/health" | sed -n 's/.*"hosts":\([0-9]*\).*/\1/p')" = $((n - 1)) ]; do sleep 0.2; done
echo "SIGKILL $victim: declared dead $(elapsed "$t0" "$dead") s later; gone from the front $(elapsed "$t0" "$(now)") s later"

# A silo stopped: how long until it has drained (nothing to drain here), left and exited.
leaver=s$((n - 1))
t0=$(now); kill -TERM "${pid[$leaver]}"
wait "${pid[$leaver]}" || true; unset "pid[$leaver]"
exited=$(now)
echo "SIGTERM $leaver: exited $(elapsed "$t0" "$exited") s later, table status $(status_of "$leaver") (6 = dead)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
