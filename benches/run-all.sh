#!/usr/bin/env bash
# Every benchmark of the crate, each beside its peer, into one log: the numbers that
# BENCHMARKS.md quotes. About 25 minutes on the 2-core build machine.
#
#   bash benches/run-all.sh                 # everything it can run here
#   MEASURE=2 bash benches/run-all.sh       # shorter criterion windows (seconds)
#   ONLY="keyring ratelimit" bash benches/run-all.sh
#
# Parts that need something absent are skipped with a note: PostgreSQL rows of the store
# bench (KEYMINT_TEST_DATABASE_URL), the Redis comparison (redis-server, redis-benchmark),
# the HTTP comparison (wrk), the scanner's ripgrep peer (rg). The log goes to
# target/bench-all.log (LOG=path to change). Run it on a machine doing nothing else: the
# ratios within one run are the figures to quote, not absolute times.
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=${LOG:-target/bench-all.log}
MEASURE=${MEASURE:-4}
ONLY=${ONLY:-format keyring hash scope ratelimit paired scale stores redis http}
CRIT=(--warm-up-time 1 --measurement-time "$MEASURE")
mkdir -p "$(dirname "$LOG")"
: >"$LOG"
wanted() { [[ " $ONLY " == *" $1 "* ]]; }
section() {
  echo "=== $1 ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$LOG"
}
run() { "$@" 2>&1 | grep -v '^\s*Compiling\|^\s*Finished\|^\s*Running\|Gnuplot not found' | tee -a "$LOG"; }

{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)"
  echo "rustc: $(rustc --version)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} | tee -a "$LOG"

for bench in format keyring hash scope; do
  if wanted "$bench"; then
    section "criterion: $bench"
    run cargo bench --quiet --bench "$bench" -- "${CRIT[@]}"
  fi
done
if wanted ratelimit; then
  section "criterion: ratelimit (keymint against governor, and bytes per key)"
  run cargo bench --quiet --bench ratelimit -- "${CRIT[@]}"
fi
if wanted paired; then
  section "ratelimit: paired interleaved runs against governor"
  run env KEYMINT_BENCH_PAIRED_ONLY=1 cargo bench --quiet --bench ratelimit
fi
if wanted scale; then
  section "scale figures"
  run cargo bench --quiet --bench scale
fi
if wanted stores; then
  section "stores: cold and warm verification (memory, SQLite${KEYMINT_TEST_DATABASE_URL:+, PostgreSQL})"
  if [ -z "${KEYMINT_TEST_DATABASE_URL:-}" ]; then
    echo "(no KEYMINT_TEST_DATABASE_URL: PostgreSQL rows skipped)" | tee -a "$LOG"
  fi
  run cargo bench --quiet --features sqlite,postgres --bench stores -- "${CRIT[@]}"
fi
if wanted redis; then
  section "redis: decisions per second against redis-benchmark"
  if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    run bash benches/redis/run.sh
  else
    echo "(redis-server or redis-benchmark missing: skipped)" | tee -a "$LOG"
  fi
fi
if wanted http; then
  section "http: requests per second with and without the layer (wrk)"
  if command -v wrk >/dev/null; then
    run bash benches/http/run.sh
  else
    echo "(wrk missing: skipped)" | tee -a "$LOG"
  fi
fi
section "done"
