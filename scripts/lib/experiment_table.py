#!/usr/bin/env python3
"""Joins one experiment run's files into the results table (markdown) and the timeline.

Reads from --out: records.jsonl (the bridge's record) and its summary from `tunbridge
report --format json`; the pings (ping-N.txt, one-shot, or ping-continuous.txt);
timeline.tsv (per agent run: start, end, exit status, the ping identifier, ping options);
Claude Code's timestamped event streams (claude-N.jsonl per ping, or claude-sK.jsonl per
session, see session.py) and the dry-run model's request log (model-requests.jsonl).
Writes the table to stdout and, with --timeline FILE, the JSON `tunbridge timeline` draws.

Pings and records are matched by flow key: the ICMP identifier (the runner gives each
ping its own with `ping -e`) and sequence number, never by position. A model request
belongs to the ping whose packet the agent held when it was sent (in one-shot runs, all of
that ping's run); the session's cost is shared out by each request's list-price weight
(input 1, cache write 1.25, cache read 0.1, output 5), which is how Claude Code prices it.
Stdlib only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from datetime import datetime

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import session as sess  # noqa: E402

WEIGHTS = {"input_tokens": 1.0, "cache_creation_input_tokens": 1.25, "cache_read_input_tokens": 0.1}
OUTPUT_WEIGHT = 5.0


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


def tokens(result):
    """Input tokens (with the cached ones) and output tokens of a Claude Code result."""
    usage = (result or {}).get("usage") or {}
    if not usage:
        return None, None
    into = sum(usage.get(k) or 0 for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    return into, usage.get("output_tokens")


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def report(out: str, tunbridge: str):
    """`tunbridge report --format json` of the run's record: the totals."""
    path = os.path.join(out, "records.jsonl")
    if not os.path.exists(path):
        return {}
    run = subprocess.run([tunbridge, "report", "--format", "json", path], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"experiment_table.py: tunbridge report failed: {run.stderr.strip()}")
    columns = json.loads(run.stdout)
    return columns[0] if columns else {}


def record_key(r):
    """A record's flow key, as session.flow_key gives it for a packet."""
    if r.get("id") is not None and r.get("seq") is not None:
        return ("echo", r["id"], r["seq"])
    return None


def agent_runs(path):
    """timeline.tsv: one row per agent run: tag, start, end, exit status, ident, options."""
    runs = []
    if os.path.exists(path):
        for line in open(path):
            tag, start, end, status, ident, *opts = line.rstrip("\n").split("\t")
            runs.append({"tag": tag, "start": float(start), "end": float(end), "status": int(status),
                         "ident": int(ident), "opts": opts[0] if opts else ""})
    return runs


def timeline(path):
    """One-shot runs by ping number: (agent start, agent end, exit status, ping options)."""
    return {int(r["tag"]): (r["start"], r["end"], r["status"], r["opts"])
            for r in agent_runs(path) if r["tag"].isdigit()}


def ping_rtt(path):
    """The RTT of a one-ping run's reply in ms, or None."""
    return ping_replies(path).get(1)


def ping_received(path):
    """Whether a one-ping run counted its reply (under 16 data bytes ping prints no time)."""
    return 1 in ping_replies(path)


def ping_replies(path):
    """icmp_seq -> RTT in ms (None when ping counted a reply too small to carry a time)."""
    replies = {}
    try:
        text = open(path).read()
    except OSError:
        return replies
    for m in re.finditer(r"(?:bytes|answer) from \S+: icmp_seq=(\d+)([^\n]*)", text):
        time = re.search(r"time=([0-9.]+) ms", m.group(2))
        replies.setdefault(int(m.group(1)), float(time.group(1)) if time else None)
    return replies


def request_cost_weight(req):
    usage = req.get("usage") or {}
    return sum(w * (usage.get(k) or 0) for k, w in WEIGHTS.items()) + OUTPUT_WEIGHT * (req.get("output_tokens") or 0)


class Usage:
    """Tokens and cost of a set of model requests."""

    def __init__(self):
        self.requests = 0
        self.input = self.cache_write = self.cache_read = self.output = 0
        self.cost = 0.0

    def add(self, req, share):
        usage = req.get("usage") or {}
        self.requests += 1
        self.input += usage.get("input_tokens") or 0
        self.cache_write += usage.get("cache_creation_input_tokens") or 0
        self.cache_read += usage.get("cache_read_input_tokens") or 0
        self.output += req.get("output_tokens") or 0
        self.cost += share

    def cells(self):
        if not self.requests:
            return ["-"] * 5
        total_in = self.input + self.cache_write + self.cache_read
        return [str(total_in), str(self.cache_read), str(self.output), f"{self.cost:.4f}", str(self.requests)]


def share_cost(tracker):
    """Each request's share of the run's total cost, by list-price weight."""
    total = (tracker.result or {}).get("total_cost_usd") or 0.0
    weights = [request_cost_weight(r) for r in tracker.requests]
    whole = sum(weights)
    return [total * w / whole if whole else 0.0 for w in weights]


class Ping:
    """One ping: its flow key, what ping saw, the bridge's record and the agent's part."""

    def __init__(self, n, key, opts=""):
        self.n, self.key, self.opts = n, key, opts
        self.rtt, self.received, self.record = None, False, None
        self.usage = Usage()
        self.client_spans = []   # (phase, start, end) in epoch seconds
        self.model_bytes = []    # dry-run request sizes, one-shot runs

    @property
    def arrival(self):
        return epoch(self.record["arrival"]) if self.record else None

    def handover(self):
        """When the agent got this ping's request (epoch seconds), or None."""
        q = (self.record or {}).get("queue_ms")
        return self.arrival + q / 1000 if q is not None else None

    def status(self, sessions, pings=()):
        r = self.record
        if r is None:
            return "lost: no request reached the bridge"
        outcome = r.get("outcome")
        if outcome in ("answered", "refused"):
            text = r.get("verdict") or outcome
            if outcome == "refused":
                text = f"refused: {text}"
            return text if self.received else f"{text}; reply came after ping gave up"
        why = {"stale": "expired in the queue (older than --max-age)",
               "overflow": "dropped: the queue was full",
               "unanswered": "read by the agent, never answered"}.get(outcome, outcome)
        if outcome == "stale" and not any(s["start"] <= self.arrival <= s["end"] for s in sessions):
            why += "; no session was running"
        elif outcome == "stale":
            # What held it up: the ping the agent had when it arrived, and older ones still queued.
            busy = [p for p in pings if p.handover() is not None and p.handover() <= self.arrival]
            ahead = [p for p in pings if p.n < self.n and (p.handover() or 0) > self.arrival]
            if busy:
                why += f"; it arrived while the agent had ping {busy[-1].n}, behind {len(ahead)} older"
        return why


def attribute_oneshot(pings, runs, out):
    """Each one-shot ping gets all of its own run's requests, tool calls and start-up."""
    by_tag = {r["tag"]: r for r in runs}
    for p in pings:
        run = by_tag.get(str(p.n))
        tracker = sess.load(os.path.join(out, f"claude-{p.n}.jsonl"))
        for req, share in zip(tracker.requests, share_cost(tracker)):
            p.usage.add(req, share)
        if run and tracker.start:
            p.client_spans.append(("client_start", run["start"], tracker.start))
        add_client_spans(p, tracker.requests, tracker.calls())


def add_client_spans(p, requests, calls, clip=None):
    for req in requests:
        if req["end"] is not None:
            p.client_spans.append(("model", req["start"], req["end"]))
    for call in calls:
        if call["end"] is not None:
            start = call["start"] if clip is None else max(call["start"], clip)
            p.client_spans.append(("tool", start, call["end"]))


def attribute_continuous(pings, runs, out):
    """Requests and tool calls go to the packet the session held; returns the sessions'
    own share (before their first packet), as one Usage."""
    by_key = {p.key: p for p in pings}
    overhead = Usage()
    for run in runs:
        tracker = sess.load(os.path.join(out, f"claude-{run['tag']}.jsonl"))
        reads = tracker.packets()   # the reads that returned a packet, in order
        shares = share_cost(tracker)
        for req, share in zip(tracker.requests, shares):
            held = [c for c in reads if c["end"] is not None and c["end"] <= req["start"]]
            owner = by_key.get(held[-1]["key"]) if held else None
            (owner.usage if owner else overhead).add(req, share)
        all_reads = [c for c in tracker.calls() if c["command"] == sess.READ]
        for read in reads:
            p = by_key.get(read["key"])
            if p is None:
                continue
            # This ping's part: from its packet's READ to the next READ the model asks for.
            until = min((c["start"] for c in all_reads if c["start"] > read["start"]), default=float("inf"))
            mine = [r for r in tracker.requests if read["end"] <= r["start"] < until]
            calls = [c for c in tracker.calls() if c is read or read["end"] <= c["start"] < until]
            add_client_spans(p, mine, calls, clip=p.arrival)
    return overhead


def attribute_model_log(pings, runs, requests):
    """One-shot dry runs: the model's request sizes per ping, by its run's time window."""
    by_tag = {r["tag"]: r for r in runs}
    for p in pings:
        run = by_tag.get(str(p.n))
        if not run:
            continue
        nxt = by_tag.get(str(p.n + 1), {}).get("start", float("inf"))
        until = min(run["end"] + 1, nxt)
        p.model_bytes = [r for r in requests if run["start"] <= r["time"] < until
                         and r.get("path", "").startswith("/v1/messages") and "count_tokens" not in r["path"]]


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


def timeline_rows(pings, max_age):
    """The rows `tunbridge timeline` draws: times in seconds from each ping's arrival; a
    request never answered is drawn for `max_age` (the bridge's --max-age) when its
    record has no end."""
    rows = []
    for p in pings:
        r, t0 = p.record, p.arrival
        spans = []
        if r is None:
            continue
        q, a, rtt = r.get("queue_ms"), r.get("agent_ms"), r.get("rtt_ms")
        if r.get("outcome") in ("answered", "refused") and None not in (q, a, rtt):
            spans += [{"phase": "queued", "start": 0.0, "end": q / 1000},
                      {"phase": "agent", "start": q / 1000, "end": (q + a) / 1000},
                      {"phase": "reply", "start": (q + a) / 1000, "end": max(rtt, q + a) / 1000}]
        else:
            end = (q / 1000) if q is not None else max_age
            spans.append({"phase": "expired", "start": 0.0, "end": end})
        for phase, start, end in p.client_spans:
            spans.append({"phase": phase, "start": start - t0, "end": max(end, start) - t0})
        rows.append({"label": f"ping {p.n} (seq {p.key[2]})", "spans": spans})
    return rows


def fmt(value, spec="{:.1f}"):
    return "-" if value is None else spec.format(value)


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--out", "--agent", "--model", "--prompt"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--harness", default="default", help="default or lean")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--mode", default="oneshot", choices=("oneshot", "continuous"))
    ap.add_argument("--interval", default="1")
    ap.add_argument("--session-packets", default="20")
    ap.add_argument("--thinking", default="client default")
    ap.add_argument("--max-age", type=float, default=20.0, help="the bridge's --max-age, seconds")
    ap.add_argument("--timeline", help="write the timeline JSON for `tunbridge timeline` here")
    ap.add_argument("--tunbridge", default="tunbridge", help="the tunbridge binary (for `report`)")
    a = ap.parse_args()
    continuous = a.mode == "continuous"
    llm = a.agent != "native"

    runs = agent_runs(os.path.join(a.out, "timeline.tsv"))
    records = {record_key(r): r for r in load_jsonl(os.path.join(a.out, "records.jsonl"))
               if r["outcome"] != "unmatched" and record_key(r)}
    if continuous:
        ident = runs[0]["ident"] if runs else 0
        replies = ping_replies(os.path.join(a.out, "ping-continuous.txt"))
        pings = [Ping(n, ("echo", ident, n), runs[0]["opts"] if runs else "") for n in range(1, a.count + 1)]
        for p in pings:
            p.received, p.rtt = p.key[2] in replies, replies.get(p.key[2])
    else:
        pings = []
        for run in runs:
            n = int(run["tag"])
            p = Ping(n, ("echo", run["ident"], 1), run["opts"])
            replies = ping_replies(os.path.join(a.out, f"ping-{n}.txt"))
            p.received, p.rtt = 1 in replies, replies.get(1)
            pings.append(p)
    # A UDP or TCP round (--traffic) is found by its source port, which is the run's ident.
    by_port = {r["host_port"]: r for r in load_jsonl(os.path.join(a.out, "records.jsonl"))
               if r["outcome"] != "unmatched" and r.get("host_port") is not None}
    for p in pings:
        p.record = records.get(p.key) or (None if continuous else by_port.get(p.key[1]))

    overhead = None
    if llm and continuous:
        overhead = attribute_continuous(pings, runs, a.out)
    elif llm:
        attribute_oneshot(pings, runs, a.out)
    model_log = load_jsonl(os.path.join(a.out, "model-requests.jsonl"))
    thinking_sent = sorted({json.dumps(r.get("thinking"), sort_keys=True) for r in model_log
                            if r.get("method") == "POST" and "thinking" in r})
    requests = model_log if not continuous else []
    if requests:
        attribute_model_log(pings, runs, requests)

    harness = f", harness {a.harness}, thinking {a.thinking}" if llm else ""
    mode = (f"continuous (one session per {a.session_packets} packets, pings every {a.interval} s)"
            if continuous else "one-shot (one agent run per ping)")
    print(f"# Experiment: {a.agent}, model {a.model}, prompt `{a.prompt}`{harness}\n")
    print(f"Mode: {mode}. Where the time went: [timeline.svg](timeline.svg).\n")
    with_opts = any(p.opts for p in pings) and not continuous
    head = ["ping"] + (["ping options"] if with_opts else []) + ["ping RTT ms", "agent ms", "verdict or fate"]
    if llm:
        head += ["input tokens", "cached", "output tokens", "cost USD", "model requests"]
    if requests:
        head += ["largest request B", "critical path B", "turns after hand-over"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    critical_max = None
    for p in pings:
        row = [str(p.n)] + ([f"`{p.opts}`" if p.opts else "-"] if with_opts else [])
        row += [fmt(p.rtt, "{:.2f}"), fmt((p.record or {}).get("agent_ms"), "{:.2f}"), p.status(runs, pings)]
        if llm:
            row += p.usage.cells()
        if requests:
            _, largest, critical, turns = request_stats(p.model_bytes)
            if critical is not None:
                critical_max = max(critical, critical_max or 0)
            row += [fmt(largest, "{}"), fmt(critical, "{}"), fmt(turns, "{}")]
        print("| " + " | ".join(row) + " |")
    if overhead is not None and overhead.requests:
        cells = ["session start-up (before the first packet)"] + ["", "", ""] + overhead.cells()
        print("| " + " | ".join(cells[:len(head)] if not with_opts else cells) + " |")
    print()
    totals = report(a.out, a.tunbridge)
    rtts = [p.rtt for p in pings if p.rtt is not None]
    received = sum(p.received for p in pings)
    valid = sum((p.record or {}).get("verdict") == "valid" for p in pings)
    print(f"{a.count} pings, {received} answered in ping, {valid} valid replies; "
          f"median ping RTT {fmt(statistics.median(rtts) if rtts else None, '{:.2f}')} ms.")
    if totals:
        invalid = ", ".join(f"{k} {v}" for k, v in (totals.get("invalid_by_class") or {}).items()) or "none"
        print(f"The bridge (`tunbridge report`): {totals.get('pings')} requests, {totals.get('answered')} answered, "
              f"{totals.get('valid')} valid, invalid by class: {invalid}; {totals.get('stale')} expired in the queue, "
              f"{totals.get('overflow')} dropped as overflow, {totals.get('unanswered')} read but not answered, "
              f"{totals.get('unmatched')} replies matching no request; median bridge RTT "
              f"{fmt(totals.get('rtt_ms_median'), '{:.2f}')} ms, median agent time "
              f"{fmt(totals.get('agent_ms_median'), '{:.2f}')} ms.")
    if llm:
        whole = Usage()
        for p in pings:
            for k in ("requests", "input", "cache_write", "cache_read", "output", "cost"):
                setattr(whole, k, getattr(whole, k) + getattr(p.usage, k))
        if overhead:
            for k in ("requests", "input", "cache_write", "cache_read", "output", "cost"):
                setattr(whole, k, getattr(whole, k) + getattr(overhead, k))
        print(f"Claude Code in total: {whole.requests} model requests, "
              f"{whole.input + whole.cache_write + whole.cache_read} input tokens "
              f"({whole.cache_read} read from the prompt cache, {whole.cache_write} written to it), "
              f"{whole.output} output tokens, ${whole.cost:.4f}.")
    if thinking_sent:
        print(f"Thinking as the model requests asked for it: {', '.join(f'`{t}`' for t in thinking_sent)}.")
    if critical_max is not None:
        print(f"Largest model request on a critical path: {critical_max} bytes.")
    if a.timeline:
        title = f"{a.agent}, {a.mode}, {a.count} pings" + (f", harness {a.harness}" if llm else "")
        with open(a.timeline, "w") as f:
            json.dump({"title": title, "rows": timeline_rows(pings, a.max_age)}, f)


if __name__ == "__main__":
    main()
