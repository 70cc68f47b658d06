#!/usr/bin/env bash
# Starts a throwaway Redis server on a free loopback port, runs "$@" with
# KEYMINT_TEST_REDIS_URL set, and stops the server by PID on any exit.
set -euo pipefail

WORK=$(mktemp -d)
chmod 755 "$WORK"

free_port() { # first port in [$1,$1+200) with no listener on it
  local p=$1
  while ss -ltnH "sport = :$p" | grep -q .; do
    p=$((p + 1))
    [ $p -lt $(($1 + 200)) ] || return 1
  done
  echo $p
}

REDIS_PID=
cleanup() {
  set +e
  if [ -n "$REDIS_PID" ]; then
    kill -TERM "$REDIS_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v redis-server >/dev/null || ! command -v ss >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=120 update -qq
  apt-get -o DPkg::Lock::Timeout=120 install -y -qq redis-server iproute2 >/dev/null
fi

REDIS_PORT=$(free_port 6390)
mkdir -p "$WORK/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --dir "$WORK/redis" --pidfile "$WORK/redis/redis.pid" \
  --logfile "$WORK/redis/redis.log"
for _ in $(seq 1 50); do
  [ -s "$WORK/redis/redis.pid" ] && redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
REDIS_PID=$(cat "$WORK/redis/redis.pid")
# The server answering must be ours (another job may have taken the port meanwhile).
[ "$(redis-cli -p "$REDIS_PORT" info server | tr -d '\r' | sed -n 's/^process_id://p')" = "$REDIS_PID" ]
export KEYMINT_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
echo "redis pid=$REDIS_PID $KEYMINT_TEST_REDIS_URL ($(redis-server --version | cut -d' ' -f3))"

"$@"
