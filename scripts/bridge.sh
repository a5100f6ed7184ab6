#!/usr/bin/env bash
# Starts the bridge in a private network namespace, so the host's networking is
# untouched: builds tunbridge if needed, creates the namespace, runs
# `tunbridge serve --netns NAME` with any flags you pass, and deletes the
# namespace again on exit (Ctrl-C).
#
#   scripts/bridge.sh [serve flags...]      e.g. scripts/bridge.sh --record out.jsonl
#   NETNS=tunbridge (default)  TUNBRIDGE=path/to/binary (default: target/release/tunbridge)
set -euo pipefail
cd "$(dirname "$0")/.."
NETNS=${NETNS:-tunbridge}
BIN=${TUNBRIDGE:-$PWD/target/release/tunbridge}

if [[ ! -x $BIN ]]; then
    echo "==> building tunbridge (cargo build --release)"
    cargo build --release -q -p tunbridge
fi
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "bridge.sh: the bridge needs root for the TUN device; run it as root (no sudo here)" >&2; exit 2; }
    echo "==> the bridge needs root for the TUN device; re-running with sudo"
    exec sudo NETNS="$NETNS" TUNBRIDGE="$BIN" RUST_LOG="${RUST_LOG:-info}" "$0" "$@"
fi

created=
cleanup() {
    if [[ -n $created ]]; then
        echo "==> deleting network namespace $NETNS"
        ip netns del "$NETNS" 2>/dev/null || true
    fi
}
trap cleanup EXIT
if ! ip netns list | grep -qw "^$NETNS"; then
    echo "==> creating network namespace $NETNS"
    ip netns add "$NETNS"
    created=1
fi
ip -n "$NETNS" link set lo up
echo "==> ping the agent from another terminal:  sudo ip netns exec $NETNS ping 192.0.2.2   (or ping -6 2001:db8::2)"
echo "==> answer by hand:  tunbridge read   then   tunbridge write <hex>"
"$BIN" serve --netns "$NETNS" "$@" || status=$?
exit "${status:-0}"
