#!/usr/bin/env bash
# What a channel client that pipelines commands and never reads its answers costs the bridge
# (issue 22): the bridge's RSS and CPU over time, and the ping RTT of an agent answering
# beside it. For each BIN, in a private network namespace (nothing is configured in the
# machine's own): the bridge and the native agent on its channel, a ping every 50 ms
# throughout; after 5 s a client connects to <cmd-fifo>.sock and writes `WRITE zz` lines as
# fast as the socket takes them, reading nothing, for --flood seconds; then 5 s more.
#
#   sudo scripts/bench/flood.sh [--flood 20] [--out DIR] BIN...
# BIN: a `tunbridge` binary (copy each build to its own path first). Prints per binary and
# phase (before, flood, after): the bridge's largest RSS, its CPU share, the ping RTT
# median and p90 and the replies; and what the flood client got written. Samples, ping
# output and logs stay in DIR (default target/bench/flood-<UTC time>).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh

FLOOD=20 OUT=
while (($#)); do
    case $1 in
        --flood) FLOOD=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) tb_usage; exit 0 ;;
        *) break ;;
    esac
done
(($#)) || TB_DIE_STATUS=2 die "name at least one tunbridge binary"
tb_is_root || TB_DIE_STATUS=2 die "needs root (namespace, TUN)"
OUT=${OUT:-target/bench/flood-$(date -u +%Y%m%dT%H%M%SZ)}

say "building the native agent"
cargo build --release -q -p tunbridge --example native_agent
AGENT=$PWD/target/release/examples/native_agent
NETNS=tbfl-$$
WORK=$(mktemp -d /tmp/tbfl.XXXXXX)
tb_track_dir "$WORK"
mkdir -p "$OUT"
tb_traps
say "creating network namespace $NETNS"
tb_netns_create "$NETNS"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt"

for bin in "$@"; do
    name=$(basename "$bin")
    say "$name: bridge, agent and pings; the flood from 5 s to $((5 + FLOOD)) s"
    rm -f "$WORK/log"
    "$bin" serve --netns "$NETNS" --tun tbfl --address 192.0.2.1/24 --peer 192.0.2.2 \
        --keep-root --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" 2>"$WORK/log" &
    bridge=$!
    tb_track_pid "$bridge"
    tb_wait_for_line "$WORK/log" "bridge ready" 10 "$bridge"
    "$AGENT" --cmd-fifo "$WORK/cmd" --resp-fifo "$WORK/resp" >/dev/null 2>&1 &
    tb_track_pid $!
    total=$((FLOOD + 10))
    ip netns exec "$NETNS" ping -n -D -i 0.05 -W 1 -w "$total" 192.0.2.2 >"$OUT/$name.ping" &
    tb_track_pid $!
    python3 - "$bridge" "$WORK/cmd.sock" "$FLOOD" "$OUT/$name.tsv" <<'PY'
import os, socket, sys, time
pid, path, flood, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
tick = os.sysconf("SC_CLK_TCK")
def sample():
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return rss, (int(f[11]) + int(f[12])) / tick
start = time.time()
line = b"WRITE zz\n" * 455
client, written, phase = None, 0, "before"
with open(out, "w") as tsv:
    tsv.write("t\tphase\trss_kib\tcpu_s\tflood_bytes\n")
    next_sample = start
    while time.time() - start < flood + 10:
        now = time.time() - start
        if phase == "before" and now >= 5:
            client = socket.socket(socket.AF_UNIX)
            client.connect(path)
            client.setblocking(False)
            phase = "flood"
        if phase == "flood" and now >= 5 + flood:
            client.close()
            phase = "after"
        if phase == "flood":
            try:
                written += client.send(line)
            except (BlockingIOError, ConnectionError):
                time.sleep(0.001)
        else:
            time.sleep(0.01)
        if time.time() >= next_sample:
            rss, cpu = sample()
            tsv.write(f"{time.time():.2f}\t{phase}\t{rss}\t{cpu:.2f}\t{written}\n")
            next_sample += 0.5
PY
    tb_stop_pids
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt"

python3 - "$OUT" "$@" <<'PY'
import csv, os, re, statistics as st, sys
out = sys.argv[1]
for bin in sys.argv[2:]:
    name = os.path.basename(bin)
    rows = list(csv.DictReader(open(f"{out}/{name}.tsv"), delimiter="\t"))
    text = open(f"{out}/{name}.ping").read()
    pings = [(float(a), float(b)) for a, b in re.findall(r"\[([0-9.]+)\].*time=([0-9.]+) ms", text)]
    print(f"{name}: the flood client got {int(rows[-1]['flood_bytes']):,} bytes written")
    for phase in ("before", "flood", "after"):
        sel = [r for r in rows if r["phase"] == phase]
        if len(sel) < 2:
            continue
        t = [float(r["t"]) for r in sel]
        cpu = (float(sel[-1]["cpu_s"]) - float(sel[0]["cpu_s"])) / (t[-1] - t[0]) * 100
        rss = max(int(r["rss_kib"]) for r in sel) / 1024
        rtt = sorted(ms for at, ms in pings if t[0] <= at <= t[-1])
        p90 = rtt[int(len(rtt) * 0.9)] if rtt else float("nan")
        med = st.median(rtt) if rtt else float("nan")
        print(f"  {phase:6}: RSS max {rss:6.1f} MiB (end {int(sel[-1]['rss_kib']) / 1024:.1f})  "
              f"CPU {cpu:5.1f} %  ping median {med:.3f} ms p90 {p90:.3f} ms ({len(rtt)} replies)")
PY
