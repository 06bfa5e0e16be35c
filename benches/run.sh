#!/usr/bin/env bash
# Builds the shipped add-in and the benchmark in release mode and runs every scenario: the
# add-in side (and the raw baselines) pinned to core 0, the load generator to core 1.
# Prints the Markdown table; writes target/bench/latest.json and latest.md.
# Extra arguments go to the benchmark: --quick, --runs N, --only ingest,egress,…
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ws1c-abi
cargo build --release -q -p ws1c-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pin=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    pin=(taskset -c 0)
    set -- --pin "$@"
fi
export WS1C_ADDIN="$PWD/target/release/libwebsocket1c.so"
exec "${pin[@]}" target/release/ws1c-bench "$@"
