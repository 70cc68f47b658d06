#!/usr/bin/env python3
"""Fails when Cargo.toml's rust-version is lower than what the locked dependency tree needs.

Walks the resolved graph from the keymint package through normal and build dependencies
(all features; dev-dependencies are not part of what users build) and compares the highest
`rust_version` any of them declares with keymint's own. The toolchain here cannot test an
older compiler (rustup has no network), so this is how the declared MSRV stays honest.
"""
import json
import subprocess
import sys


def version_key(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(p for p in meta["packages"] if p["name"] == "keymint")

seen, stack = set(), [root["id"]]
while stack:
    pid = stack.pop()
    if pid in seen:
        continue
    seen.add(pid)
    for dep in nodes[pid]["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if pid == root["id"] and kinds <= {"dev"}:
            continue  # dev-dependencies of keymint itself
        if kinds - {"dev"}:
            stack.append(dep["pkg"])

needed = max(
    ((packages[pid].get("rust_version") or "0", packages[pid]["name"]) for pid in seen - {root["id"]}),
    key=lambda t: version_key(t[0]),
)
declared = root.get("rust_version") or "0"
print(f"msrv: keymint declares {declared}; its dependency tree needs {needed[0]} ({needed[1]})")
if version_key(declared) < version_key(needed[0]):
    print(f"msrv: raise rust-version in Cargo.toml to {needed[0]}", file=sys.stderr)
    sys.exit(1)
