#!/usr/bin/env bash
# Starts throwaway Redis and PostgreSQL servers, a three-node Redis Cluster and a chromedriver
# (for headless Chromium) on free loopback ports, initialises a private SoftHSM2 token, runs
# "$@" with KEYMINT_TEST_REDIS_URL, KEYMINT_TEST_REDIS_CLUSTER_URLS (comma-separated),
# KEYMINT_TEST_DATABASE_URL, KEYMINT_TEST_WEBDRIVER_URL, KEYMINT_TEST_PKCS11_MODULE,
# KEYMINT_TEST_PKCS11_TOKEN_LABEL, KEYMINT_TEST_PKCS11_PIN and SOFTHSM2_CONF set, and stops
# them all by PID (removing the token with the rest of its scratch directory) on any exit.
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

free_cluster_port() { # first port >= $1 (within 200) free together with its bus port, +10000
  local p=$1
  while ss -ltnH "sport = :$p" | grep -q . || ss -ltnH "sport = :$((p + 10000))" | grep -q .; do
    p=$((p + 1))
    [ $p -lt $(($1 + 200)) ] || return 1
  done
  echo $p
}

REDIS_PID=
CLUSTER_PIDS=()
PG_PID=
DRIVER_PID=
alive() { # any of the given PIDs still running?
  local pid
  for pid in "$@"; do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 0
  done
  return 1
}
cleanup() {
  set +e
  # chromedriver leads its own process group (setsid): the browsers it started go with it.
  if [ -n "$DRIVER_PID" ]; then kill -TERM -- "-$DRIVER_PID" 2>/dev/null; fi
  if [ -n "$REDIS_PID" ]; then kill -TERM "$REDIS_PID" 2>/dev/null; fi
  for pid in "${CLUSTER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  if [ -n "$PG_PID" ]; then kill -INT "$PG_PID" 2>/dev/null; fi # SIGINT: postgres "fast" shutdown
  for _ in $(seq 1 50); do
    alive "$REDIS_PID" "$PG_PID" "${CLUSTER_PIDS[@]}" || break
    sleep 0.2
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

PACKAGES=()
command -v redis-server >/dev/null || PACKAGES+=(redis-server)
command -v ss >/dev/null || PACKAGES+=(iproute2)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || PACKAGES+=(postgresql)
command -v chromium >/dev/null || PACKAGES+=(chromium)
command -v chromedriver >/dev/null || PACKAGES+=(chromium-driver)
command -v curl >/dev/null || PACKAGES+=(curl)
command -v softhsm2-util >/dev/null || PACKAGES+=(softhsm2)
if [ ${#PACKAGES[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=120 update -qq
  apt-get -o DPkg::Lock::Timeout=120 install -y -qq "${PACKAGES[@]}" >/dev/null
fi

# --- Redis -------------------------------------------------------------------
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

# --- Redis Cluster: three primaries, no replicas ---------------------------------
# Each node also listens on its cluster bus port (port + 10000), so both must be free.
CLUSTER_PORTS=()
CLUSTER_URLS=()
next=7390
for i in 1 2 3; do
  port=$(free_cluster_port "$next")
  next=$((port + 1))
  dir="$WORK/cluster-$port"
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
    --save '' --appendonly no --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" \
    --logfile "$dir/redis.log"
  for _ in $(seq 1 50); do
    [ -s "$dir/redis.pid" ] && redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  [ -s "$dir/redis.pid" ] || { cat "$dir/redis.log" >&2; exit 1; }
  CLUSTER_PIDS+=("$(cat "$dir/redis.pid")")
  # The node answering must be ours, in cluster mode, with its bus port open.
  info=$(redis-cli -p "$port" info server | tr -d '\r')
  [ "$(sed -n 's/^process_id://p' <<<"$info")" = "${CLUSTER_PIDS[-1]}" ]
  [ "$(redis-cli -p "$port" info cluster | tr -d '\r' | sed -n 's/^cluster_enabled://p')" = 1 ]
  ss -ltnpH "sport = :$((port + 10000))" | grep "pid=${CLUSTER_PIDS[-1]}," >/dev/null
  CLUSTER_PORTS+=("$port")
  CLUSTER_URLS+=("redis://127.0.0.1:$port/")
done
redis-cli --cluster create "${CLUSTER_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 \
  --cluster-yes >"$WORK/cluster-create.log" 2>&1 || { cat "$WORK/cluster-create.log" >&2; exit 1; }
for port in "${CLUSTER_PORTS[@]}"; do # every node must see all slots assigned and the others
  for _ in $(seq 1 100); do
    state=$(redis-cli -p "$port" cluster info | tr -d '\r')
    grep -q '^cluster_state:ok' <<<"$state" && grep -q '^cluster_known_nodes:3' <<<"$state" && break
    sleep 0.1
  done
  grep -q '^cluster_state:ok' <<<"$state" || { echo "cluster node $port: $state" >&2; exit 1; }
done
KEYMINT_TEST_REDIS_CLUSTER_URLS=$(IFS=,; echo "${CLUSTER_URLS[*]}")
export KEYMINT_TEST_REDIS_CLUSTER_URLS
echo "redis cluster pids=${CLUSTER_PIDS[*]} $KEYMINT_TEST_REDIS_CLUSTER_URLS"

# --- PostgreSQL --------------------------------------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG_PORT=$(free_port 5490)
install -d -o postgres -g postgres -m 700 "$WORK/pgdata"
install -d -o postgres -g postgres -m 775 "$WORK/pgsock"
su postgres -s /bin/sh -c "$PGBIN/initdb -D $WORK/pgdata -U postgres --auth=trust -E UTF8 --locale=C.UTF-8" \
  >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; exit 1; }
su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $WORK/pgdata -l $WORK/pgdata/server.log -w -t 60 \
  -o '-p $PG_PORT -k $WORK/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off' start" >/dev/null || { cat "$WORK/pgdata/server.log" >&2; exit 1; }
PG_PID=$(head -1 "$WORK/pgdata/postmaster.pid")
# The server answering must be ours (another job may have taken the port meanwhile).
[ "$("$PGBIN/psql" -qAt -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 'SHOW data_directory' postgres)" = "$WORK/pgdata" ]
"$PGBIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 'CREATE DATABASE keymint_test' postgres
export KEYMINT_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/keymint_test"
echo "postgres pid=$PG_PID $KEYMINT_TEST_DATABASE_URL ($("$PGBIN/postgres" --version))"

# --- chromedriver (headless Chromium for the portal's browser test) ------------
DRIVER_PORT=$(free_port 9520)
setsid chromedriver --port="$DRIVER_PORT" --allowed-ips=127.0.0.1 >"$WORK/chromedriver.log" 2>&1 &
DRIVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$DRIVER_PORT/status" 2>/dev/null | grep -q '"ready": *true' && break
  kill -0 "$DRIVER_PID" 2>/dev/null || { cat "$WORK/chromedriver.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$DRIVER_PORT/status" | grep '"ready": *true' >/dev/null || { cat "$WORK/chromedriver.log" >&2; exit 1; }
# The driver answering must be ours: it would have exited had the port been taken.
kill -0 "$DRIVER_PID" 2>/dev/null || { cat "$WORK/chromedriver.log" >&2; exit 1; }
export KEYMINT_TEST_WEBDRIVER_URL="http://127.0.0.1:$DRIVER_PORT"
echo "chromedriver pid=$DRIVER_PID $KEYMINT_TEST_WEBDRIVER_URL ($(chromedriver --version | cut -d' ' -f1-2))"

# --- SoftHSM2: a PKCS#11 token of our own -------------------------------------------
# No server: the module is a library loaded by the tests. Its configuration and token
# directory are private to $WORK (so the system's tokens are neither used nor changed) and
# go with it on exit.
install -d -m 700 "$WORK/softhsm" "$WORK/softhsm/tokens"
printf '%s\n' "directories.tokendir = $WORK/softhsm/tokens" 'objectstore.backend = file' \
  'log.level = ERROR' 'slots.removable = false' >"$WORK/softhsm/softhsm2.conf"
export SOFTHSM2_CONF="$WORK/softhsm/softhsm2.conf"
PKCS11_MODULE=
for candidate in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
  if [ -f "$candidate" ]; then PKCS11_MODULE=$candidate; break; fi
done
[ -n "$PKCS11_MODULE" ] || { echo "libsofthsm2.so not found" >&2; exit 1; }
PKCS11_LABEL=keymint-test
PKCS11_PIN=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
softhsm2-util --init-token --free --label "$PKCS11_LABEL" \
  --so-pin "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" --pin "$PKCS11_PIN" \
  >"$WORK/softhsm/init.log" 2>&1 || { cat "$WORK/softhsm/init.log" >&2; exit 1; }
# The token must be the one just made, in our directory (and the only one there).
[ "$(find "$WORK/softhsm/tokens" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 1 ]
slots=$(softhsm2-util --show-slots 2>/dev/null) # captured: grep -q would close the pipe
grep -q "Label: *$PKCS11_LABEL *$" <<<"$slots" ||
  { echo "softhsm2: token $PKCS11_LABEL not found after init" >&2; exit 1; }
export KEYMINT_TEST_PKCS11_MODULE="$PKCS11_MODULE"
export KEYMINT_TEST_PKCS11_TOKEN_LABEL="$PKCS11_LABEL"
export KEYMINT_TEST_PKCS11_PIN="$PKCS11_PIN"
echo "softhsm2 token=$PKCS11_LABEL module=$PKCS11_MODULE conf=$SOFTHSM2_CONF ($(softhsm2-util --version))"

"$@"
