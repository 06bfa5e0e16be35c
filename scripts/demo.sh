#!/usr/bin/env bash
# Builds the add-in (release, as shipped: no test-only members) and shows it working in the
# emulated 1C platform: the platform's attach sequence, both objects' members in Russian and
# English, defaults, properties, exceptions in Russian and English, Done and DestroyObject
# with the platform's memory accounted for.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ws1c-abi
WS1C_ADDIN="$(pwd)/target/release/libwebsocket1c.so" cargo run --release -q -p ws1c-host --example demo
