#!/usr/bin/env bash
# Compares tunbridge builds (and optionally the Python FIFO helper) in one run: each round
# runs every variant once, in a rotated order, with the same native agent, in a private
# network namespace (nothing is configured in the machine's own namespace). For A/B tests of
# a change, where run-to-run drift on a shared VM is larger than the change itself.
#
#   sudo scripts/bench/ab.sh [--rounds 8] [--count 200] [--out DIR] BIN... [py]
# BIN: a `tunbridge` binary (copy each build to its own path first); `py`: the helper.
# Prints per variant: pooled median RTT, per-round medians, and the records' queue/write
# medians. Raw ping output and records stay in DIR (default target/bench/ab-<UTC time>).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib/common.sh

ROUNDS=8 COUNT=200 OUT=
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --count) COUNT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) tb_usage; exit 0 ;;
        *) break ;;
    esac
done
(($#)) || TB_DIE_STATUS=2 die "name at least one variant"
tb_is_root || TB_DIE_STATUS=2 die "needs root (namespace, TUN)"
VARIANTS=("$@")
OUT=${OUT:-target/bench/ab-$(date -u +%Y%m%dT%H%M%SZ)}

say "building the native agent"
cargo build --release -q -p tunbridge --example native_agent
AGENT=$PWD/target/release/examples/native_agent
HELPER=$PWD/scripts/bench/py_fifo_helper.py
NETNS=tbab-$$
WORK=$(mktemp -d /tmp/tbab.XXXXXX)
tb_track_dir "$WORK"
mkdir -p "$OUT"
tb_traps

say "creating network namespace $NETNS"
tb_netns_create "$NETNS"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"

# Starts variant $1 on the FIFOs in WORK, its record (if any) in $2.
start() {
    local tag=$1 record=$2 text=ready
    # The round before's log could be read as this one's "ready" before the new process
    # has truncated it (the redirection happens in the child).
    rm -f "$WORK/log"
    if [[ $tag == py ]]; then
        ip netns exec "$NETNS" python3 "$HELPER" --tun tbab --address 192.0.2.1/24 \
            --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" 2>"$WORK/log" &
    else
        "$tag" serve --netns "$NETNS" --tun tbab --address 192.0.2.1/24 --peer 192.0.2.2 \
            --keep-root --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" --record "$record" \
            2>"$WORK/log" &
        text="bridge ready"
    fi
    tb_track_pid $!
    tb_wait_for_line "$WORK/log" "$text" 10 $! || exit 1
    "$AGENT" --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" >/dev/null 2>&1 &
    tb_track_pid $!
}

for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < ${#VARIANTS[@]}; i++)); do
        v=${VARIANTS[(i + r - 1) % ${#VARIANTS[@]}]}
        name=$(basename "$v")
        say "round $r/$ROUNDS: $name"
        start "$v" "$OUT/$name-r$r.jsonl"
        ip netns exec "$NETNS" ping -n -q -c 10 -i 0.01 -W 1 192.0.2.2 >/dev/null || true
        ip netns exec "$NETNS" ping -n -c "$COUNT" -i 0.01 -W 1 -s 56 192.0.2.2 \
            >"$OUT/$name-r$r.ping" || true
        tb_stop_pids
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"

python3 - "$OUT" "${VARIANTS[@]}" <<'PY'
import glob, json, os, re, statistics as st, sys
out = sys.argv[1]
for v in sys.argv[2:]:
    name = os.path.basename(v)
    pooled, per, queue, write = [], [], [], []
    for f in sorted(glob.glob(f"{out}/{name}-r*.ping")):
        t = [float(x) for x in re.findall(r"time=([0-9.]+) ms", open(f).read())]
        pooled += t
        per.append(st.median(t) if t else float("nan"))
    for f in glob.glob(f"{out}/{name}-r*.jsonl"):
        for line in open(f):
            e = json.loads(line)
            if e.get("queue_ms") is not None:
                queue.append(e["queue_ms"] * 1000)
            if e.get("write_us") is not None:
                write.append(e["write_us"])
    share = f"  queue {st.median(queue):.1f} us  write {st.median(write):.1f} us" if queue else ""
    rounds = " ".join(f"{x:.3f}" for x in per)
    print(f"{name}: median {st.median(pooled):.3f} ms ({len(pooled)} replies), rounds {rounds}{share}")
PY
