#!/usr/bin/env bash
# Measures ping round trips through tunbridge against the published design and against the
# floors, interleaved over several rounds (issues 6 and 10): installs what is missing,
# builds as you, re-runs itself with sudo when you are not root (the namespace and the TUN
# devices need it), and hands over to `python3 -m harness bench` (harness/bench.py says what
# each variant is).
#
#   scripts/bench.sh [--rounds 5] [--count 200] [--interval 0.01] [--size 56]
#                         [--variants "tunbridge tunbridge-fifo floor pyhelper inproc kernel"]
#                         [--cpu N] [--out DIR] [--svg PATH]
# Results: DIR (default target/bench/<UTC time>) holds the raw ping output and records,
# machine.txt, summary.md and summary.json, and the RTT plot (rtt.svg, or --svg PATH).
# Takes about rounds x variants x (count x interval + 2) seconds.
#
# TUNBRIDGE (the daemon) and TUNBRIDGE_EXAMPLES (the folder holding native_agent and
# inproc_responder) take binaries built elsewhere, as the tests do; otherwise they are built.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

for arg in "$@"; do [[ $arg == -h || $arg == --help ]] && { tb_usage; exit 0; }; done
if ! tb_is_root; then
    command -v sudo >/dev/null || TB_DIE_STATUS=2 die "needs root for the network namespace and the TUN devices: run it as root (no sudo here)"
    tb_sudo_now "the benchmark needs root (network namespace, TUN devices)"
fi
tb_install_commands ip ping python3 gcc
if [[ -z ${TUNBRIDGE:-} || -z ${TUNBRIDGE_EXAMPLES:-} ]]; then
    # `sudo scripts/bench.sh` in your checkout takes what you built; root builds nothing there.
    built=(target/release/tunbridge target/release/examples/native_agent target/release/examples/inproc_responder)
    if ! tb_root_in_users_checkout || ! ls "${built[@]}" >/dev/null 2>&1; then
        tb_not_as_root_for_a_user "building tunbridge"
        say "building (cargo build --release: tunbridge, native_agent, inproc_responder)"
        cargo build --release -q -p tunbridge --bin tunbridge --example native_agent --example inproc_responder
    fi
    export TUNBRIDGE=${TUNBRIDGE:-$ROOT/target/release/tunbridge} TUNBRIDGE_EXAMPLES=${TUNBRIDGE_EXAMPLES:-$ROOT/target/release/examples}
fi
if ! tb_is_root; then
    say "the benchmark needs root (network namespace, TUN devices); re-running with sudo"
    exec sudo PYTHONDONTWRITEBYTECODE=1 TUNBRIDGE="$TUNBRIDGE" TUNBRIDGE_EXAMPLES="$TUNBRIDGE_EXAMPLES" \
        "$(command -v python3)" -m harness bench "$@"
fi
exec python3 -m harness bench "$@"
