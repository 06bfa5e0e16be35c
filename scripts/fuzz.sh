#!/usr/bin/env bash
# Fuzzing (cargo-fuzz, fuzz/): for each target, the regression corpus checked in under
# fuzz/corpus/<target>/ is run, then the target is fuzzed for FUZZ_SECONDS (default 30)
# seconds; new inputs go to a scratch directory, never into the repository. Needs a nightly
# toolchain: without one it says so loudly and exits 0. Installs cargo-fuzz (pinned) when
# missing. Exits non-zero on any crash, panic, timeout or leak (libFuzzer leaves the input in
# fuzz/artifacts/<target>/; replay it with
# `cargo +nightly fuzz run <target> <file>`).
#
#   scripts/fuzz.sh [target...]      default: every target
set -uo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-30}
# Outside the work tree, so that a fresh clone on the same machine (CI) rebuilds only the
# project's own crates (a cold build of the instrumented dependencies takes minutes).
target_dir=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ws1c/fuzz-target}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "################################################################"
    echo "FUZZ SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
    echo "################################################################"
    exit 0
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" || {
        echo "FUZZ FAILED: cannot install cargo-fuzz $CARGO_FUZZ_VERSION"
        exit 1
    }
fi

if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
echo "fuzz targets: ${targets[*]}; ${seconds} s each"

# One build for all targets (release, debug assertions, AddressSanitizer).
if ! cargo +nightly fuzz build --target-dir "$target_dir"; then
    echo "FUZZ FAILED: build"
    exit 1
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus" "$scratch/$t"
    echo "=== fuzz $t: regression corpus ($(find "$corpus" -type f | wc -l) inputs)"
    if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$corpus" -- -runs=0 -timeout=10 2>&1 | tail -5; then
        failed+=("$t (regression corpus)")
        continue
    fi
    echo "=== fuzz $t: ${seconds} s"
    # The scratch directory first: libFuzzer adds what it finds there only.
    cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$scratch/$t" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1
    rc=$?
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done )' "$scratch/$t.log"
    if [ "$rc" != 0 ]; then
        tail -40 "$scratch/$t.log"
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FUZZ FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets clean"
