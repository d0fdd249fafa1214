#!/usr/bin/env bash
# sysbench oltp_point_select, oltp_read_only and oltp_insert through the CN
# (with 2 and 4 DNs) and against one plain MariaDB, in the same run.
# Prints a table and, last, one JSON object with QPS, p95 (ms) and the
# CN/MariaDB QPS ratio per test and topology.
#
#   bash benches/sysbench.sh            # defaults below
#   TIME=20 THREADS=8 ROWS=100000 DNS="2 4" bash benches/sysbench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TIME=${TIME:-15}
THREADS=${THREADS:-8}
ROWS=${ROWS:-50000}
DNS=${DNS:-"2 4"}
TESTS=${TESTS:-"oltp_point_select oltp_read_only oltp_insert"}
PROFILE=${PROFILE:-release}
bash .ci/install-deps >/dev/null
if [ "$PROFILE" = release ]; then cargo build --release -q -p cn; else cargo build -q -p cn; fi
CN=target/$PROFILE/cn
WORK=$(mktemp -d /tmp/cn-bench.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ROOTFLAG=""; [ "$(id -u)" -eq 0 ] && ROOTFLAG="--user=root"

wait_port() { for _ in $(seq 1 600); do mariadb -h127.0.0.1 -P"$1" -uroot -e "select 1" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "port $1 did not come up" >&2; return 1; }

sb() { # test port action
  sysbench "$1" --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$2" --mysql-user=root --mysql-db=sbtest \
    --tables=1 --table-size="$ROWS" --threads="$THREADS" --time="$TIME" --db-ps-mode=disable --percentile=95 \
    --report-interval=0 "$3"
}

declare -A QPS P95
measure() { # label port
  local label=$1 port=$2
  mariadb -h127.0.0.1 -P"$port" -uroot -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  sb oltp_common "$port" prepare >/dev/null
  for t in $TESTS; do
    out=$(sb "$t" "$port" run)
    QPS[$label.$t]=$(echo "$out" | awk '/queries:/ {gsub(/[(]/,"",$3); print $3; exit}')
    P95[$label.$t]=$(echo "$out" | awk '/95th percentile:/ {print $3; exit}')
    echo "$label $t: ${QPS[$label.$t]} qps, p95 ${P95[$label.$t]} ms" >&2
  done
}

# Plain MariaDB, same settings as the playground's DNs.
mkdir -p "$WORK/plain"
mariadb-install-db --no-defaults --datadir="$WORK/plain" --auth-root-authentication-method=normal --skip-test-db \
  --innodb-log-file-size=16M $ROOTFLAG >/dev/null 2>&1
mariadbd --no-defaults --datadir="$WORK/plain" --port=4900 --socket="$WORK/plain/s.sock" --bind-address=127.0.0.1 \
  --skip-name-resolve --innodb-log-file-size=16M --innodb-buffer-pool-size=256M --max-connections=2000 \
  --log-error="$WORK/plain/err.log" $ROOTFLAG &
PIDS+=($!)
wait_port 4900
measure mariadb 4900

for n in $DNS; do
  port=$((3400 + n))
  $CN playground --dns "$n" --port "$port" --data-dir "$WORK/cn$n" --tpch-sf 0 --mariadb-port $((5000 + 10 * n)) \
    >"$WORK/cn$n.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  wait_port "$port"
  measure "cn_${n}dn" "$port"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
done

printf '\n| test | target | QPS | p95 ms | QPS ratio CN/MariaDB |\n|---|---|---|---|---|\n'
json="{\"threads\":$THREADS,\"time_s\":$TIME,\"rows\":$ROWS,\"profile\":\"$PROFILE\""
for t in $TESTS; do
  base=${QPS[mariadb.$t]}
  printf '| %s | MariaDB | %s | %s | 1.00 |\n' "$t" "$base" "${P95[mariadb.$t]}"
  json+=",\"$t\":{\"mariadb\":{\"qps\":$base,\"p95_ms\":${P95[mariadb.$t]}}"
  for n in $DNS; do
    q=${QPS[cn_${n}dn.$t]}
    r=$(awk -v a="$q" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
    printf '| %s | CN, %s DNs | %s | %s | %s |\n' "$t" "$n" "$q" "${P95[cn_${n}dn.$t]}" "$r"
    json+=",\"cn_${n}dn\":{\"qps\":$q,\"p95_ms\":${P95[cn_${n}dn.$t]},\"ratio\":$r}"
  done
  json+="}"
done
echo "$json}"
