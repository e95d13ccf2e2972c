#!/usr/bin/env bash
# Starts Debian's PostgreSQL on this machine for the tests (as CI does) and prints the environment that the
# PostgreSQL tests read:
#   eval "$(tools/postgres/start-local.sh)"
# Needs root and the postgresql package (apt-get install postgresql).
set -euo pipefail
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
cluster_status=$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" {print $4}')
if [ -z "$cluster_status" ]; then
  pg_createcluster "$version" main >&2
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q && break
  sleep 1
done
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'orleansgpu'\"" | grep -q 1 \
  || su postgres -c "createdb orleansgpu" >&2
echo "export ORLEANSGPU_TEST_POSTGRES='Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;Database=orleansgpu'"
echo "export ORLEANSGPU_TEST_PG_STOP='pg_ctlcluster $version main stop -m fast'"
echo "export ORLEANSGPU_TEST_PG_START='pg_ctlcluster $version main start'"
