#!/usr/bin/env bash
# Measures ping round trips through tunbridge against the published design and
# against the floors, interleaved over several rounds, in one run (issues 6 and 10).
#
# Each round runs every variant once, in a rotated order, in a private network
# namespace (nothing is configured in the machine's own namespace):
#   tunbridge   tunbridge serve + the native agent (a persistent READ/WRITE process,
#               one connection to the bridge's private channel, kept)
#   tunbridge-fifo  tunbridge serve + the same agent on the shared FIFOs (--fifo), the
#               published protocol, as the floor and the Python helper are driven
#   floor       scripts/bench/floor.c, the least a bridge for the protocol can do (one
#               thread, blocking FIFOs, no checks, no logging; built here with gcc)
#               + the same native agent
#   pyhelper    scripts/bench/py_fifo_helper.py + the same native agent, unchanged
#   inproc      examples/inproc_responder.rs: answers on the TUN device in-process
#   kernel      the namespace's own kernel answering ping 127.0.0.1 (no TUN at all)
#   tunbridge-cpu  tunbridge serve --cpu N (only with --cpu N)
# Every variant gets a short warm-up ping first, then COUNT pings at INTERVAL s.
# Per-ping RTTs come from iputils ping's `time=` field; tunbridge's own share
# (queue_ms, write_us) comes from `tunbridge serve --record`.
#
#   sudo scripts/bench.sh [--rounds 5] [--count 200] [--interval 0.01] [--size 56]
#                         [--variants "tunbridge floor ..."] [--cpu N]
#                         [--out DIR] [--svg PATH]
# Results: DIR (default target/bench/<UTC time>) holds the raw ping output and
# records, machine.txt, summary.md and summary.json, and the RTT plot (rtt.svg,
# or --svg PATH). Takes about rounds x variants x (count x interval + 2) seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib/common.sh

ROUNDS=5 COUNT=200 INTERVAL=0.01 SIZE=56 WARMUP=10 OUT= SVG= CPU=
VARIANTS="tunbridge tunbridge-fifo floor pyhelper inproc kernel"
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --interval) INTERVAL=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --variants) VARIANTS=$2; shift 2 ;;
        --cpu) CPU=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --svg) SVG=$2; shift 2 ;;
        -h|--help) tb_usage; exit 0 ;;
        *) echo "bench.sh: unknown flag $1" >&2; tb_usage >&2; exit 2 ;;
    esac
done
OUT=${OUT:-target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
SVG=${SVG:-$OUT/rtt.svg}

tb_is_root || TB_DIE_STATUS=2 die "needs root for the network namespace and the TUN devices (run with sudo)"
tb_install_commands ip ping python3 gcc

# TUNBRIDGE (the daemon) and TUNBRIDGE_EXAMPLES (the folder holding native_agent and
# inproc_responder) take binaries built elsewhere, as the tests do; otherwise they are built.
if [[ -n ${TUNBRIDGE:-} && -n ${TUNBRIDGE_EXAMPLES:-} ]]; then
    BIN=$TUNBRIDGE EXAMPLES=$TUNBRIDGE_EXAMPLES
else
    say "building (cargo build --release: tunbridge, native_agent, inproc_responder)"
    cargo build --release -q -p tunbridge --bin tunbridge --example native_agent --example inproc_responder
    BIN=$ROOT/target/release/tunbridge EXAMPLES=$ROOT/target/release/examples
fi
AGENT=$EXAMPLES/native_agent
INPROC=$EXAMPLES/inproc_responder
HELPER=$ROOT/scripts/bench/py_fifo_helper.py

NETNS=tbbench-$$
WORK=$(mktemp -d /tmp/tbbench.XXXXXX)
tb_track_dir "$WORK"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tb_traps

FLOOR=$WORK/floor
say "building the floor (gcc -O2 scripts/bench/floor.c)"
gcc -O2 -o "$FLOOR" scripts/bench/floor.c

say "creating network namespace $NETNS (loopback up; every TUN device goes inside it)"
tb_netns_create "$NETNS"

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "command: scripts/bench.sh --rounds $ROUNDS --count $COUNT --interval $INTERVAL --size $SIZE --variants \"$VARIANTS\"${CPU:+ --cpu $CPU}"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- bridge examples scripts/bench scripts/bench.sh 2>/dev/null || echo ' (with local changes)')"
    echo "nproc: $(nproc)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel: $(uname -sr)"
    echo "ping: $(ping -V | head -1)"
    echo "python: $(python3 --version 2>&1)"
    echo "gcc: $(gcc --version | head -1)"
    echo "rustc: $(rustc --version)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busiest processes before: $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{printf "%s %s%%; ", $2, $1}')"
} >"$OUT/machine.txt"
sed 's/^/    /' "$OUT/machine.txt"

# Waits until FILE has a line containing TEXT, or fails after 10 s.
wait_for() { tb_wait_for_line "$1" "$2" 10 || exit 1; }

# Pings TARGET inside the namespace: a warm-up, then the measured run into FILE.
measure() {
    local target=$1 file=$2
    ip netns exec "$NETNS" ping -n -q -c "$WARMUP" -i "$INTERVAL" -W 1 -s "$SIZE" "$target" >/dev/null || true
    ip netns exec "$NETNS" ping -n -c "$COUNT" -i "$INTERVAL" -W 1 -s "$SIZE" "$target" >"$file" || true
    tail -2 "$file" | head -1 | sed 's/^/      /'
}

# Starts the native agent on the FIFOs in WORK (extra flags: --fifo).
start_agent() {
    "$AGENT" --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" "$@" >/dev/null 2>"$WORK/agent.err" &
    tb_track_pid $!
}

# Runs tunbridge as variant NAME, its agent with AGENT_FLAGS, with any extra serve flags.
serve_tunbridge() {
    local r=$1 name=$2 agent_flags=$3
    shift 3
    "$BIN" serve --netns "$NETNS" --tun tbench --address 192.0.2.1/24 --peer 192.0.2.2 \
        --keep-root --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" \
        --record "$OUT/$name-r$r.jsonl" "$@" 2>"$WORK/bridge.log" &
    tb_track_pid $!
    wait_for "$WORK/bridge.log" "bridge ready"
    start_agent $agent_flags
    measure 192.0.2.2 "$OUT/$name-r$r.ping"
}

run_tunbridge() { serve_tunbridge "$1" tunbridge ""; }
run_tunbridge-fifo() { serve_tunbridge "$1" tunbridge-fifo --fifo; }
run_tunbridge-cpu() { serve_tunbridge "$1" tunbridge-cpu "" --cpu "$CPU"; }

run_floor() {
    local r=$1
    ip netns exec "$NETNS" "$FLOOR" tbench 192.0.2.1/24 "$WORK/cmd" "$WORK/resp" \
        2>"$WORK/floor.log" &
    tb_track_pid $!
    wait_for "$WORK/floor.log" "ready"
    start_agent
    measure 192.0.2.2 "$OUT/floor-r$r.ping"
}

run_pyhelper() {
    local r=$1
    ip netns exec "$NETNS" python3 "$HELPER" --tun tbench --address 192.0.2.1/24 \
        --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" 2>"$WORK/helper.log" &
    tb_track_pid $!
    wait_for "$WORK/helper.log" "ready"
    start_agent
    measure 192.0.2.2 "$OUT/pyhelper-r$r.ping"
}

run_inproc() {
    local r=$1
    "$INPROC" --netns "$NETNS" --tun tbench --address 192.0.2.1/24 2>"$WORK/inproc.log" &
    tb_track_pid $!
    wait_for "$WORK/inproc.log" "ready"
    measure 192.0.2.2 "$OUT/inproc-r$r.ping"
}

run_kernel() {
    local r=$1
    measure 127.0.0.1 "$OUT/kernel-r$r.ping"
}

read -ra variants <<<"$VARIANTS"
[[ -z $CPU ]] || variants+=(tunbridge-cpu)
for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < ${#variants[@]}; i++)); do
        v=${variants[(i + r - 1) % ${#variants[@]}]}
        say "round $r/$ROUNDS: $v ($WARMUP warm-up pings, then $COUNT at -i $INTERVAL -s $SIZE)"
        # A log left by the round before could be read as this variant's "ready" before
        # its process has truncated it (the redirection happens in the child).
        rm -f "$WORK"/*.log
        "run_$v" "$r"
        tb_stop_pids
    done
done

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
say "summarising into $OUT/summary.md"
python3 scripts/bench/summarize.py "$OUT" | tee "$OUT/summary.md"
say "plotting RTT per ping into $SVG"
python3 scripts/bench/plot.py "$OUT" "$SVG"
say "done: raw data, summary and plot in $OUT"
