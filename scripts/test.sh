#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what it needs, checks
# formatting and lints, builds the add-in with its test-only members, runs the unit tests,
# the host tests through the C ABI (Rust host and C++ host), the Autobahn conformance cases
# (reports in target/autobahn/) and the interop peers, the demo (scripts/demo.sh), and the
# Rust host suite under valgrind memcheck; then builds the package a 1C developer receives (manifest/package.sh:
# dist/WebSocket.zip, glibc 2.17, its pinned tools installed into .tools/ on the first run)
# and checks it (tests/package.rs). Ends with one line "N passed, M failed"; exits non-zero
# on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log_dir="$root/target/test-logs"
mkdir -p "$log_dir"
passed=0
failed=0
failures=()

step() { printf '\n=== %s\n' "$*"; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); failures+=("$*"); echo "FAILED: $*"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

step "tools"
missing=()
command -v g++ >/dev/null || missing+=(g++)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v openssl >/dev/null || missing+=(openssl)
command -v node >/dev/null || missing+=(nodejs npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# nginx for tests/proxy_nginx.rs (the test runs it itself, from a temporary folder).
[ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy
# Real peers: Python `websockets`, the `pproxy` HTTP/SOCKS proxy and the Autobahn runner
# `kosoku` (tests/autobahn.rs), python-socketio on aiohttp (tests/socketio.rs) in the project's own venv (pinned).
py_pins=('websockets==17.4' 'pproxy==2.7.9' 'kosoku==0.1.0' 'python-socketio==5.14.0' 'python-engineio==4.15.1' 'aiohttp==3.12.15')
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys, importlib.metadata as m
sys.exit(any(m.version(n) != v for n, v in (p.split("==") for p in sys.argv[1:])))' "${py_pins[@]}" 2>/dev/null; then
    [ -x .venv/bin/python ] || python3 -m venv .venv ||
        { as_root apt-get install -y -q python3-venv && python3 -m venv .venv; }
    .venv/bin/pip install -q "${py_pins[@]}"
fi
export WS1C_PYTHON="$root/.venv/bin/python"
export WS1C_KOSOKU="$root/.venv/bin/kosoku"
# Node `ws` and playwright-core (which drives Debian's Chromium; it never downloads a browser).
if [ ! -d tests/peers/node/node_modules/ws ] || [ ! -d tests/peers/node/node_modules/playwright-core ] || [ ! -d tests/peers/node/node_modules/socket.io ]; then
    (cd tests/peers/node && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo --version; g++ --version | head -1; valgrind --version

FEATURES=(--features ws1c-abi/test-hooks)

step "format"
if cargo fmt --all -- --check; then ok "cargo fmt"; else bad "cargo fmt --check"; fi

step "clippy"
if cargo clippy --workspace --all-targets "${FEATURES[@]}" -- -D warnings &&
    cargo clippy --workspace --all-targets -- -D warnings; then
    ok "cargo clippy"
else
    bad "cargo clippy -D warnings"
fi

step "build the add-in with test hooks (release)"
if ! cargo build --release -p ws1c-abi "${FEATURES[@]}"; then
    bad "release build"
    echo "$passed passed, $failed failed"
    exit 1
fi
export WS1C_ADDIN="$root/target/release/libwebsocket1c.so"

count_results() {
    # Sums cargo's "test result: ... N passed; M failed" lines of a log.
    local p f
    p=$(grep -aoE '[0-9]+ passed; [0-9]+ failed' "$1" | awk '{s+=$1} END {print s+0}')
    f=$(grep -aoE '[0-9]+ passed; [0-9]+ failed' "$1" | awk '{s+=$3} END {print s+0}')
    passed=$((passed + p))
    failed=$((failed + f))
}

step "tests (release, through the C ABI)"
RUST_BACKTRACE=0 cargo test --workspace --release "${FEATURES[@]}" 2>&1 | tee "$log_dir/cargo-test.log"
rc=${PIPESTATUS[0]}
count_results "$log_dir/cargo-test.log"
[ "$rc" = 0 ] || failures+=("cargo test (exit $rc)")
if [ "$rc" != 0 ] && ! grep -aqE '[1-9][0-9]* failed' "$log_dir/cargo-test.log"; then
    failed=$((failed + 1))
fi

step "fuzz: cargo-fuzz targets, regression corpus then a bounded run each (scripts/fuzz.sh)"
if scripts/fuzz.sh >"$log_dir/fuzz.log" 2>&1; then
    grep -E '^(FUZZ SKIPPED|=== fuzz|stat::number_of_executed_units|fuzz:)' "$log_dir/fuzz.log"
    ok "fuzz"
else
    bad "fuzz (see target/test-logs/fuzz.log)"
    tail -40 "$log_dir/fuzz.log"
fi

step "demo: the add-in at work in the emulated platform (scripts/demo.sh, exit code checked)"
if timeout 120 scripts/demo.sh --no-build >"$log_dir/demo.log" 2>&1; then
    ok "demo"
else
    bad "demo (see target/test-logs/demo.log)"
    tail -30 "$log_dir/demo.log"
fi

step "benchmark smoke run (every scenario for a moment; speed is not checked)"
if cargo build --release -q -p ws1c-bench &&
    timeout 600 target/release/ws1c-bench --smoke --out "$root/target/bench/smoke.json" \
        >"$log_dir/bench-smoke.log" 2>&1; then
    ok "bench smoke"
else
    bad "bench smoke (see target/test-logs/bench-smoke.log)"
    tail -20 "$log_dir/bench-smoke.log"
fi

step "soak, 2 minutes (scripts/soak.sh: 1,000 server connections, 10 reconnecting clients, peer restarts)"
if cargo build --release -q -p ws1c-bench --bin soak &&
    SOAK_NO_BUILD=1 SOAK_SECONDS=120 scripts/soak.sh >"$log_dir/soak.log" 2>&1; then
    ok "soak 2m"
    sed -n '/^soak summary/,$p' "$log_dir/soak.log"
else
    bad "soak 2m (see target/test-logs/soak.log)"
    tail -30 "$log_dir/soak.log"
fi

step "core unit tests without test hooks"
cargo test -q -p ws1c --lib 2>&1 | tee "$log_dir/core-no-hooks.log"
rc=${PIPESTATUS[0]}
count_results "$log_dir/core-no-hooks.log"
[ "$rc" = 0 ] || { failures+=("core tests without hooks"); failed=$((failed + 1)); }

step "valgrind memcheck: Rust host suites and the C++ host"
vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
    --show-leak-kinds=definite --track-origins=no -q)
# The ABI host suites under memcheck (the network suites are too slow under valgrind and
# exercise the same ABI paths).
mapfile -t exes < <(cargo test --workspace --release --no-run "${FEATURES[@]}" --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    t = m.get("target", {})
    if (m.get("reason") == "compiler-artifact" and m.get("executable") and t.get("kind") == ["test"]
            and t.get("name") in ("abi_host", "no_capabilities", "pinning", "client_memcheck")):
        print(m["executable"])')
[ ${#exes[@]} -gt 0 ] || bad "no host test executables found for valgrind"
for exe in "${exes[@]}"; do
    name=$(basename "$exe")
    if RUST_BACKTRACE=0 "${vg[@]}" "$exe" --test-threads=1 >"$log_dir/valgrind-$name.log" 2>&1; then
        ok "valgrind $name"
    else
        bad "valgrind $name (see target/test-logs/valgrind-$name.log)"
        tail -40 "$log_dir/valgrind-$name.log"
    fi
done
if RUST_BACKTRACE=0 "${vg[@]}" "$root/target/cpp/host" "$WS1C_ADDIN" >"$log_dir/valgrind-cpp-host.log" 2>&1; then
    ok "valgrind cpp host"
else
    bad "valgrind cpp host (see target/test-logs/valgrind-cpp-host.log)"
    tail -40 "$log_dir/valgrind-cpp-host.log"
fi

step "package: manifest/package.sh, then the archive's checks (tests/package.rs)"
if bash manifest/package.sh 2>&1 | tee "$log_dir/package.log"; [ "${PIPESTATUS[0]}" = 0 ]; then
    ok "manifest/package.sh"
    # Same features as above, so nothing is rebuilt for this one test binary.
    RUST_BACKTRACE=0 cargo test --workspace --release "${FEATURES[@]}" --test package -- --ignored 2>&1 |
        tee "$log_dir/package-test.log"
    rc=${PIPESTATUS[0]}
    count_results "$log_dir/package-test.log"
    if [ "$rc" != 0 ] && ! grep -aqE '[1-9][0-9]* failed' "$log_dir/package-test.log"; then
        bad "package test (exit $rc)"
    fi
else
    bad "manifest/package.sh (see target/test-logs/package.log)"
fi

step "summary"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ ${#failures[@]} = 0 ]
