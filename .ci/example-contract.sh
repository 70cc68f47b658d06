#!/usr/bin/env bash
# The example server's contract as tooling drives it: on KEYMINT_ADDR it prints exactly one
# line `admin key: <key>` on stdout once listening, and that key reads /v1/hello. Built with
# `--features axum` (the contract) and again with `--features axum,tokens`, where the key
# is also exchanged for a token at POST /v1/tokens and the token reads /v1/hello.
set -euo pipefail
cd "$(dirname "$0")/.."

run_contract() { # $1: cargo features
  local features=$1
  cargo build --quiet --features "$features" --example axum_server
  local port out err pid key lines status
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  out=$(mktemp); err=$(mktemp)
  KEYMINT_ADDR="127.0.0.1:$port" ./target/debug/examples/axum_server >"$out" 2>"$err" &
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -f "$out" "$err"' RETURN
  for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.1; done
  lines=$(wc -l <"$out")
  key=$(sed -n 's/^admin key: \(sk_live_[0-9A-Za-z_]*\)$/\1/p' "$out")
  [ "$lines" = 1 ] && [ -n "$key" ] || { echo "example ($features): expected one 'admin key: <key>' line, got:" >&2; cat "$out" >&2; return 1; }
  status=$(python3 - "$port" "$key" "$features" <<'PY'
import json, sys, urllib.request
port, key, features = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
def hello(credential):
    req = urllib.request.Request(base + "/v1/hello", headers={"Authorization": "Bearer " + credential})
    return urllib.request.urlopen(req, timeout=5).status
status = hello(key)
if status == 200 and "tokens" in features:
    req = urllib.request.Request(base + "/v1/tokens", data=b'{"ttl_secs": 60}', method="POST",
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    answer = urllib.request.urlopen(req, timeout=5)
    token = json.load(answer)["token"]
    status = answer.status * 1000 + hello(token)  # 201200 when both worked
print(status)
PY
  )
  local want=200
  [[ $features == *tokens* ]] && want=201200
  [ "$status" = "$want" ] || { echo "example ($features): answered $status, wanted $want" >&2; return 1; }
  if grep -q "$key" "$err"; then echo "example ($features): the admin key appeared in the logs" >&2; return 1; fi
  echo "example contract ($features): ok (one admin line, /v1/hello 200$([[ $features == *tokens* ]] && echo ', token exchanged and used'), key not in logs)"
}

run_contract axum
run_contract axum,tokens
