#!/usr/bin/env bash
# Starts the bridge in a private network namespace, so the host's networking is
# untouched: builds tunbridge if needed, creates the namespace, runs
# `tunbridge serve --netns NAME` with any flags you pass, and deletes the
# namespace again on exit (Ctrl-C).
#
#   scripts/bridge.sh [serve flags...]      e.g. scripts/bridge.sh --record out.jsonl
#   NETNS=tunbridge (default)  TUNBRIDGE=path/to/binary (default: target/release/tunbridge)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh
NETNS=${NETNS:-tunbridge}
BIN=${TUNBRIDGE:-$ROOT/target/release/tunbridge}

if ! tb_is_root; then
    command -v sudo >/dev/null || TB_DIE_STATUS=2 die "the bridge needs root for the TUN device; run it as root (no sudo here)"
    tb_sudo_now "the bridge needs root for the TUN device"
fi
tb_install_commands ip
if [[ ! -x $BIN ]]; then
    tb_not_as_root_for_a_user "building tunbridge"
    say "building tunbridge (cargo build --release)"
    cargo build --release -q -p tunbridge
fi
if ! tb_is_root; then
    # The files the bridge writes (--record, --pcap) are made here, as you, so they stay
    # yours: the bridge opens them while it is still root.
    args=("$@")
    for ((i = 0; i < ${#args[@]}; i++)); do
        case ${args[i]} in
            --record | --pcap) file=${args[i + 1]:-} ;;
            --record=* | --pcap=*) file=${args[i]#*=} ;;
            *) continue ;;
        esac
        [[ -z $file || -e $file || -L $file ]] || touch -- "$file" 2>/dev/null || true
    done
    say "the bridge needs root for the TUN device; re-running with sudo"
    exec sudo NETNS="$NETNS" TUNBRIDGE="$BIN" RUST_LOG="${RUST_LOG:-info}" "$0" "$@"
fi

tb_on_exit() {
    ((${#TB_NETNS[@]})) && say "deleting network namespace $NETNS"
}
tb_traps
if ! ip netns list | grep -qw "^$NETNS"; then
    say "creating network namespace $NETNS"
    tb_netns_create "$NETNS"
fi
ip -n "$NETNS" link set lo up
say "ping the agent from another terminal:  sudo ip netns exec $NETNS ping 192.0.2.2   (or ping -6 2001:db8::2)"
say "answer by hand:  tunbridge read   then   tunbridge write <hex>"
status=0
"$BIN" serve --netns "$NETNS" "$@" || status=$?
exit "$status"
