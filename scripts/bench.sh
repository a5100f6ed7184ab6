#!/usr/bin/env bash
# Measures ping round trips through tunbridge against the published design and against the
# floors, interleaved over several rounds (issues 6 and 10): installs what is missing,
# builds, and hands over to `python3 -m harness bench` (harness/bench.py says what each
# variant is). Needs root: run it with sudo.
#
#   sudo scripts/bench.sh [--rounds 5] [--count 200] [--interval 0.01] [--size 56]
#                         [--variants "tunbridge tunbridge-fifo floor pyhelper inproc kernel"]
#                         [--cpu N] [--out DIR] [--svg PATH]
# Results: DIR (default target/bench/<UTC time>) holds the raw ping output and records,
# machine.txt, summary.md and summary.json, and the RTT plot (rtt.svg, or --svg PATH).
# Takes about rounds x variants x (count x interval + 2) seconds.
#
# TUNBRIDGE (the daemon) and TUNBRIDGE_EXAMPLES (the folder holding native_agent and
# inproc_responder) take binaries built elsewhere, as the tests do; otherwise they are built.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

for arg in "$@"; do [[ $arg == -h || $arg == --help ]] && { tb_usage; exit 0; }; done
tb_is_root || TB_DIE_STATUS=2 die "needs root for the network namespace and the TUN devices (run with sudo)"
tb_install_commands ip ping python3 gcc
if [[ -z ${TUNBRIDGE:-} || -z ${TUNBRIDGE_EXAMPLES:-} ]]; then
    say "building (cargo build --release: tunbridge, native_agent, inproc_responder)"
    cargo build --release -q -p tunbridge --bin tunbridge --example native_agent --example inproc_responder
fi
exec python3 -m harness bench "$@"
