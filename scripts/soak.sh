#!/usr/bin/env bash
# Soak test: the add-in, loaded through the emulated platform (host/), runs a server object
# with 1,000 connections from a load process and 10 client objects with `reconnect` talking
# to a peer server that is killed and restarted periodically, all on loopback, with
# sequence-checked traffic both ways on every connection (benches/src/bin/soak.rs says
# exactly what is checked). It prints RSS, threads, open fds and queue depths every minute
# (every 10 s in runs of 10 minutes or less) and fails on a sequence violation or on growth
# beyond these bounds, measured from the first sample after warm-up (5 min; 30 s in short
# runs):
#   RSS at the end      <= warm-up RSS + max(25 %, 16 MiB)
#   threads, any sample <= warm-up threads + 8
#   open fds at the end <= warm-up fds + 64
#
# Usage: [SOAK_SECONDS=N] scripts/soak.sh [DURATION]    DURATION: seconds, or 90s / 2m / 1h
#        (default: $SOAK_SECONDS, else 3600; CI runs SOAK_SECONDS=120). SOAK_NO_BUILD=1 skips
#        the build.
# Exits 0 on PASS. Leaves no process behind: everything runs in one process group, which is
# checked empty (and killed if not) at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

dur=${1:-${SOAK_SECONDS:-3600}}
case "$dur" in
    *h) secs=$((${dur%h} * 3600)) ;;
    *m) secs=$((${dur%m} * 60)) ;;
    *s) secs=${dur%s} ;;
    *) secs=$dur ;;
esac
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 30 ]; then
    echo "soak: duration must be at least 30 s, got '$dur'" >&2
    exit 2
fi

if [ "${SOAK_NO_BUILD:-}" != 1 ]; then
    cargo build --release -p ws1c-abi --features ws1c-abi/test-hooks || exit 2
    cargo build --release -p ws1c-bench --bin soak || exit 2
fi
export WS1C_ADDIN=${WS1C_ADDIN:-$root/target/release/libwebsocket1c.so}

# `timeout` puts itself and everything under it into a new process group (pgid = its pid).
timeout -k 20 $((secs + 180)) "$root/target/release/soak" --secs "$secs" &
group=$!
trap 'kill -TERM -- -$group 2>/dev/null; sleep 2; kill -KILL -- -$group 2>/dev/null' INT TERM
wait $group
rc=$?
trap - INT TERM
sleep 1
if pgrep -g "$group" >/dev/null 2>&1; then
    echo "soak: FAIL: processes left behind:" >&2
    pgrep -a -g "$group" >&2
    kill -KILL -- -"$group" 2>/dev/null
    rc=1
fi
[ "$rc" = 124 ] && echo "soak: FAIL: did not stop by itself within $((secs + 180)) s" >&2
exit "$rc"
