#!/usr/bin/env bash
# Runs every cargo-fuzz target (as listed by `cargo fuzz list`) for FUZZ_SECONDS seconds
# each, under AddressSanitizer, and fails if any target crashes, leaks, or times out, or
# has no committed seed corpus.
#
#   FUZZ_SECONDS=10 bash .ci/fuzz.sh
#
# The whole run takes about the ASan build (~3 min on 2 cores from clean, ~1 min when only
# keymint changed) plus (FUZZ_SECONDS + ~5 s) per target.
#
# New inputs go to a scratch corpus (first directory); the committed seeds in
# fuzz/corpus/<target>/ (second directory) are only read, so the checkout stays clean.
# Crash reproducers are written to fuzz/artifacts/<target>/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# cargo-fuzz needs -Zsanitizer=address; stable rustc accepts it with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
# Same flags for build and run, so `run` reuses the build.
FUZZ_FLAGS=(--debug-assertions)

mapfile -t targets < <(cargo fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz: no targets found by 'cargo fuzz list'" >&2
    exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "fuzz: building ${#targets[@]} targets: ${targets[*]}"
build_start=$SECONDS
cargo fuzz build "${FUZZ_FLAGS[@]}"
echo "fuzz: build took $((SECONDS - build_start)) s"

failed=()
for target in "${targets[@]}"; do
    corpora=("$scratch/$target")
    mkdir -p "$scratch/$target"
    if [ -n "$(ls -A "fuzz/corpus/$target" 2>/dev/null)" ]; then
        corpora+=("fuzz/corpus/$target")
    else
        echo "fuzz: $target has no seed corpus in fuzz/corpus/$target: commit a few inputs" >&2
        failed+=("$target")
        continue
    fi
    echo "fuzz: running $target for ${FUZZ_SECONDS} s"
    start=$SECONDS
    if cargo fuzz run "${FUZZ_FLAGS[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=30 -print_final_stats=1 \
        >"$scratch/$target.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$scratch/$target.log" || true
        echo "fuzz: $target ok ($((SECONDS - start)) s)"
    else
        tail -n 60 "$scratch/$target.log" >&2
        echo "fuzz: $target FAILED ($((SECONDS - start)) s); reproducers in fuzz/artifacts/$target/" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: failed targets: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed ($((SECONDS - build_start)) s with the build)"
