"""One configuration's results (its bundle): the table, the timeline data and result.json.

A bundle is the folder one configuration writes: records.jsonl (the bridge's record),
ping-N.txt (or ping-continuous.txt), runs.jsonl (one line per agent run: tag, start, end,
exit status, the ping identifier, ping options, cost), Claude Code's timestamped event
streams (claude-N.jsonl per ping, claude-sK.jsonl per session; harness/session.py) and the
scripted model's request log (model-requests.jsonl). `summarise` joins them into pings, and
writes summary.md (the table), timeline.json (which `tunbridge timeline` draws) and
result.json (what the leaderboard reads). Bundles written before the package (timeline.tsv
instead of runs.jsonl, no result.json) are read the same way, for `--compare`.

Pings and records are matched by flow key: the ICMP identifier (the runner gives each ping
its own with `ping -e`) and sequence number, never by position. A model request belongs to
the ping whose packet the agent held when it was sent (in one-shot runs, all of that ping's
run); the session's cost is shared out by each request's list-price weight (input 1, cache
write 1.25, cache read 0.1, output 5), which is how Claude Code prices it.
"""

import json
import os
import re
import subprocess
from datetime import datetime

from harness import pingout
from harness import session as sess
from harness import stats

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
    try:
        run = subprocess.run([tunbridge, "report", "--format", "json", path], capture_output=True, text=True)
    except OSError:
        return {}
    if run.returncode != 0:
        raise RuntimeError(f"tunbridge report failed: {run.stderr.strip()}")
    columns = json.loads(run.stdout)
    return columns[0] if columns else {}


def record_key(r):
    """A record's flow key, as session.flow_key gives it for a packet."""
    if r.get("id") is not None and r.get("seq") is not None:
        return ("echo", r["id"], r["seq"])
    return None


def agent_runs(out):
    """One dict per agent run: tag, start, end, status, ident, opts (runs.jsonl, or the
    timeline.tsv of bundles written before the package)."""
    path = os.path.join(out, "runs.jsonl")
    if os.path.exists(path):
        return load_jsonl(path)
    runs = []
    path = os.path.join(out, "timeline.tsv")
    if os.path.exists(path):
        with open(path) as f:
            lines = f.readlines()
        for line in lines:
            tag, start, end, status, ident, *opts = line.rstrip("\n").split("\t")
            runs.append({"tag": tag, "start": float(start), "end": float(end), "status": int(status),
                         "ident": int(ident), "opts": opts[0] if opts else ""})
    return runs


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
        self.lost = False        # no reply reached the client
        self.model_bytes = []    # dry-run request sizes, one-shot runs

    @property
    def arrival(self):
        return epoch(self.record["arrival"]) if self.record else None

    def handover(self):
        """When the agent got this ping's request (epoch seconds), or None."""
        q = (self.record or {}).get("queue_ms")
        return self.arrival + q / 1000 if q is not None else None

    @property
    def tool_calls(self):
        return sum(1 for phase, _, _ in self.client_spans if phase == "tool")

    @property
    def valid(self):
        return (self.record or {}).get("verdict") == "valid"

    def fate(self, sessions, pings=()):
        """What became of this ping, in one field: the verdict, or why there is none."""
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


def load_pings(out, meta):
    """The bundle's pings with their records, usage and client spans; and the sessions'
    own share (continuous runs) and the model log's request sizes."""
    continuous = meta.get("mode") == "continuous"
    llm = meta.get("agent") != "native"
    runs = agent_runs(out)
    lines = load_jsonl(os.path.join(out, "records.jsonl"))
    records = {record_key(r): r for r in lines if r["outcome"] != "unmatched" and record_key(r)}
    if continuous:
        ident = runs[0]["ident"] if runs else 0
        seen = pingout.read(os.path.join(out, "ping-continuous.txt"))
        count = meta.get("count") or 0
        pings = [Ping(n, ("echo", ident, n), runs[0]["opts"] if runs else "") for n in range(1, count + 1)]
        for p in pings:
            p.received, p.rtt = seen.got(p.key[2]), seen.rtt(p.key[2])
    else:
        pings = []
        for run in runs:
            if not str(run["tag"]).isdigit():
                continue
            n = int(run["tag"])
            p = Ping(n, ("echo", run["ident"], 1), run.get("opts", ""))
            seen = pingout.read(os.path.join(out, f"ping-{n}.txt"))
            p.received, p.rtt = seen.got(1), seen.rtt(1)
            pings.append(p)
    # A UDP or TCP round (--traffic) is found by its source port, which is the run's ident.
    by_port = {r["host_port"]: r for r in lines if r["outcome"] != "unmatched" and r.get("host_port") is not None}
    for p in pings:
        p.record = records.get(p.key) or (None if continuous else by_port.get(p.key[1]))
        p.lost = not p.received
    overhead = None
    if llm and continuous:
        overhead = attribute_continuous(pings, runs, out)
    elif llm:
        attribute_oneshot(pings, runs, out)
    model_log = load_jsonl(os.path.join(out, "model-requests.jsonl"))
    requests = model_log if not continuous else []
    if requests:
        attribute_model_log(pings, runs, requests)
    return pings, runs, overhead, model_log


def models_of(out, runs):
    """The models the API named in its answers, in order of first use."""
    seen = []
    for run in runs:
        for m in run.get("models") or sess.load(os.path.join(out, f"claude-{run['tag']}.jsonl")).models:
            if m not in seen:
                seen.append(m)
    return seen


def client_line(meta) -> str:
    """Which Claude Code ran, in which permission mode, against which backend."""
    return f"Client: Claude Code {meta['client_version']}, permission mode {meta.get('permission_mode')}."


def table(pings, runs, overhead, model_log, meta, totals):
    """summary.md's text."""
    continuous = meta.get("mode") == "continuous"
    llm = meta.get("agent") != "native"
    requests = model_log if not continuous else []
    lines = []
    say = lines.append
    harness = f", harness {meta.get('harness_label', meta.get('harness'))}, thinking {meta.get('thinking_label')}" if llm else ""
    mode = (f"continuous (one session per {meta.get('session_packets')} packets, pings every {meta.get('interval'):g} s)"
            if continuous else "one-shot (one agent run per ping)")
    say(f"# Experiment: {meta.get('agent')}, model {meta.get('model') or 'default'}, prompt `{meta.get('prompt')}`{harness}\n")
    say(f"Mode: {mode}. Where the time went: [timeline.svg](timeline.svg).\n")
    if llm and meta.get("client_version"):
        say(client_line(meta) + "\n")
    if meta.get("stopped"):
        say(f"**Stopped early: {meta['stopped']}.**\n")
    with_opts = any(p.opts for p in pings) and not continuous
    head = ["ping"] + (["ping options"] if with_opts else []) + ["ping RTT ms", "agent ms", "verdict or fate"]
    if llm:
        head += ["input tokens", "cached", "output tokens", "cost USD", "model requests"]
    if requests:
        head += ["largest request B", "critical path B", "turns after hand-over"]
    say("| " + " | ".join(head) + " |")
    say("|" + "---|" * len(head))
    critical_max = None
    for p in pings:
        row = [str(p.n)] + ([f"`{p.opts}`" if p.opts else "-"] if with_opts else [])
        row += [fmt(p.rtt, "{:.2f}"), fmt((p.record or {}).get("agent_ms"), "{:.2f}"), p.fate(runs, pings)]
        if llm:
            row += p.usage.cells()
        if requests:
            _, largest, critical, turns = request_stats(p.model_bytes)
            if critical is not None:
                critical_max = max(critical, critical_max or 0)
            row += [fmt(largest, "{}"), fmt(critical, "{}"), fmt(turns, "{}")]
        say("| " + " | ".join(row) + " |")
    if overhead is not None and overhead.requests:
        cells = ["session start-up (before the first packet)"] + ["", "", ""] + overhead.cells()
        say("| " + " | ".join(cells[:len(head)] if not with_opts else cells) + " |")
    say("")
    rtts = [p.rtt for p in pings if p.rtt is not None]
    received = sum(p.received for p in pings)
    valid = sum(p.valid for p in pings)
    say(f"{len(pings)} pings, {received} answered in ping, {valid} valid replies; "
        f"median ping RTT {fmt(stats.median(rtts), '{:.2f}')} ms.")
    if totals:
        invalid = ", ".join(f"{k} {v}" for k, v in (totals.get("invalid_by_class") or {}).items()) or "none"
        say(f"The bridge (`tunbridge report`): {totals.get('pings')} requests, {totals.get('answered')} answered, "
            f"{totals.get('valid')} valid, invalid by class: {invalid}; {totals.get('stale')} expired in the queue, "
            f"{totals.get('overflow')} dropped as overflow, {totals.get('unanswered')} read but not answered, "
            f"{totals.get('unmatched')} replies matching no request; median bridge RTT "
            f"{fmt(totals.get('rtt_ms_median'), '{:.2f}')} ms, median agent time "
            f"{fmt(totals.get('agent_ms_median'), '{:.2f}')} ms.")
    if llm:
        whole = whole_usage(pings, overhead)
        say(f"Claude Code in total: {whole.requests} model requests, "
            f"{whole.input + whole.cache_write + whole.cache_read} input tokens "
            f"({whole.cache_read} read from the prompt cache, {whole.cache_write} written to it), "
            f"{whole.output} output tokens, ${whole.cost:.4f}.")
    thinking_sent = sorted({json.dumps(r.get("thinking"), sort_keys=True) for r in model_log
                            if r.get("method") == "POST" and "thinking" in r})
    if thinking_sent:
        say(f"Thinking as the model requests asked for it: {', '.join(f'`{t}`' for t in thinking_sent)}.")
    if critical_max is not None:
        say(f"Largest model request on a critical path: {critical_max} bytes.")
    return "\n".join(lines) + "\n"


def whole_usage(pings, overhead=None):
    """The Usage of every ping (and the sessions' own share) together."""
    whole = Usage()
    for u in [p.usage for p in pings] + ([overhead] if overhead else []):
        for k in ("requests", "input", "cache_write", "cache_read", "output", "cost"):
            setattr(whole, k, getattr(whole, k) + getattr(u, k))
    return whole


def ping_rows(pings, runs):
    """result.json's rows: one per ping, its outcome in the one field `fate`."""
    rows = []
    for p in pings:
        u = p.usage
        rows.append({"n": p.n, "opts": p.opts, "rtt_ms": p.rtt, "received": p.received,
                     "agent_ms": (p.record or {}).get("agent_ms"), "valid": p.valid,
                     "fate": p.fate(runs, pings), "lost": p.lost,
                     "requests": u.requests, "tool_calls": p.tool_calls,
                     "input_tokens": u.input + u.cache_write + u.cache_read, "cached_tokens": u.cache_read,
                     "output_tokens": u.output, "cost_usd": u.cost})
    return rows


def summarise(out, meta, tunbridge="tunbridge", write=True):
    """Reads the bundle in `out` (meta: agent, model, prompt, harness, mode, count, ...);
    with `write`, writes summary.md, timeline.json and result.json. Returns the result."""
    pings, runs, overhead, model_log = load_pings(out, meta)
    try:
        totals = report(out, tunbridge)
    except RuntimeError:
        totals = {}
    result = {"meta": meta, "pings": ping_rows(pings, runs), "models": models_of(out, runs),
              "session_overhead_usd": overhead.cost if overhead else 0.0,
              "cost_usd": whole_usage(pings, overhead).cost if meta.get("agent") != "native" else None}
    if write:
        with open(os.path.join(out, "summary.md"), "w") as f:
            f.write(table(pings, runs, overhead, model_log, meta, totals))
        title = f"{meta.get('agent')}, {meta.get('mode')}, {meta.get('count')} pings"
        if meta.get("agent") != "native":
            title += f", harness {meta.get('harness')}"
        with open(os.path.join(out, "timeline.json"), "w") as f:
            json.dump({"title": title, "rows": timeline_rows(pings, meta.get("max_age") or 20)}, f)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result


HEADER = re.compile(r"# Experiment: (\S+), model (\S+), prompt `([^`]*)`(?:, harness (.*?), thinking (.*))?$")


def old_meta(out):
    """The meta of a bundle written before the package, from its summary.md's heading."""
    try:
        with open(os.path.join(out, "summary.md")) as f:
            head = f.readline().strip()
    except OSError:
        return None
    m = HEADER.match(head)
    if not m:
        return None
    agent, model, prompt, harness, thinking = m.groups()
    thinking = None if thinking in (None, "client default") else thinking.split(" ")[0]
    continuous = os.path.exists(os.path.join(out, "ping-continuous.txt"))
    count = None
    if continuous:
        count = pingout.read(os.path.join(out, "ping-continuous.txt")).transmitted
    return {"agent": agent, "model": None if model == "default" else model, "prompt": prompt,
            "harness": (harness or "default").split(" ")[0], "thinking": thinking, "thinking_label": thinking,
            "mode": "continuous" if continuous else "oneshot", "count": count}
