#!/usr/bin/env bash
# sysbench oltp_point_select, oltp_read_only and oltp_insert through the CN
# (with 2 and 4 DNs), against one plain MariaDB, and against the same
# MariaDB behind HAProxy in TCP mode (a proxy that forwards bytes and does
# nothing else: what any proxy's extra hop costs on this machine), in the
# same run. Prints a table and, last, one JSON object with QPS, p95 (ms),
# the QPS ratio to MariaDB (and the CN's to HAProxy), and the CPU time per
# query (µs, user + system) of the proxy process (CN or HAProxy) and of the
# mariadbd processes, per test and topology.
#
#   bash benches/sysbench.sh            # defaults below
#   TIME=20 THREADS=8 ROWS=100000 DNS="2 4" bash benches/sysbench.sh
#   INDEX_MODE=global ...   # keep sysbench's k_1 a global index on the CN
set -euo pipefail
cd "$(dirname "$0")/.."
TIME=${TIME:-15}
THREADS=${THREADS:-8}
ROWS=${ROWS:-50000}
DNS=${DNS:-"2 4"}
TESTS=${TESTS:-"oltp_point_select oltp_read_only oltp_insert"}
PROFILE=${PROFILE:-release}
bash .ci/install-deps >/dev/null
# HAProxy, the byte-forwarding peer (a benchmark's need, not CI's).
if ! command -v haproxy >/dev/null 2>&1 && ! [ -x /usr/sbin/haproxy ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ "$PROFILE" = release ]; then cargo build --release -q -p cn; else cargo build -q -p cn; fi
CN=${CARGO_TARGET_DIR:-target}/$PROFILE/cn
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

# CPU time (clock ticks, user + system) of processes, summed.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
HZ=$(getconf CLK_TCK)

declare -A QPS P95 CPU_CN CPU_DB
measure() { # label port "CN pids" "MariaDB pids"
  local label=$1 port=$2 cn_pids=$3 db_pids=$4
  mariadb -h127.0.0.1 -P"$port" -uroot -e "DROP DATABASE IF EXISTS sbtest; CREATE DATABASE sbtest"
  sb oltp_common "$port" prepare >/dev/null
  if [[ "$label" == cn_* ]]; then
    # In AUTO mode the CN makes sysbench's `KEY k_1 (k)` a global index;
    # like for like with MariaDB's is a local one (INDEX_MODE=global keeps it).
    [ "${INDEX_MODE:-local}" = local ] &&
      mariadb -h127.0.0.1 -P"$port" -uroot sbtest -e "DROP INDEX k_1 ON sbtest1; CREATE LOCAL INDEX k_1 ON sbtest1 (k)"
  fi
  for t in $TESTS; do
    local c0 d0 c1 d1 n
    c0=$(ticks $cn_pids); d0=$(ticks $db_pids)
    out=$(sb "$t" "$port" run)
    c1=$(ticks $cn_pids); d1=$(ticks $db_pids)
    QPS[$label.$t]=$(echo "$out" | awk '/queries:/ {gsub(/[(]/,"",$3); print $3; exit}')
    P95[$label.$t]=$(echo "$out" | awk '/95th percentile:/ {print $3; exit}')
    n=$(echo "$out" | awk '/queries:/ {print $2; exit}')
    # CPU microseconds per query: of the CN process, and of the mariadbd processes.
    CPU_CN[$label.$t]=$(awk -v t=$((c1 - c0)) -v n="$n" -v hz="$HZ" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
    CPU_DB[$label.$t]=$(awk -v t=$((d1 - d0)) -v n="$n" -v hz="$HZ" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
    echo "$label $t: ${QPS[$label.$t]} qps, p95 ${P95[$label.$t]} ms, CPU/query: CN ${CPU_CN[$label.$t]} us, MariaDB ${CPU_DB[$label.$t]} us" >&2
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
measure mariadb 4900 "" "${PIDS[-1]}"
DB_PID=${PIDS[-1]}

# The same MariaDB behind HAProxy (TCP mode, its defaults: a thread per core).
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen mariadb
    bind 127.0.0.1:4901
    server plain 127.0.0.1:4900
EOF
"$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_port 4901
measure haproxy 4901 "${PIDS[-1]}" "$DB_PID"
kill "${PIDS[-1]}"

for n in $DNS; do
  port=$((3400 + n))
  $CN playground --dns "$n" --port "$port" --data-dir "$WORK/cn$n" --tpch-sf 0 --mariadb-port $((5000 + 10 * n)) \
    >"$WORK/cn$n.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  wait_port "$port"
  measure "cn_${n}dn" "$port" "$pid" "$(pgrep -f "mariadbd --no-defaults.*$WORK/cn$n" | tr '\n' ' ')"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
done

printf '\n| test | target | QPS | p95 ms | QPS ratio to MariaDB | QPS ratio to HAProxy | CPU µs/query: proxy (CN or HAProxy) | CPU µs/query: mariadbd |\n|---|---|---|---|---|---|---|---|\n'
json="{\"threads\":$THREADS,\"time_s\":$TIME,\"rows\":$ROWS,\"profile\":\"$PROFILE\""
for t in $TESTS; do
  base=${QPS[mariadb.$t]}
  printf '| %s | MariaDB | %s | %s | 1.00 | - | - | %s |\n' "$t" "$base" "${P95[mariadb.$t]}" "${CPU_DB[mariadb.$t]}"
  json+=",\"$t\":{\"mariadb\":{\"qps\":$base,\"p95_ms\":${P95[mariadb.$t]},\"cpu_us_mariadbd\":${CPU_DB[mariadb.$t]}}"
  hq=${QPS[haproxy.$t]}
  hr=$(awk -v a="$hq" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
  printf '| %s | HAProxy, MariaDB | %s | %s | %s | 1.00 | %s | %s |\n' "$t" "$hq" "${P95[haproxy.$t]}" "$hr" "${CPU_CN[haproxy.$t]}" "${CPU_DB[haproxy.$t]}"
  json+=",\"haproxy\":{\"qps\":$hq,\"p95_ms\":${P95[haproxy.$t]},\"ratio\":$hr,\"cpu_us_haproxy\":${CPU_CN[haproxy.$t]},\"cpu_us_mariadbd\":${CPU_DB[haproxy.$t]}}"
  for n in $DNS; do
    q=${QPS[cn_${n}dn.$t]}
    r=$(awk -v a="$q" -v b="$base" 'BEGIN {printf "%.2f", a / b}')
    rh=$(awk -v a="$q" -v b="$hq" 'BEGIN {printf "%.2f", a / b}')
    k=cn_${n}dn.$t
    printf '| %s | CN, %s DNs | %s | %s | %s | %s | %s | %s |\n' "$t" "$n" "$q" "${P95[$k]}" "$r" "$rh" "${CPU_CN[$k]}" "${CPU_DB[$k]}"
    json+=",\"cn_${n}dn\":{\"qps\":$q,\"p95_ms\":${P95[$k]},\"ratio\":$r,\"ratio_to_haproxy\":$rh,\"cpu_us_cn\":${CPU_CN[$k]},\"cpu_us_mariadbd\":${CPU_DB[$k]}}"
  done
  json+="}"
done
echo "$json}"
