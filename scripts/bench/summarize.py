#!/usr/bin/env python3
"""Summarises a scripts/bench.sh run: per-variant RTT medians, ratios, tunbridge's own share.

Besides the overall median, each tunbridge/floor ratio is also given per round (the
two ran in the same round, minutes apart at most), so drift between rounds on a shared
machine shows as spread rather than hiding in the pooled numbers.

Reads DIR/<variant>-r<round>.ping (iputils ping output, one `time=` per reply) and
DIR/tunbridge-r<round>.jsonl (the bridge's record); prints a markdown summary and
writes DIR/summary.json. Python 3 standard library only.

    python3 scripts/bench/summarize.py DIR
"""

import glob
import json
import os
import re
import statistics
import sys

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
    seqs, rtts, sent, received = [], [], 0, 0
    with open(path) as f:
        for line in f:
            m = TIME.search(line)
            if m:
                seqs.append(int(m.group(1)))
                rtts.append(float(m.group(2)))
            m = SENT.search(line)
            if m:
                sent, received = int(m.group(1)), int(m.group(2))
    return seqs, rtts, sent, received


def read_record(path):
    """Answered entries of the measured ping (the last ping id in the record)."""
    with open(path) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    if not entries:
        return []
    last_id = entries[-1].get("id")
    return [e for e in entries if e.get("id") == last_id and e.get("outcome") == "answered"]


def percentile(values, p):
    """The p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def summarise(directory):
    """Everything the summary table shows, as a dict."""
    out = {"variants": {}}
    for key, label in VARIANTS:
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
            "p90_ms": percentile(pooled, 90) if pooled else None,
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


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: summarize.py DIR")
    s = summarise(sys.argv[1])
    with open(os.path.join(sys.argv[1], "summary.json"), "w") as f:
        json.dump(s, f, indent=2)
    print(markdown(s))


if __name__ == "__main__":
    main()
