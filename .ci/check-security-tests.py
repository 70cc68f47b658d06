#!/usr/bin/env python3
"""Fails when SECURITY.md names a test that does not exist.

Every `file::function` (or `module::...::function`) in SECURITY.md must be a test function
(`fn` preceded by a test attribute, or inside a `proptest!` block) in tests/ or src/, in the
file its first segment names. The tests themselves run in the main test step.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
text = (ROOT / "SECURITY.md").read_text()
named = sorted(set(re.findall(r"`([a-z0-9_]+(?:::[a-z0-9_]+)+)`", text)))

def candidates(first):
    """Files a name starting with `first` may live in."""
    tests = ROOT / "tests"
    files = [tests / f"{first}.rs"] + list((tests / first).glob("*.rs")) if (tests / first).is_dir() else [tests / f"{first}.rs"]
    src = ROOT / "src"
    files += [src / f"{first}.rs"] + list((src / first).rglob("*.rs"))
    return [f for f in files if f.exists()]

def functions(path):
    source = path.read_text()
    return set(re.findall(r"\bfn\s+([a-z0-9_]+)\s*[<(]", source))

missing = []
for name in named:
    parts = name.split("::")
    if parts[-1] == "tests":
        found = any("mod tests" in f.read_text() for f in candidates(parts[0]))
    else:
        found = any(parts[-1] in functions(f) for f in candidates(parts[0]))
    if not found:
        missing.append(name)
for name in missing:
    print(f"SECURITY.md names `{name}`, which is no test of this tree", file=sys.stderr)
if missing:
    sys.exit(1)
print(f"security: all {len(named)} tests SECURITY.md names exist")
