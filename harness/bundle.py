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
run); the cost Claude Code reported for a run is shared out by each request's list price
(harness/prices.py: uncached input, cache reads and 5-minute and 1-hour writes, output), and
each request's cost without the prompt cache is its share times the ratio of the two list
prices. Every ping gets a fate (harness/fates.py) from the record and the client's events.
"""

import json
import os
import re
import subprocess
from datetime import datetime

from harness import fates, pingout, prices
from harness import session as sess
from harness import stats


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


def list_costs(req):
    """(with the cache, without it, priced) for one request at list prices; `priced` is
    False when the model is not in the table and only relative weights were used."""
    model = req.get("model")
    price = prices.price_of(model)
    cached, plain = prices.cost(price or prices.GENERIC, req.get("usage"), req.get("output_tokens"))
    return cached, plain, price is not None


class Usage:
    """Tokens and cost of a set of model requests: input by how it was billed, output, the
    cost Claude Code reported (shared out), the same without the prompt cache, and the cost
    at list prices where every model is in the table."""

    FIELDS = ("requests", "input", "cache_read", "write_5m", "write_1h", "output", "cost", "cost_plain",
              "list_cost")

    def __init__(self):
        self.requests = 0
        self.input = self.cache_read = self.write_5m = self.write_1h = self.output = 0
        self.cost = self.cost_plain = 0.0
        self.list_cost = 0.0       # None once a request's model has no list price

    @property
    def cache_write(self):
        return self.write_5m + self.write_1h

    @property
    def total_input(self):
        return self.input + self.cache_read + self.cache_write

    def add(self, req, share):
        """Adds one request and its (cost, cost without cache, list cost or None)."""
        t = prices.split(req.get("usage"))
        self.requests += 1
        self.input += t["input"]
        self.cache_read += t["read"]
        self.write_5m += t["write_5m"]
        self.write_1h += t["write_1h"]
        self.output += req.get("output_tokens") or 0
        cost, plain, listed = share
        self.cost += cost
        self.cost_plain += plain
        self.list_cost = None if listed is None or self.list_cost is None else self.list_cost + listed

    def merge(self, other):
        for k in self.FIELDS:
            a, b = getattr(self, k), getattr(other, k)
            setattr(self, k, None if a is None or b is None else a + b)

    def cells(self):
        if not self.requests:
            return ["-"] * 8
        return [str(self.total_input), str(self.cache_read), str(self.cache_write), str(self.input),
                str(self.output), f"{self.cost:.4f}", f"{self.cost_plain:.4f}", str(self.requests)]


USAGE_HEAD = ["input tokens", "cache read", "cache write", "uncached", "output tokens", "cost USD",
              "without cache USD", "model requests"]


def share_cost(tracker):
    """Per request: (its share of the cost Claude Code reported, the same without the prompt
    cache, its list cost or None). The share follows the list prices; with no reported cost
    (a run that failed before its result) the list cost stands in."""
    total = (tracker.result or {}).get("total_cost_usd")
    costs = [list_costs(dict(r, model=r.get("model") or (tracker.models or [None])[-1])) for r in tracker.requests]
    whole = sum(c for c, _, _ in costs)
    out = []
    for cached, plain, listed in costs:
        if total is not None and whole:
            share = total * cached / whole
        else:
            share = cached if listed else 0.0
        out.append((share, plain * share / cached if cached else 0.0, cached if listed else None))
    return out


class Ping:
    """One ping: its flow key, what ping saw, the bridge's record and the agent's part."""

    def __init__(self, n, key, opts=""):
        self.n, self.key, self.opts = n, key, opts
        self.rtt, self.received, self.record = None, False, None
        self.usage = Usage()
        self.client_spans = []   # (phase, start, end) in epoch seconds
        self.lost = False        # no reply reached the client
        self.late = False        # the reply came after the ping's wait (continuous runs)
        self.model_bytes = []    # dry-run request sizes, one-shot runs
        self.evidence = fates.Evidence()   # what the client's events say about it
        self.kind, self.text = "lost", "no request reached the bridge"
        self.calls = None        # tool calls asked for while the agent held it (continuous runs)

    @property
    def arrival(self):
        return epoch(self.record["arrival"]) if self.record else None

    def handover(self):
        """When the agent got this ping's request (epoch seconds), or None."""
        q = (self.record or {}).get("queue_ms")
        return self.arrival + q / 1000 if q is not None else None

    @property
    def tool_calls(self):
        """Continuous runs: the calls asked for while the agent held this packet (its write, and
        the read of the next one or the call that writes and reads at once); one-shot runs:
        every call of its run."""
        if self.calls is not None:
            return self.calls
        return sum(1 for phase, _, _ in self.client_spans if phase == "tool")

    @property
    def valid(self):
        return (self.record or {}).get("verdict") == "valid"

    def fate(self):
        """What became of this ping, in one field: its verdict and what happened on the way,
        or why there is none (harness/fates.py; `kind` is the word for it)."""
        return self.text


def evidence(tracker, requests, calls, ended=False, run=None, window=None) -> fates.Evidence:
    """What the client's events say about a ping: the requests and tool calls made while
    the agent held it (the events of the time `window`, or of the whole run), and how the
    run ended if it ended then."""
    e = fates.Evidence()
    within = (lambda t: True) if window is None else (lambda t: window[0] <= t < window[1])
    e.retries = [r for r in tracker.retries if within(r["t"])]
    e.cuts = sum(1 for r in tracker.cut_streams() if any(r is q for q in requests))
    e.fallback = next((f["model"] for f in tracker.fallbacks if within(f["t"])), None)
    for c in calls:
        if c["refused"]:
            e.refused.append(c["command"])
            continue
        if c["wrote"] is not None:
            answer = c["answer"] or ""
            if answer == "OK":
                e.writes += 1
            elif answer.startswith("ERR"):
                e.write_errors.append(answer)
        if c["packet"]:
            e.read = True
    if ended:
        e.ended, e.result = True, tracker.result
        e.status, e.stopped = (run or {}).get("status"), (run or {}).get("stopped")
    return e


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
        p.evidence = evidence(tracker, tracker.requests, tracker.calls(), ended=True, run=run)


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
    own share (before their first packet), as one Usage.

    A ping's part runs from the end of the call that returned its packet to the start of
    the next call that asks for a packet: the requests sent in between, the calls asked for
    in between, and that next call, which writes this packet's reply when it is one call
    per packet (`tunbridge write <hex> --next`, `write_and_read_next`); in the timeline that
    call is drawn up to the reply (the rest is the wait for the next packet), and the call
    that returned the packet from its arrival."""
    by_key = {p.key: p for p in pings}
    overhead = Usage()
    for run in runs:
        tracker = sess.load(os.path.join(out, f"claude-{run['tag']}.jsonl"))
        reads = tracker.packets()   # the calls that returned a packet, in order
        shares = share_cost(tracker)
        for req, share in zip(tracker.requests, shares):
            held = [c for c in reads if c["end"] is not None and c["end"] <= req["start"]]
            owner = by_key.get(held[-1]["key"]) if held else None
            (owner.usage if owner else overhead).add(req, share)
        asking = tracker.reading_calls()
        for read in reads:
            p = by_key.get(read["key"])
            if p is None:
                continue
            nxt = next((c for c in asking if c["start"] > read["start"]), None)
            until = nxt["start"] if nxt else float("inf")
            mine = [r for r in tracker.requests if read["end"] <= r["start"] < until]
            own = [c for c in tracker.calls() if c is not read and read["end"] <= c["start"] < until]
            add_client_spans(p, mine, [read] + own, clip=p.arrival)
            if nxt is not None:
                own.append(nxt)
                agent_ms = (p.record or {}).get("agent_ms")
                if nxt["wrote"] is not None and nxt["end"] is not None and p.handover() and agent_ms is not None:
                    p.client_spans.append(("tool", nxt["start"], min(nxt["end"], p.handover() + agent_ms / 1000)))
            p.calls = len(own)
            p.evidence = evidence(tracker, mine, own, ended=until == float("inf"), run=run,
                                  window=(read["end"], until))
            p.evidence.read = True
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
        wait_ms = 1000 * (meta.get("max_age") or float("inf"))
        pings = [Ping(n, ("echo", ident, n), runs[0]["opts"] if runs else "") for n in range(1, count + 1)]
        for p in pings:
            p.received, p.rtt = seen.got(p.key[2]), seen.rtt(p.key[2])
            # One ping process sends them all; after its last send it waits twice the longest
            # RTT so far (iputils), so it may still print a reply later than --ping-wait, which a
            # ping of its own (one-shot) would have given up on: that reply is late too.
            p.late = p.rtt is not None and p.rtt > wait_ms
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
    sent = seen.transmitted if continuous else None
    judge(pings, runs, lines, meta, sent)
    return pings, runs, overhead, model_log


# Drop summaries in the record (a line with a `count` and no flow key): how the requests
# counted in them ended, in words.
TALLY_WHY = {"stale": "expired in the queue (older than --max-age)",
             "overflow": "dropped: the bridge's queue was full",
             "unanswered": "still queued when the bridge stopped: no agent read it"}


def tally_span(r):
    """(first, last) arrival of the requests a drop summary counts (its note names the last)."""
    first = epoch(r["arrival"])
    m = re.search(r"to (\S+)$", r.get("note") or "")
    try:
        return first, epoch(m.group(1)) if m else first
    except ValueError:
        return first, first


def place_in_tallies(pings, runs, lines, interval, continuous) -> dict:
    """For each ping without a record line of its own, the drop summary that counts it,
    matched by when its request arrived (one-shot: when its run started; continuous: its
    sequence number times the interval from the nearest ping that has a line)."""
    tallies = [dict(r, left=r["count"], span=tally_span(r)) for r in lines
               if r.get("count") and r.get("id") is None and r.get("outcome") in TALLY_WHY]
    if not tallies:
        return {}
    starts = {str(r["tag"]): r["start"] for r in runs}
    known = [(p.n, p.arrival) for p in pings if p.record]
    slack = max(interval or 0, 1.0)
    placed = {}
    for p in pings:
        if p.record:
            continue
        if continuous and known:
            j, t = min(known, key=lambda k: abs(k[0] - p.n))
            when = t + (p.n - j) * interval
        else:
            when = None if continuous else starts.get(str(p.n))
        fits = [x for x in tallies if x["left"] and when is not None and x["span"][0] - slack <= when <= x["span"][1] + slack]
        hit = (fits or [x for x in tallies if x["left"]] or [None])[0]
        if hit is not None:
            hit["left"] -= 1
            placed[p.n] = (hit, when)
    return placed


def never_read(p, tally, when, pings, runs, continuous) -> str:
    why = TALLY_WHY[tally["outcome"]]
    if tally["count"] > 1:
        why += f" (one of {tally['count']} counted together)"
    if continuous and tally["outcome"] == "stale" and when is not None:
        if not any(r["start"] <= when <= (r["end"] or when) for r in runs):
            why += "; no session was running"
        else:
            # What held it up: the ping the agent had when it arrived.
            busy = [q for q in pings if q.handover() is not None and q.handover() <= when]
            if busy:
                why += f"; it arrived while the agent had ping {busy[-1].n}"
    return why


def judge(pings, runs, lines, meta, sent=None) -> None:
    """Sets each ping's fate (`kind`, `text`) from its record, the drop summaries, later
    writes that matched no request, and the client's evidence."""
    continuous = meta.get("mode") == "continuous"
    duplicates = {}
    for r in lines:
        if r.get("outcome") == "unmatched" and record_key(r):
            duplicates.setdefault(record_key(r), []).append(r)
    placed = place_in_tallies(pings, runs, lines, meta.get("interval"), continuous)
    for p in pings:
        record, why = p.record, None
        if record is None and p.n in placed:
            tally, when = placed[p.n]
            record = {"outcome": "queued" if tally["outcome"] == "unanswered" else tally["outcome"]}
            why = never_read(p, tally, when, pings, runs, continuous)
        if record is None and sent is not None and p.n > sent:
            p.kind, p.text = "not_sent", "never sent: ping stopped before it (the run ended)"
            continue
        p.kind, p.text = fates.classify(record, p.received and not p.late, p.evidence, duplicates.get(p.key, []), why)


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
    backend = f", backend {meta['backend']}" if meta.get("backend") else ""
    return f"Client: Claude Code {meta['client_version']}, permission mode {meta.get('permission_mode')}{backend}."


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
    if meta.get("behaviour"):
        say(f"The scripted model's behaviour: `{meta['behaviour']}` (docs/RUNNER.md, *A model that behaves like a real one*).\n")
    if meta.get("stopped"):
        say(f"**Stopped early: {meta['stopped']}.**\n")
    with_opts = any(p.opts for p in pings) and not continuous
    head = ["ping"] + (["ping options"] if with_opts else []) + ["ping RTT ms", "agent ms", "fate"]
    if llm:
        head += USAGE_HEAD
    if requests:
        head += ["largest request B", "critical path B", "turns after hand-over"]
    say("| " + " | ".join(head) + " |")
    say("|" + "---|" * len(head))
    critical_max = None
    for p in pings:
        row = [str(p.n)] + ([f"`{p.opts}`" if p.opts else "-"] if with_opts else [])
        row += [fmt(p.rtt, "{:.2f}"), fmt((p.record or {}).get("agent_ms"), "{:.2f}"), p.fate().replace("|", "\\|")]
        if llm:
            row += p.usage.cells()
        if requests:
            _, largest, critical, turns = request_stats(p.model_bytes)
            if critical is not None:
                critical_max = max(critical, critical_max or 0)
            row += [fmt(largest, "{}"), fmt(critical, "{}"), fmt(turns, "{}")]
        say("| " + " | ".join(row) + " |")
    if overhead is not None and overhead.requests:
        cells = ["session start-up (before the first packet)"] + [""] * (2 + with_opts) + ["-"] + overhead.cells()
        say("| " + " | ".join(cells) + " |")
    say("")
    rtts = [p.rtt for p in pings if p.rtt is not None]
    received = sum(p.received for p in pings)
    valid = sum(p.valid for p in pings)
    say(f"{len(pings)} pings, {received} answered in ping, {valid} valid replies; "
        f"median ping RTT {fmt(stats.median(rtts), '{:.2f}')} ms.")
    say(f"Fates: {fate_counts(pings)}.")
    if totals:
        invalid = ", ".join(f"{k} {v}" for k, v in (totals.get("invalid_by_class") or {}).items()) or "none"
        say(f"The bridge (`tunbridge report`): {totals.get('pings')} requests, {totals.get('answered')} answered, "
            f"{totals.get('valid')} valid, invalid by class: {invalid}; {totals.get('stale')} expired in the queue, "
            f"{totals.get('overflow')} dropped as overflow, {totals.get('unanswered')} never answered (read, or still queued when it stopped), "
            f"{totals.get('unmatched')} replies matching no request; median bridge RTT "
            f"{fmt(totals.get('rtt_ms_median'), '{:.2f}')} ms, median agent time "
            f"{fmt(totals.get('agent_ms_median'), '{:.2f}')} ms.")
    if llm:
        whole = whole_usage(pings, overhead)
        say(troubles_line(pings, whole))
        say(caching_line(whole, pings))
    thinking_sent = sorted({json.dumps(r.get("thinking"), sort_keys=True) for r in model_log
                            if r.get("method") == "POST" and "thinking" in r})
    if thinking_sent:
        say(f"Thinking as the model requests asked for it: {', '.join(f'`{t}`' for t in thinking_sent)}.")
    if critical_max is not None:
        say(f"Largest model request on a critical path: {critical_max} bytes.")
    return "\n".join(lines) + "\n"


def fate_counts(pings) -> str:
    counts = {}
    for p in pings:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: fates.KINDS.index(kv[0])
                                                      if kv[0] in fates.KINDS else 99)) or "none"


def troubles_line(pings, whole) -> str:
    """Claude Code's totals: requests, output, cost reported, retries, refusals."""
    troubles = client_troubles_of(pings)
    retries = ", ".join(f"{n} of a {k}" if k != "cut" else f"{n} of a cut stream"
                        for k, n in sorted(troubles["retries"].items())) or "none"
    line = (f"Claude Code in total: {whole.requests} model requests, {whole.output} output tokens, "
            f"${whole.cost:.4f} reported; retries {retries}")
    if troubles["cuts"]:
        line += f", {troubles['cuts']} cut streams recovered without a retry event"
    return line + f"; {troubles['refused']} commands refused by the permissions."


def retry_counts(retries) -> dict:
    """{"529": 2, "cut": 1}: the client's retries by HTTP status (a cut stream has none)."""
    counts = {}
    for r in retries:
        key = str(r.get("status") or "cut")
        counts[key] = counts.get(key, 0) + 1
    return counts


def client_troubles_of(pings) -> dict:
    t = {"retries": {}, "cuts": 0, "refused": 0}
    for p in pings:
        for k, n in retry_counts(p.evidence.retries).items():
            t["retries"][k] = t["retries"].get(k, 0) + n
        t["cuts"] += p.evidence.cuts
        t["refused"] += len(p.evidence.refused)
    return t


def caching_line(whole, pings) -> str:
    """The prompt cache in one line: input by how it was billed, and what it saved."""
    if not whole.total_input:
        return "Prompt cache: no input tokens reported."
    share = 100 * whole.cache_read / whole.total_input
    saved = whole.cost_plain - whole.cost
    line = (f"Prompt cache: of {whole.total_input} input tokens, {whole.cache_read} read from the cache "
            f"({share:.0f} %), {whole.cache_write} written to it ({whole.write_1h} for 1 h), {whole.input} uncached; "
            f"cost ${whole.cost:.4f} with the cache, ${whole.cost_plain:.4f} without it")
    if whole.cost_plain and abs(saved) >= 0.00005:
        line += f" ({100 * saved / whole.cost_plain:.0f} % {'saved' if saved > 0 else 'more: cache writes cost 1.25 times'})"
    if whole.list_cost is not None and whole.cost and abs(whole.list_cost - whole.cost) > max(0.0001, 0.01 * whole.cost):
        line += (f". At Anthropic's list prices (harness/prices.py) the usage the requests finally reported "
                 f"costs ${whole.list_cost:.4f}; Claude Code reported ${whole.cost:.4f} (its own price table, "
                 f"or attempts it was charged for that ended without an answer)")
    return line + "."


def whole_usage(pings, overhead=None):
    """The Usage of every ping (and the sessions' own share) together."""
    whole = Usage()
    for u in [p.usage for p in pings] + ([overhead] if overhead else []):
        whole.merge(u)
    return whole


def ping_rows(pings, runs):
    """result.json's rows: one per ping, its outcome in the one field `fate`."""
    rows = []
    for p in pings:
        u = p.usage
        rows.append({"n": p.n, "opts": p.opts, "rtt_ms": p.rtt, "received": p.received,
                     "agent_ms": (p.record or {}).get("agent_ms"), "valid": p.valid,
                     "fate": p.fate(), "fate_kind": p.kind, "lost": p.lost,
                     "requests": u.requests, "tool_calls": p.tool_calls,
                     "input_tokens": u.total_input, "cached_tokens": u.cache_read,
                     "cache_write_tokens": u.cache_write, "uncached_tokens": u.input,
                     "output_tokens": u.output, "cost_usd": u.cost, "cost_without_cache_usd": u.cost_plain,
                     "retries": retry_counts(p.evidence.retries), "silent_recoveries": p.evidence.cuts,
                     "refused": len(p.evidence.refused)})
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
              "cost_usd": whole_usage(pings, overhead).cost if meta.get("agent") != "native" else None,
              "cost_without_cache_usd": whole_usage(pings, overhead).cost_plain if meta.get("agent") != "native"
              else None}
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
