#!/usr/bin/env python3
"""Joins one experiment run's files into the results table (markdown).

Reads from --out: records.jsonl (the bridge's record), ping-N.txt (ping's output),
claude-N.json (Claude Code's --output-format json result, when the agent is Claude),
model-requests.jsonl (the dry-run model's request log, when there is one) and
timeline.tsv (agent start/end per ping). Writes the table to stdout. Stdlib only.
"""

import argparse
import json
import os
import re
import statistics


def load_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ping_rtt(path):
    try:
        text = open(path).read()
    except OSError:
        return None
    m = re.search(r"time=([0-9.]+) ms", text)
    return float(m.group(1)) if m else None


def timeline(path):
    spans = {}
    if os.path.exists(path):
        for line in open(path):
            i, start, end, status = line.split("\t")
            spans[int(i)] = (float(start), float(end), int(status))
    return spans


def fmt(value, spec="{:.1f}"):
    return "-" if value is None else spec.format(value)


def tokens(result):
    usage = (result or {}).get("usage") or {}
    if not usage:
        return None, None
    into = sum(usage.get(k) or 0 for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return into, usage.get("output_tokens")


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--out", "--agent", "--model", "--prompt"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--count", type=int, required=True)
    a = ap.parse_args()

    records = sorted((r for r in load_jsonl(os.path.join(a.out, "records.jsonl")) if r["outcome"] != "unmatched"),
                     key=lambda r: r["arrival"])
    requests = load_jsonl(os.path.join(a.out, "model-requests.jsonl"))
    spans = timeline(os.path.join(a.out, "timeline.tsv"))
    llm = a.agent != "native"

    print(f"# Experiment: {a.agent}, model {a.model}, prompt `{a.prompt}`\n")
    head = ["ping", "ping RTT ms", "agent ms", "verdict"]
    if llm:
        head += ["input tokens", "output tokens", "cost USD", "turns"]
    if requests:
        head += ["requests", "largest request B"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rtts, valid = [], 0
    for i in range(1, a.count + 1):
        rec = records[i - 1] if i <= len(records) else {}
        rtt = ping_rtt(os.path.join(a.out, f"ping-{i}.txt"))
        if rtt is not None:
            rtts.append(rtt)
        verdict = rec.get("verdict") or rec.get("outcome") or "no request seen"
        valid += verdict == "valid"
        row = [str(i), fmt(rtt, "{:.2f}"), fmt(rec.get("agent_ms"), "{:.2f}"), verdict]
        if llm:
            result = load_json(os.path.join(a.out, f"claude-{i}.json"))
            into, out = tokens(result)
            row += [fmt(into, "{}"), fmt(out, "{}"), fmt((result or {}).get("total_cost_usd"), "{:.4f}"),
                    fmt((result or {}).get("num_turns"), "{}")]
        if requests:
            start, end, _ = spans.get(i, (0, 0, 0))
            mine = [r for r in requests if start <= r["time"] <= end + 1 and r.get("path", "").startswith("/v1/messages")
                    and "count_tokens" not in r.get("path", "")]
            row += [str(len(mine)), fmt(max((r["bytes"] for r in mine), default=None), "{}")]
        print("| " + " | ".join(row) + " |")
    print()
    median = statistics.median(rtts) if rtts else None
    median_text = fmt(median, "{:.2f}")
    print(f"{a.count} pings, {len(rtts)} answered in ping, {valid} valid replies; median ping RTT {median_text} ms.")


if __name__ == "__main__":
    main()
