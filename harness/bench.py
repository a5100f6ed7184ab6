"""The bridge against the floors: `python3 -m harness bench` (scripts/bench.sh installs, builds
and hands over to it).

Each round runs every variant once, in a rotated order, in a private network namespace
(nothing is configured in the machine's own namespace):

    tunbridge       tunbridge serve + the native agent (a persistent READ/WRITE process, one
                    connection to the bridge's private channel, kept)
    tunbridge-fifo  tunbridge serve + the same agent on the shared FIFOs (--fifo), the
                    published protocol, as the floor and the Python helper are driven
    floor           scripts/bench/floor.c, the least a bridge for the protocol can do (one
                    thread, blocking FIFOs, no checks, no logging; built here with gcc)
    pyhelper        scripts/bench/py_fifo_helper.py + the same native agent, unchanged
    inproc          examples/inproc_responder.rs: answers on the TUN device in-process
    kernel          the namespace's own kernel answering ping 127.0.0.1 (no TUN at all)
    tunbridge-cpu   tunbridge serve --cpu N (only with --cpu N)
    PATH            another tunbridge build (a path with a slash, e.g. /tmp/a/tunbridge),
                    named by its folder and file (a-tunbridge), for A/B tests of a change: `--variants "/tmp/a/tunbridge
                    /tmp/b/tunbridge pyhelper"` (copy each build to a folder of its own)

Every variant gets a short warm-up ping first, then COUNT pings at INTERVAL s. Per-ping
RTTs come from ping's `time=` (harness/pingout.py); tunbridge's own share (queue_ms,
write_us) from `tunbridge serve --record`. The summary gives each tunbridge/floor ratio per
round too (the two ran minutes apart at most), so drift between rounds on a shared machine
shows as spread rather than hiding in the pooled numbers. Results in DIR (default
target/bench/<UTC time>): the raw ping output and records, machine.txt, summary.md and
summary.json, and the RTT plot (rtt.svg, or --svg PATH).
"""

import glob
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

from harness import ROOT, ArgumentParser, pingout, plot, stats
from harness.netns import Namespace
from harness.procs import Procs

VARIANTS = [
    ("tunbridge", "tunbridge + native agent (channel)"),
    ("tunbridge-fifo", "tunbridge + native agent (FIFOs)"),
    ("tunbridge-cpu", "tunbridge --cpu N + native agent"),
    ("floor", "C floor bridge + native agent"),
    ("pyhelper", "Python FIFO helper + native agent"),
    ("inproc", "in-process responder on TUN"),
    ("kernel", "kernel, ping 127.0.0.1 in the namespace"),
]
TIME = re.compile(r"icmp_seq=(\d+) .*time=([0-9.]+) ms")
SENT = re.compile(r"(\d+) packets transmitted, (\d+) received")


def rounds(directory, variant, ext):
    """The files of one variant, in round order."""
    files = glob.glob(os.path.join(directory, f"{variant}-r*.{ext}"))
    return sorted(files, key=lambda f: int(re.search(r"-r(\d+)\.", f).group(1)))


def read_ping(path):
    """(sequence numbers, RTTs in ms, sent, received) from one ping output."""
    seen = pingout.read(path)
    seqs = [s for s, t in sorted(seen.replies.items()) if t is not None]
    return seqs, [seen.replies[s] for s in seqs], seen.transmitted, seen.received


def read_record(path):
    """Answered entries of the measured ping (the last ping id in the record)."""
    with open(path) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    if not entries:
        return []
    last_id = entries[-1].get("id")
    return [e for e in entries if e.get("id") == last_id and e.get("outcome") == "answered"]


def variants_in(directory):
    """(key, label) of every variant with results in `directory`: the known ones in their
    order, then any other (an A/B build, named by its binary) by name."""
    known = dict(VARIANTS)
    found = {re.sub(r"-r\d+\.ping$", "", os.path.basename(f)) for f in glob.glob(os.path.join(directory, "*-r*.ping"))}
    return [(k, v) for k, v in VARIANTS if k in found] + [(k, k) for k in sorted(found - set(known))]


def summarise(directory):
    """Everything the summary table shows, as a dict."""
    out = {"variants": {}}
    for key, label in variants_in(directory):
        files = rounds(directory, key, "ping")
        if not files:
            continue
        pooled, per_round, sent, received = [], [], 0, 0
        for path in files:
            _, rtts, s, r = read_ping(path)
            pooled += rtts
            sent, received = sent + s, received + r
            if rtts:
                per_round.append(statistics.median(rtts))
        out["variants"][key] = {
            "label": label,
            "rounds": len(files),
            "sent": sent,
            "received": received,
            "median_ms": statistics.median(pooled) if pooled else None,
            "p90_ms": stats.nearest_rank(pooled, 90) if pooled else None,
            "round_medians_ms": per_round,
        }
    entries = []
    for path in rounds(directory, "tunbridge", "jsonl"):
        entries += read_record(path)
    if entries:
        out["bridge"] = {
            "requests": len(entries),
            "queue_us_median": statistics.median(e["queue_ms"] for e in entries) * 1000,
            "write_us_median": statistics.median(e["write_us"] for e in entries),
            "agent_us_median": statistics.median(e["agent_ms"] for e in entries) * 1000,
            "rtt_us_median": statistics.median(e["rtt_ms"] for e in entries) * 1000,
        }
    med = {k: v["median_ms"] for k, v in out["variants"].items()}
    ratio = lambda a, b: med[a] / med[b] if med.get(a) and med.get(b) else None
    out["ratios"] = {
        "tunbridge/floor": ratio("tunbridge", "floor"),
        "tunbridge-fifo/floor": ratio("tunbridge-fifo", "floor"),
        "tunbridge-cpu/floor": ratio("tunbridge-cpu", "floor"),
        "tunbridge/pyhelper": ratio("tunbridge", "pyhelper"),
        "tunbridge-fifo/pyhelper": ratio("tunbridge-fifo", "pyhelper"),
        "floor/pyhelper": ratio("floor", "pyhelper"),
        "tunbridge/inproc": ratio("tunbridge", "inproc"),
        "inproc/kernel": ratio("inproc", "kernel"),
    }
    out["round_ratios"] = {}
    for a in ("tunbridge", "tunbridge-fifo", "tunbridge-cpu"):
        ra = out["variants"].get(a, {}).get("round_medians_ms")
        rb = out["variants"].get("floor", {}).get("round_medians_ms")
        if ra and rb and len(ra) == len(rb):
            out["round_ratios"][f"{a}/floor"] = [x / y for x, y in zip(ra, rb)]
    return out


def markdown(s):
    """The summary as markdown."""
    lines = [
        "| variant | median RTT (ms) | p90 (ms) | per-round medians (ms) | replies |",
        "|---|---:|---:|---|---:|",
    ]
    for key, v in s["variants"].items():
        rounds_txt = " ".join(f"{m:.3f}" for m in v["round_medians_ms"])
        lines.append(
            f"| {v['label']} | {v['median_ms']:.3f} | {v['p90_ms']:.3f} | {rounds_txt} "
            f"| {v['received']}/{v['sent']} |"
        )
    lines.append("")
    per = s.get("round_ratios", {})
    for name, values in per.items():
        lines.append(f"- {name} per round: " + " ".join(f"{v:.2f}" for v in values))
    for name, value in s["ratios"].items():
        if value is not None:
            lines.append(f"- {name}: {value:.2f}")
    # The floor speaks only the FIFOs, so the like-for-like figure is tunbridge driven
    # the same way; both are judged when both ran.
    for name in ("tunbridge-fifo/floor", "tunbridge/floor"):
        r = s["ratios"][name]
        if r is not None:
            verdict = "met" if r <= 1.05 else "NOT met"
            lines.append(f"- target {name} <= 1.05: {verdict}")
    r = s["ratios"]["tunbridge/pyhelper"]
    if r is not None:
        verdict = "met" if r <= 0.5 else "NOT met"
        lines.append(f"- target tunbridge <= 0.5 x pyhelper: {verdict}")
    b = s.get("bridge")
    if b:
        lines += [
            "",
            f"tunbridge's own share ({b['requests']} requests, `serve --record`), medians:",
            f"- queue (arrival -> hand-over): {b['queue_us_median']:.1f} us",
            f"- write (WRITE received -> on the TUN device): {b['write_us_median']:.1f} us",
            f"- agent (hand-over -> WRITE received): {b['agent_us_median']:.1f} us",
            f"- arrival -> reply written: {b['rtt_us_median']:.1f} us",
        ]
    return "\n".join(lines)


COLOURS = {"tunbridge": "#1f77b4", "tunbridge-fifo": "#17becf", "tunbridge-cpu": "#9467bd", "floor": "#ff7f0e",
           "pyhelper": "#d62728", "inproc": "#2ca02c", "kernel": "#7f7f7f"}
WARMUP = 10


def draw(directory, out):
    """The RTT of every reply, by ping number, rounds side by side (harness/plot.py)."""
    summary = summarise(directory)
    variants, lengths = [], []
    for key, label in variants_in(directory):
        points, x = [], 0
        for i, path in enumerate(rounds(directory, key, "ping")):
            seqs, rtts, sent, _ = read_ping(path)
            points += [(x + s - 1, t) for s, t in zip(seqs, rtts)]
            x += sent
            if key == "tunbridge" or len(lengths) <= i:
                lengths[i:i + 1] = [sent]
        if points:
            variants.append((label, COLOURS.get(key), points, summary["variants"][key]["median_ms"]))
    title = f"Ping RTT per reply ({len(lengths)} rounds, interleaved)"
    with open(out, "w") as f:
        f.write(plot.round_chart(variants, lengths, title))


def ab_name(path: str) -> str:
    """An A/B build's variant name: its folder and file (`/tmp/a/tunbridge` is a-tunbridge)."""
    path = os.path.abspath(path)
    return f"{os.path.basename(os.path.dirname(path))}-{os.path.basename(path)}"


class Bench:
    """One benchmark run: the namespace, the binaries, the rounds."""

    def __init__(self, a, work, ns, procs):
        self.a, self.work, self.ns, self.procs = a, work, ns, procs
        self.cmd, self.resp = os.path.join(work, "cmd"), os.path.join(work, "resp")
        examples = os.environ.get("TUNBRIDGE_EXAMPLES") or os.path.join(ROOT, "target", "release", "examples")
        self.bin = os.environ.get("TUNBRIDGE") or os.path.join(ROOT, "target", "release", "tunbridge")
        self.agent = os.path.join(examples, "native_agent")
        self.inproc = os.path.join(examples, "inproc_responder")
        self.floor = os.path.join(work, "floor")

    def start(self, argv, log, ready):
        """Starts a bridge variant, its stderr to `log`, and waits for `ready` there (10 s)."""
        path = os.path.join(self.work, log)
        with open(path, "w") as f:
            proc = self.procs.start(argv, stdout=subprocess.DEVNULL, stderr=f)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ready in open(path).read():
                return
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{argv[0]} did not start: {open(path).read().strip()}")

    def start_agent(self, *flags):
        self.procs.start([self.agent, "--cmd-fifo", self.cmd, "--resp-fifo", self.resp, *flags],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def measure(self, target, name, r):
        a = self.a
        base = ["ping", "-n", "-i", str(a.interval), "-W", "1", "-s", str(a.size), target]
        subprocess.run(self.ns.argv(*base[:1], "-q", "-c", str(WARMUP), *base[1:]), capture_output=True)
        path = os.path.join(a.out, f"{name}-r{r}.ping")
        with open(path, "w") as f:
            subprocess.run(self.ns.argv(*base[:1], "-c", str(a.count), *base[1:]), stdout=f, stderr=subprocess.STDOUT)
        seen = pingout.read(path)
        print(f"      {seen.transmitted} packets transmitted, {seen.received} received", flush=True)

    def tunbridge(self, r, name="tunbridge", agent_flags=(), serve_flags=()):
        self.start([self.bin, "serve", "--netns", self.ns.name, "--tun", "tbench", "--address", "192.0.2.1/24",
                    "--peer", "192.0.2.2", "--keep-root", "--cmd-fifo", self.cmd, "--resp-fifo", self.resp,
                    "--record", os.path.join(self.a.out, f"{name}-r{r}.jsonl"), *serve_flags],
                   "bridge.log", "bridge ready")
        self.start_agent(*agent_flags)
        self.measure("192.0.2.2", name, r)

    def variant(self, name, r):
        if os.sep in name:   # an A/B build: another tunbridge binary, named by its file
            self.bin = os.path.abspath(name)
            return self.tunbridge(r, ab_name(name))
        if name == "tunbridge":
            return self.tunbridge(r)
        if name == "tunbridge-fifo":
            return self.tunbridge(r, name, ["--fifo"])
        if name == "tunbridge-cpu":
            return self.tunbridge(r, name, serve_flags=["--cpu", str(self.a.cpu)])
        if name == "floor":
            self.start(self.ns.argv(self.floor, "tbench", "192.0.2.1/24", self.cmd, self.resp), "floor.log", "ready")
            self.start_agent()
        elif name == "pyhelper":
            self.start(self.ns.argv(sys.executable, os.path.join(ROOT, "scripts", "bench", "py_fifo_helper.py"),
                                    "--tun", "tbench", "--address", "192.0.2.1/24", "--cmd-fifo", self.cmd,
                                    "--resp-fifo", self.resp), "helper.log", "ready")
            self.start_agent()
        elif name == "inproc":
            self.start([self.inproc, "--netns", self.ns.name, "--tun", "tbench", "--address", "192.0.2.1/24"],
                       "inproc.log", "ready")
        elif name != "kernel":
            raise ValueError(f"unknown variant {name}")
        self.measure("127.0.0.1" if name == "kernel" else "192.0.2.2", name, r)


def machine(a, variants) -> str:
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"
    commit = out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown")
    return "\n".join([
        f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        f"command: python3 -m harness bench --rounds {a.rounds} --count {a.count} --interval {a.interval} "
        f"--size {a.size} --variants \"{' '.join(variants)}\"" + (f" --cpu {a.cpu}" if a.cpu is not None else ""),
        f"commit: {commit}", f"nproc: {os.cpu_count()}", f"cpu: {cpu}",
        f"kernel: {platform.system()} {platform.release()}", f"ping: {out(['ping', '-V'])}",
        f"python: {platform.python_version()}", f"gcc: {out(['gcc', '--version'])}",
        f"rustc: {out(['rustc', '--version'])}",
        f"load before: {' '.join(open('/proc/loadavg').read().split()[:3])}"]) + "\n"


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python3 -m harness bench", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--size", type=int, default=56)
    ap.add_argument("--variants", default="tunbridge tunbridge-fifo floor pyhelper inproc kernel")
    ap.add_argument("--cpu", type=int, help="add tunbridge serve --cpu N as a variant")
    ap.add_argument("--out", help="results folder (default target/bench/<UTC time>)")
    ap.add_argument("--svg", help="the RTT plot (default OUT/rtt.svg)")
    ap.add_argument("--summarise", metavar="DIR", help="only summarise and plot an earlier run's folder")
    a = ap.parse_args(argv)
    if a.summarise:
        report(a.summarise, a.svg or os.path.join(a.summarise, "rtt.svg"))
        return 0
    if os.geteuid() != 0:
        print("harness bench: needs root for the network namespace and the TUN devices (run scripts/bench.sh)",
              file=sys.stderr)
        return 2
    variants = a.variants.split() + (["tunbridge-cpu"] if a.cpu is not None else [])
    a.out = os.path.abspath(a.out or os.path.join(ROOT, "target", "bench", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tbbench.") as work, Namespace(f"tbbench-{os.getpid()}") as ns:
        with open(os.path.join(a.out, "machine.txt"), "w") as f:
            f.write(machine(a, variants))
        print("".join(f"    {line}\n" for line in open(os.path.join(a.out, "machine.txt"))), end="", flush=True)
        if "floor" in variants:
            print("==> building the floor (gcc -O2 scripts/bench/floor.c)", flush=True)
            subprocess.run(["gcc", "-O2", "-o", os.path.join(work, "floor"),
                            os.path.join(ROOT, "scripts", "bench", "floor.c")], check=True)
        for r in range(1, a.rounds + 1):
            for i in range(len(variants)):
                v = variants[(i + r - 1) % len(variants)]
                print(f"==> round {r}/{a.rounds}: {v} ({WARMUP} warm-up pings, then {a.count} at -i {a.interval:g} "
                      f"-s {a.size})", flush=True)
                for log in glob.glob(os.path.join(work, "*.log")):
                    os.unlink(log)   # a round before's "ready" must not be read as this one's
                with Procs() as procs:
                    Bench(a, work, ns, procs).variant(v, r)
    with open(os.path.join(a.out, "machine.txt"), "a") as f:
        f.write(f"load after: {' '.join(open('/proc/loadavg').read().split()[:3])}\n")
    report(a.out, a.svg or os.path.join(a.out, "rtt.svg"))
    print(f"==> done: raw data, summary and plot in {a.out}", flush=True)
    return 0


def report(directory, svg) -> None:
    s = summarise(directory)
    with open(os.path.join(directory, "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
    text = markdown(s)
    with open(os.path.join(directory, "summary.md"), "w") as f:
        f.write(text + "\n")
    print(text, flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(svg)), exist_ok=True)
    draw(directory, svg)
