#!/usr/bin/env bash
# Shows the add-in doing its job in the emulated 1C platform (host/examples/demo.rs), printed
# as the 1C calls and their results: a server and a client exchanging text, Cyrillic and
# binary messages, first on a thin client with every event pushed to ВнешнееСобытие
# (РежимДоставки = "События"), then in a scheduled job on the 1C server pulling the same
# traffic (РежимДоставки = "Опрос"), a close with a code and a reason, an exception in both
# interface languages, then the platform's memory counters and the calls made after Done().
# Exits non-zero if any step does not behave (or if it runs for more than 55 s).
#
# Builds the add-in as shipped (release, no test-only members) first. With --no-build it
# uses $WS1C_ADDIN (or target/release/libwebsocket1c.so) as it is: scripts/test.sh runs it
# that way on the add-in it has just built.
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
args=()
for a in "$@"; do
    case "$a" in
    --no-build) build=0 ;;
    *) args+=("$a") ;; # --members: also list every member of both objects
    esac
done
if [ "$build" = 1 ]; then
    cargo build --release -p ws1c-abi
    export WS1C_ADDIN="$(pwd)/target/release/libwebsocket1c.so"
fi
export WS1C_ADDIN="${WS1C_ADDIN:-$(pwd)/target/release/libwebsocket1c.so}"
cargo build --release -q -p ws1c-host --example demo
timeout 60 target/release/examples/demo "${args[@]}"
