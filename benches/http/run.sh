#!/usr/bin/env bash
# Requests per second of GET /v1/hello behind keymint's layer (a cached key) against the
# same route without it, and of a refused garbage key against a bare 401 handler: wrk on
# loopback, alternating the servers in each round, medians of ROUNDS rounds. Also the route
# behind a pass-through layer (clone the inner service, box the future, nothing else): what
# any layer of this shape costs before it does any work.
#
#   bash benches/http/run.sh            # ROUNDS=5 SECONDS_PER_RUN=5 THREADS=1 CONNECTIONS=32
#
# Needs wrk (apt-get install wrk). The server and wrk share the machine's cores, so the
# ratios are the numbers to quote, not the absolute requests per second.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
SECS=${SECONDS_PER_RUN:-5}
THREADS=${THREADS:-1}
CONNS=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }

cargo build --release --quiet --features axum --example http_bench_server
out=$(mktemp)
# Server on one core, load generator on the other, so they do not take turns.
taskset -c 0 ./target/release/examples/http_bench_server >"$out" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 1 100); do grep -q '^key ' "$out" && break; sleep 0.1; done
read -r _ protected bare refuse passthrough < <(grep '^ports ' "$out")
key=$(sed -n 's/^key //p' "$out")

rps() { # url [header]
  local args=(-t "$THREADS" -c "$CONNS" -d "${SECS}s" --latency)
  [ -n "${2:-}" ] && args+=(-H "$2")
  taskset -c 1 wrk "${args[@]}" "$1" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -a P B G R T
# Warm-up (connections, caches, the verified-key cache).
rps "http://127.0.0.1:$protected/v1/hello" "Authorization: Bearer $key" >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  P+=("$(rps "http://127.0.0.1:$protected/v1/hello" "Authorization: Bearer $key")")
  # The bare servers get the same header (and ignore it): both sides parse the same bytes.
  B+=("$(rps "http://127.0.0.1:$bare/v1/hello" "Authorization: Bearer $key")")
  T+=("$(rps "http://127.0.0.1:$passthrough/v1/hello" "Authorization: Bearer $key")")
  G+=("$(rps "http://127.0.0.1:$protected/v1/hello" "Authorization: Bearer sk_live_garbage")")
  R+=("$(rps "http://127.0.0.1:$refuse/v1/hello" "Authorization: Bearer sk_live_garbage")")
  echo "round $i: protected ${P[-1]}  bare ${B[-1]}  garbage ${G[-1]}  bare-401 ${R[-1]}  pass-through ${T[-1]}"
done
mp=$(printf '%s\n' "${P[@]}" | median); mb=$(printf '%s\n' "${B[@]}" | median)
mg=$(printf '%s\n' "${G[@]}" | median); mr=$(printf '%s\n' "${R[@]}" | median)
# Each round's two runs are back to back, so their ratio cancels most of the machine's drift;
# the median of those ratios is the steadier figure on a shared machine.
rpb=$(for i in "${!P[@]}"; do awk "BEGIN {print ${P[$i]}/${B[$i]}}"; done | median)
rgr=$(for i in "${!G[@]}"; do awk "BEGIN {print ${G[$i]}/${R[$i]}}"; done | median)
rtb=$(for i in "${!T[@]}"; do awk "BEGIN {print ${T[$i]}/${B[$i]}}"; done | median)
mt=$(printf '%s\n' "${T[@]}" | median)
echo "median req/s: protected $mp, bare $mb, ratio $(awk "BEGIN {printf \"%.3f\", $mp/$mb}"); median of per-round ratios $(printf '%.3f' "$rpb")"
echo "median req/s: refused garbage $mg, bare 401 $mr, ratio $(awk "BEGIN {printf \"%.3f\", $mg/$mr}"); median of per-round ratios $(printf '%.3f' "$rgr")"
echo "median req/s: pass-through layer $mt, bare $mb, ratio $(awk "BEGIN {printf \"%.3f\", $mt/$mb}"); median of per-round ratios $(printf '%.3f' "$rtb")"
