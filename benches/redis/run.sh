#!/usr/bin/env bash
# Redis rate-limit decisions per second over one connection: keymint's RedisLimiter against
# redis-benchmark sending the same EVALSHA (same script, key and arguments) to the same
# server, sequential (one in flight) and with 64 in flight on the one connection,
# alternating the clients in each round; medians of ROUNDS rounds and their ratios.
#
#   bash benches/redis/run.sh        # ROUNDS=5 SECONDS_PER_RUN=3 PIN=1
#   BENCH_BIN=path bash benches/redis/run.sh   # a prebuilt bench binary (an older build, say)
#
# "sequential" runs its loop in a task on a runtime worker, like a request handler;
# "block_on" runs the same loop on block_on's own thread (no worker), which costs two more
# cross-thread wake-ups per decision: shown for comparison, not a target.
#
# Starts its own redis-server (stopped on exit) pinned to core 0; both clients run pinned
# to core 1, so client and server never take turns on one core. Needs redis-server,
# redis-benchmark and taskset. The machine is shared: the script prints the load average
# before and after; quote the ratios, not the absolute rates.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
PIN=${PIN:-1} # 0: let the scheduler place server and clients
SECS=${SECONDS_PER_RUN:-3}
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  { echo "redis-server / redis-benchmark missing (apt-get install redis-server)" >&2; exit 2; }

bin=${BENCH_BIN:-$(cargo bench --features redis --bench redis_limiter --no-run 2>&1 |
  sed -n 's/.*(\(target\/release\/deps\/redis_limiter-[0-9a-f]*\)).*/\1/p' | tail -1)}
[ -x "$bin" ] || { echo "could not build the redis_limiter bench" >&2; exit 1; }

work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; sleep 0.2; rm -rf "$work"' EXIT
port=6590
while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
on() { # core command...: pinned unless PIN=0
  local core=$1
  shift
  if [ "$PIN" = 1 ]; then taskset -c "$core" "$@"; else "$@"; fi
}
on 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --dir "$work" --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 1 50); do
  [ -s "$work/redis.pid" ] && redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
pid=$(cat "$work/redis.pid")
[ "$(redis-cli -p "$port" info server | tr -d '\r' | sed -n 's/^process_id://p')" = "$pid" ]
export KEYMINT_TEST_REDIS_URL="redis://127.0.0.1:$port/" KEYMINT_BENCH_SECS=$SECS

keymint() { # mode -> decisions/s
  KEYMINT_BENCH_MODE=$1 on 1 "$bin" | awk '/^keymint / {print $3}'
}
read -r -a call < <(KEYMINT_BENCH_MODE=none on 1 "$bin" | sed -n 's/^evalsha //p')
bench() { # pipeline requests -> requests/s
  on 1 redis-benchmark -p "$port" -c 1 -P "$1" -n "$2" -q "${call[@]}" |
    tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# Size redis-benchmark's runs to about SECS seconds each, like keymint's.
seq_n=$(awk "BEGIN {printf \"%d\", $(bench 1 20000) * $SECS}")
par_n=$(awk "BEGIN {printf \"%d\", $(bench 64 200000) * $SECS}")
where="server on core 0, clients on core 1"
[ "$PIN" = 1 ] || where="unpinned"
echo "redis $(redis-server --version | cut -d' ' -f3), $where; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a KS KB RS KP RP QS QP
for i in $(seq 1 "$ROUNDS"); do
  KS+=("$(keymint sequential)")
  RS+=("$(bench 1 "$seq_n")")
  KB+=("$(keymint block-on)")
  KP+=("$(keymint in-flight)")
  RP+=("$(bench 64 "$par_n")")
  QS+=("$(awk "BEGIN {print ${KS[-1]}/${RS[-1]}}")")
  QP+=("$(awk "BEGIN {print ${KP[-1]}/${RP[-1]}}")")
  echo "round $i: sequential keymint ${KS[-1]} (block_on ${KB[-1]}) redis-benchmark ${RS[-1]} | 64 in flight keymint ${KP[-1]} redis-benchmark ${RP[-1]}"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
ks=$(printf '%s\n' "${KS[@]}" | median); rs=$(printf '%s\n' "${RS[@]}" | median)
kb=$(printf '%s\n' "${KB[@]}" | median)
kp=$(printf '%s\n' "${KP[@]}" | median); rp=$(printf '%s\n' "${RP[@]}" | median)
qs=$(printf '%s\n' "${QS[@]}" | median); qp=$(printf '%s\n' "${QP[@]}" | median)
echo "median decisions/s, sequential:   keymint $ks, redis-benchmark $rs, ratio $(awk "BEGIN {printf \"%.2f\", $ks/$rs}") (median of per-round ratios $(awk "BEGIN {printf \"%.2f\", $qs}"))"
echo "median decisions/s, sequential from block_on's thread: keymint $kb, ratio $(awk "BEGIN {printf \"%.2f\", $kb/$rs}")"
echo "median decisions/s, 64 in flight: keymint $kp, redis-benchmark $rp, ratio $(awk "BEGIN {printf \"%.2f\", $kp/$rp}") (median of per-round ratios $(awk "BEGIN {printf \"%.2f\", $qp}"))"
