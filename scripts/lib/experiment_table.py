#!/usr/bin/env python3
"""Joins one experiment run's files into the results table (markdown).

Reads from --out: records.jsonl (the bridge's record), ping-N.txt (ping's output),
claude-N.json (Claude Code's --output-format json result, when the agent is Claude),
model-requests.jsonl (the dry-run model's request log, when there is one) and
timeline.tsv (agent start/end and ping options per ping). Writes the table to stdout.
Stdlib only.

From the model's request log, per ping: the model requests, the largest of them, the
largest on the critical path (every request up to and including the one the model answered
with the write) and the model turns after the hand-over (the requests after the one
answered with the read, up to and including the write: 1 when the model writes the reply
in the very turn that receives the packet).
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


def ping_received(path):
    """Whether ping counted a reply (pings under 16 data bytes carry no time to print)."""
    try:
        return " 1 received" in open(path).read()
    except OSError:
        return False


def timeline(path):
    """Ping number -> (agent start, agent end, exit status, ping options)."""
    spans = {}
    if os.path.exists(path):
        for line in open(path):
            i, start, end, status, *opts = line.rstrip("\n").split("\t")
            spans[int(i)] = (float(start), float(end), int(status), opts[0] if opts else "")
    return spans


def request_stats(requests):
    """Requests, largest request, largest on the critical path, turns after the hand-over."""
    kinds = [r.get("answer") for r in requests]
    largest = max((r["bytes"] for r in requests), default=None)
    if "write" not in kinds:
        return len(requests), largest, None, None
    write = kinds.index("write")
    critical = max(r["bytes"] for r in requests[:write + 1])
    turns = write - kinds.index("read") if "read" in kinds[:write] else None
    return len(requests), largest, critical, turns


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
    ap.add_argument("--harness", default="default", help="default or lean")
    ap.add_argument("--count", type=int, required=True)
    a = ap.parse_args()

    records = sorted((r for r in load_jsonl(os.path.join(a.out, "records.jsonl")) if r["outcome"] != "unmatched"),
                     key=lambda r: r["arrival"])
    requests = load_jsonl(os.path.join(a.out, "model-requests.jsonl"))
    spans = timeline(os.path.join(a.out, "timeline.tsv"))
    llm = a.agent != "native"

    harness = f", harness {a.harness}" if llm else ""
    print(f"# Experiment: {a.agent}, model {a.model}, prompt `{a.prompt}`{harness}\n")
    with_opts = any(span[3] for span in spans.values())
    head = ["ping"] + (["ping options"] if with_opts else []) + ["ping RTT ms", "agent ms", "verdict"]
    if llm:
        head += ["input tokens", "output tokens", "cost USD", "turns"]
    if requests:
        head += ["requests", "largest request B", "critical path B", "turns after hand-over"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    rtts, received, valid, critical_max = [], 0, 0, None
    for i in range(1, a.count + 1):
        rec = records[i - 1] if i <= len(records) else {}
        rtt = ping_rtt(os.path.join(a.out, f"ping-{i}.txt"))
        if rtt is not None:
            rtts.append(rtt)
        received += ping_received(os.path.join(a.out, f"ping-{i}.txt"))
        verdict = rec.get("verdict") or rec.get("outcome") or "no request seen"
        valid += verdict == "valid"
        start, end, _, opts = spans.get(i, (0, 0, 0, ""))
        row = [str(i)] + ([f"`{opts}`" if opts else "-"] if with_opts else [])
        row += [fmt(rtt, "{:.2f}"), fmt(rec.get("agent_ms"), "{:.2f}"), verdict]
        if llm:
            result = load_json(os.path.join(a.out, f"claude-{i}.json"))
            into, out = tokens(result)
            row += [fmt(into, "{}"), fmt(out, "{}"), fmt((result or {}).get("total_cost_usd"), "{:.4f}"),
                    fmt((result or {}).get("num_turns"), "{}")]
        if requests:
            # A request belongs to the ping whose agent ran when it came (plus a second's
            # slack for clock rounding, never into the next ping's run).
            until = min(end + 1, spans.get(i + 1, (float("inf"),))[0])
            mine = [r for r in requests if start <= r["time"] < until and r.get("path", "").startswith("/v1/messages")
                    and "count_tokens" not in r.get("path", "")]
            count, largest, critical, turns = request_stats(mine)
            if critical is not None:
                critical_max = max(critical, critical_max or 0)
            row += [str(count), fmt(largest, "{}"), fmt(critical, "{}"), fmt(turns, "{}")]
        print("| " + " | ".join(row) + " |")
    print()
    median = statistics.median(rtts) if rtts else None
    median_text = fmt(median, "{:.2f}")
    print(f"{a.count} pings, {received} answered in ping, {valid} valid replies; median ping RTT {median_text} ms.")
    if critical_max is not None:
        print(f"Largest model request on a critical path: {critical_max} bytes.")


if __name__ == "__main__":
    main()
