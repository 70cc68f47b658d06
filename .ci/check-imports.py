#!/usr/bin/env python3
"""Fails when a module imports one above it, or modules import each other: imports run one
way, downwards (DESIGN.md).

Each top-level module of src/ has a layer; a file may name `crate::<module>` only for
modules in its own layer or below. Doc links (`//!`, `///` lines) are ignored.
"""
import pathlib
import re
import sys

LAYERS = [
    ["text", "hex", "clock", "random"],
    ["format", "hash", "scope", "ratelimit", "cidr", "origin", "certificate", "metrics"],
    ["record"],
    ["store", "invalidation", "token"],
    ["usage", "audit"],
    ["keyring"],
    ["http", "testing", "guide"],
]
LAYER = {module: i for i, modules in enumerate(LAYERS) for module in modules}
ROOT = pathlib.Path(__file__).resolve().parent.parent / "src"

def module_of(path):
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "bin":
        return None  # the CLI sits on top of everything
    name = rel.parts[0]
    return name[:-3] if name.endswith(".rs") else name

bad = []
edges = {}
for path in sorted(ROOT.rglob("*.rs")):
    own = module_of(path)
    if own is None or own == "lib":
        continue
    if own not in LAYER:
        bad.append(f"{path.relative_to(ROOT.parent)}: module '{own}' has no layer in .ci/check-imports.py")
        continue
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith(("//", "#[doc")):
            continue
        for used in re.findall(r"crate::([a-z_]+)", line):
            if used in LAYER and used != own:
                edges.setdefault(own, set()).add(used)
            if used in LAYER and LAYER[used] > LAYER[own]:
                bad.append(f"{path.relative_to(ROOT.parent)}:{lineno}: '{own}' imports '{used}', a layer above it")
# Within a layer, modules may use each other, but never in a cycle.
def reaches(start, goal, seen=()):
    return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,)))
               for n in edges.get(start, ()))
for module in sorted(edges):
    for used in sorted(edges[module]):
        if reaches(used, module):
            bad.append(f"src/{module}: imports '{used}', which imports it back (a cycle)")
for line in bad:
    print(line, file=sys.stderr)
if bad:
    sys.exit(1)
print(f"imports: every module imports only its own layer or below ({len(LAYERS)} layers)")
