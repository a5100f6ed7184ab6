"""A channel client that never reads, against the bridge: `python3 -m harness flood BIN...`.

What a client of the private channel that pipelines commands and never reads its answers
costs the bridge (issue 22): the bridge's RSS and CPU over time, and the ping RTT of an
agent answering beside it. For each BIN (a `tunbridge` build; copy each to a folder of its
own, as for `bench`), in a private network namespace: the bridge and the native agent on
its channel, a ping every 50 ms throughout; from 5 s a client connects to
`<cmd-fifo>.sock` and writes `WRITE zz` lines as fast as its socket takes them, reading
nothing, for FLOOD seconds; then 5 s more. The bridge's VmRSS and CPU time are read from
/proc every half second.

Prints per build and phase (before, flood, after): the largest RSS, the CPU share, the
ping RTT median and p90 and the replies; and how many bytes the flood got written.
Samples (`NAME.tsv`), ping output (`NAME.ping`) and bridge logs stay in DIR (default
target/bench/flood-<UTC time>).
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

from harness import ROOT, ArgumentParser, stats
from harness.bench import ab_name
from harness.netns import Namespace
from harness.procs import Procs

PHASES = ("before", "flood", "after")
BEFORE = AFTER = 5.0
SAMPLE = 0.5
LINES = b"WRITE zz\n" * 455
STAMPED = re.compile(r"\[([0-9.]+)\][^\n]*time=([0-9.]+) ms")


def sample(pid: int):
    """(RSS in KiB, CPU seconds) of process `pid`, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood(pid: int, path: str, seconds: float, tsv: str) -> None:
    """Samples the bridge `pid` for the three phases, the flood client writing to the socket
    at `path` in the middle one; one line per sample in `tsv` (unix time, phase, RSS KiB,
    CPU s, bytes the flood got written)."""
    start = time.time()
    client, written, phase = None, 0, "before"
    next_sample = start
    with open(tsv, "w") as out:
        out.write("t\tphase\trss_kib\tcpu_s\tflood_bytes\n")
        while time.time() - start < BEFORE + seconds + AFTER:
            now = time.time() - start
            if phase == "before" and now >= BEFORE:
                client = socket.socket(socket.AF_UNIX)
                client.connect(path)
                client.setblocking(False)
                phase = "flood"
            if phase == "flood" and now >= BEFORE + seconds:
                client.close()
                phase = "after"
            if phase == "flood":
                try:
                    written += client.send(LINES)
                except (BlockingIOError, ConnectionError):
                    time.sleep(0.001)
            else:
                time.sleep(0.01)
            if time.time() >= next_sample:
                rss, cpu = sample(pid)
                out.write(f"{time.time():.2f}\t{phase}\t{rss}\t{cpu:.2f}\t{written}\n")
                next_sample += SAMPLE


def summarise(tsv_text: str, ping_text: str) -> dict:
    """Per phase: RSS (largest and last, MiB), CPU %, ping median and p90 (ms) and replies;
    and the bytes the flood got written."""
    rows = [line.split("\t") for line in tsv_text.splitlines()[1:] if line.strip()]
    pings = [(float(at), float(ms)) for at, ms in STAMPED.findall(ping_text)]
    out = {"flood_bytes": int(rows[-1][4]) if rows else 0, "phases": {}}
    for phase in PHASES:
        sel = [r for r in rows if r[1] == phase]
        if len(sel) < 2:
            continue
        t = [float(r[0]) for r in sel]
        rtt = [ms for at, ms in pings if t[0] <= at <= t[-1]]
        out["phases"][phase] = {
            "rss_max_mib": max(int(r[2]) for r in sel) / 1024,
            "rss_end_mib": int(sel[-1][2]) / 1024,
            "cpu_percent": (float(sel[-1][3]) - float(sel[0][3])) / (t[-1] - t[0]) * 100,
            "rtt_median_ms": stats.median(rtt),
            "rtt_p90_ms": stats.nearest_rank(rtt, 90) if rtt else None,
            "replies": len(rtt),
        }
    return out


def text(name: str, s: dict) -> str:
    """The summary of one build, as the lines printed."""
    lines = [f"{name}: the flood client got {s['flood_bytes']:,} bytes written"]
    for phase, p in s["phases"].items():
        rtt = "no replies" if p["rtt_median_ms"] is None else \
            f"ping median {p['rtt_median_ms']:.3f} ms, p90 {p['rtt_p90_ms']:.3f} ms"
        lines.append(f"  {phase:6}  RSS largest {p['rss_max_mib']:5.1f} MiB (last {p['rss_end_mib']:.1f})  "
                     f"CPU {p['cpu_percent']:5.1f} %  {rtt} ({p['replies']} replies)")
    return "\n".join(lines)


def run_one(binary: str, name: str, seconds: float, out: str, ns: Namespace, work: str) -> None:
    cmd, resp = os.path.join(work, "cmd"), os.path.join(work, "resp")
    agent = os.path.join(os.environ.get("TUNBRIDGE_EXAMPLES") or os.path.join(ROOT, "target", "release", "examples"),
                         "native_agent")
    log = os.path.join(out, f"{name}.log")
    with Procs() as procs:
        with open(log, "w") as f:
            bridge = procs.start([binary, "serve", "--netns", ns.name, "--tun", "tbflood",
                                  "--address", "192.0.2.1/24", "--peer", "192.0.2.2", "--keep-root",
                                  "--cmd-fifo", cmd, "--resp-fifo", resp], stdout=subprocess.DEVNULL, stderr=f)
        deadline = time.monotonic() + 10
        while "bridge ready" not in open(log).read():
            if bridge.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{binary} did not start: {open(log).read().strip()}")
            time.sleep(0.05)
        procs.start([agent, "--cmd-fifo", cmd, "--resp-fifo", resp],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = str(int(BEFORE + seconds + AFTER))
        with open(os.path.join(out, f"{name}.ping"), "w") as f:
            procs.start(ns.argv("ping", "-n", "-D", "-i", "0.05", "-W", "1", "-w", total, "192.0.2.2"),
                        stdout=f, stderr=subprocess.STDOUT)
        flood(bridge.pid, cmd + ".sock", seconds, os.path.join(out, f"{name}.tsv"))
        time.sleep(1)   # the last pings' replies


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python3 -m harness flood", description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+", metavar="BIN", help="tunbridge builds, each in a folder of its own")
    ap.add_argument("--flood", type=float, default=20.0, help="seconds the client floods (default 20)")
    ap.add_argument("--out", help="results folder (default target/bench/flood-<UTC time>)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("harness flood: needs root for the network namespace and the TUN device", file=sys.stderr)
        return 2
    out = os.path.abspath(a.out or os.path.join(ROOT, "target", "bench",
                                                time.strftime("flood-%Y%m%dT%H%M%SZ", time.gmtime())))
    os.makedirs(out, exist_ok=True)
    print(f"    load before: {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tbflood.") as work, Namespace(f"tbflood-{os.getpid()}") as ns:
        for binary in a.binaries:
            name = ab_name(binary)
            print(f"==> {name}: bridge, agent and pings; the flood from {BEFORE:g} s to {BEFORE + a.flood:g} s",
                  flush=True)
            run_one(os.path.abspath(binary), name, a.flood, out, ns, work)
    print(f"    load after: {' '.join(open('/proc/loadavg').read().split()[:3])}", flush=True)
    for binary in a.binaries:
        name = ab_name(binary)
        with open(os.path.join(out, f"{name}.tsv")) as t, open(os.path.join(out, f"{name}.ping")) as p:
            print(text(name, summarise(t.read(), p.read())), flush=True)
    print(f"==> done: samples, ping output and logs in {out}", flush=True)
    return 0
