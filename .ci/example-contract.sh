#!/usr/bin/env bash
# The example server's contract as tooling drives it: on KEYMINT_ADDR it prints exactly one
# line `admin key: <key>` on stdout once listening, and that key reads /v1/hello.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --features axum --example axum_server
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp); err=$(mktemp)
KEYMINT_ADDR="127.0.0.1:$port" ./target/debug/examples/axum_server >"$out" 2>"$err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out" "$err"' EXIT
for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.1; done
lines=$(wc -l <"$out")
key=$(sed -n 's/^admin key: \(sk_live_[0-9A-Za-z_]*\)$/\1/p' "$out")
[ "$lines" = 1 ] && [ -n "$key" ] || { echo "example: expected one 'admin key: <key>' line, got:" >&2; cat "$out" >&2; exit 1; }
status=$(python3 - "$port" "$key" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/hello", headers={"Authorization": "Bearer " + sys.argv[2]})
print(urllib.request.urlopen(req, timeout=5).status)
PY
)
[ "$status" = 200 ] || { echo "example: /v1/hello answered $status" >&2; exit 1; }
if grep -q "$key" "$err"; then echo "example: the admin key appeared in the logs" >&2; exit 1; fi
echo "example contract: ok (one admin line, /v1/hello 200, key not in logs)"
