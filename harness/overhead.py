"""What the harness costs per packet: `python3 -m harness overhead` (issue 21's benchmark).

One continuous dry-run session per variant and load (the real Claude Code client, the
scripted model, which answers at once, and a real bridge in a private namespace), through
the runner itself (harness/matrix.py), so what is measured is what `run --continuous` does.
Each round runs every client, load and variant once, the variants in a rotated order, so the
shared machine's drift falls on all of them alike:

    idle        --idle pings (12) every --idle-interval s (0.5): the agent waits in its read
                when each arrives. Figure: ping's RTT of packets 2 to N.
    saturated   --saturated pings (20) every --saturated-interval s (0.02): they queue, and
                the agent works back to back. Figures: the cycle (the time between consecutive
                replies the bridge wrote, packets 2 to N) and the client's CPU time per packet
                (its process tree, with the Bash and tunbridge children it waited for and the
                live `tunbridge mcp`, between the tool results that handed it packet 2 and
                packet N: runs.jsonl's `cpu`).

From every session: model requests, tool calls and input tokens per packet (the session's
totals over the packets it read, so its first read and final report are in them), the size
of its first request, and whether every reply was valid.

The variants: `two-call` (/ping-serve: tunbridge read, then tunbridge write), `one-call`
(/ping-serve-next: tunbridge write --next), `mcp` (/ping-serve-mcp: write_and_read_next),
and each in the lean harness. When root runs it with no sudo user, every agent runs as
nobody (the MCP server refuses root; the Bash ones then run as the same user, so they
compare). Results in --out (default out/overhead-<time>): one run folder per round, client
and load, each as `run` writes it (bundles, timelines, leaderboard), and overhead.md and
overhead.json; `--summarise DIR` redoes the table from them.
"""

import contextlib
import json
import os
import sys
import time

from harness import ROOT, ArgumentParser, bundle, clients, matrix, procs, session, stats
from harness.config import Config, ConfigError, Options, check_options

VARIANTS = {
    "two-call": ("default", "prompts/ping-serve.md"),
    "one-call": ("default", "prompts/ping-serve-next.md"),
    "mcp": ("mcp", "prompts/ping-serve-mcp.md"),
    "lean-two-call": ("lean", "prompts/ping-serve.md"),
    "lean-one-call": ("lean", "prompts/ping-serve-next.md"),
    "lean-mcp": ("lean-mcp", "prompts/ping-serve-mcp.md"),
}
LOADS = ("idle", "saturated")


def variant_of(meta: dict):
    """The variant a bundle ran, by its harness and prompt; None for another."""
    for name, (harness, prompt) in VARIANTS.items():
        if meta.get("harness") == harness and meta.get("prompt") == prompt:
            return name
    return None


def default_clients() -> list:
    """The pinned client and, when installed (scripts/test.sh puts it in target/clients), the oldest."""
    found = [clients.PINNED_PATH]
    oldest = os.path.join(ROOT, "target", "clients", clients.OLDEST, "node_modules", ".bin", "claude")
    if os.path.exists(oldest):
        found.append(oldest)
    return found


def cell(a, client, load, out, variants) -> Options:
    count, interval = (a.idle, a.idle_interval) if load == "idle" else (a.saturated, a.saturated_interval)
    opts = Options(agent="dry-run", count=count, mode="continuous", interval=interval, session_packets=count,
                   ping_wait=30, out=out, client=client, unprivileged=True,
                   argv=["overhead", "--load", load, "--variant", *variants])
    check_options(opts)
    return opts


def run(a) -> int:
    variants = a.variant or list(VARIANTS)
    paths = a.client or default_clients()
    found = [clients.probe(p, "--client") for p in paths]
    procs.makedirs(a.out)
    total = a.rounds * len(found) * len(LOADS) * len(variants)
    print(f"==> {a.rounds} rounds x {len(found)} clients ({', '.join(c.version for c in found)}) x "
          f"{len(LOADS)} loads x {len(variants)} variants: {total} sessions; results in {a.out}", flush=True)
    for r in range(1, a.rounds + 1):
        order = variants[(r - 1) % len(variants):] + variants[:(r - 1) % len(variants)]
        for cc in found:
            for load in LOADS:
                out = os.path.join(a.out, f"r{r}", f"{cc.version}-{load}")
                opts = cell(a, cc.path, load, out, order)
                configs = [Config(harness=VARIANTS[v][0], prompt=VARIANTS[v][1], index=i)
                           for i, v in enumerate(order, 1)]
                before = os.getloadavg()
                procs.makedirs(out)
                with open(os.path.join(out, "run.log"), "w") as log, contextlib.redirect_stdout(log):
                    status = matrix.run(opts, configs, oauth=False)
                with open(os.path.join(a.out, "load.jsonl"), "a") as f:
                    f.write(json.dumps({"round": r, "client": cc.version, "load": load, "before": before,
                                        "after": os.getloadavg()}) + "\n")
                print(f"    round {r}, Claude Code {cc.version}, {load}: {line_of(out, load)}", flush=True)
                if status == 130:
                    return 130
    return summarise(a.out)


def line_of(out: str, load: str) -> str:
    """One line for a cell: per variant, valid replies and the median that matters for its load."""
    said = []
    for where, result in bundles(out):
        name, pings = variant_of(result["meta"]), result.get("pings") or []
        valid = sum(1 for p in pings if p.get("valid"))
        if load == "idle":
            figure = f"RTT {bundle.fmt(stats.median([p.get('rtt_ms') for p in pings[1:]]))} ms"
        else:
            figure = f"cycle {bundle.fmt(stats.median(cycles(session_figures(where)['replies'])))} ms"
        said.append(f"{name} {valid}/{len(pings)} valid, {figure}")
    return "; ".join(said) or "no results (run.log says why)"


def bundles(out: str) -> list:
    """(folder, result.json) of every bundle under `out`."""
    found = []
    for top, _, files in sorted(os.walk(out)):
        if "result.json" in files and "records.jsonl" in files:
            with open(os.path.join(top, "result.json")) as f:
                found.append((top, json.load(f)))
    return found


def session_figures(where: str) -> dict:
    """One session's figures: packets, requests, tool calls, input tokens, the first request's
    bytes, the replies' times (by sequence number) and CPU per packet between packets 2 and N."""
    runs = bundle.load_jsonl(os.path.join(where, "runs.jsonl"))
    tracker = session.load(os.path.join(where, f"claude-{runs[0]['tag']}.jsonl")) if runs else session.Tracker()
    packets = tracker.packets()
    usage = bundle.Usage()
    for req in tracker.requests:
        usage.add(req, (0.0, 0.0, None))
    first = next((r["bytes"] for r in bundle.load_jsonl(os.path.join(where, "model-requests.jsonl"))
                  if r.get("path", "").startswith("/v1/messages") and "count_tokens" not in r["path"]), None)
    records = [r for r in bundle.load_jsonl(os.path.join(where, "records.jsonl")) if r.get("outcome") == "answered"]
    replies = {r["seq"]: bundle.epoch(r["arrival"]) + r["rtt_ms"] / 1000 for r in records
               if r.get("seq") is not None and r.get("rtt_ms") is not None}
    cpu = None
    samples = runs[0].get("cpu") or [] if runs else []
    if len(packets) >= 3 and samples:
        at = [next((c for t, c in samples if t >= p["end"]), None) for p in (packets[1], packets[-1])]
        if None not in at:
            cpu = (at[1] - at[0]) * 1000 / (len(packets) - 2)
    n = len(packets) or None
    return {"packets": len(packets), "requests": n and len(tracker.requests) / n,
            "tools": n and len(tracker.calls()) / n, "input": n and usage.total_input / n, "first_bytes": first,
            "valid": sum(1 for r in records if r.get("verdict") == "valid"), "answered": len(records),
            "replies": replies, "cpu_ms": cpu}


def cycles(replies: dict) -> list:
    """Milliseconds between consecutive replies, packets 2 to N."""
    seqs = sorted(s for s in replies if s >= 2)
    return [(replies[b] - replies[a]) * 1000 for a, b in zip(seqs, seqs[1:])]


def quartiles(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return (f"{stats.median(values):.0f} [{stats.percentile(values, 25):.0f}–{stats.percentile(values, 75):.0f}] "
            f"({len(values)})")


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarise(out: str, show: bool = True) -> int:
    cells = {}
    for where, result in bundles(out):
        meta = result["meta"]
        name = variant_of(meta)
        if name is None:
            continue
        load = "idle" if os.path.basename(os.path.dirname(where)).endswith("-idle") else "saturated"
        c = cells.setdefault((meta.get("client_version"), name), {"idle": [], "saturated": [], "rtt": []})
        figures = session_figures(where)
        c[load].append(figures)
        if load == "idle":
            c["rtt"] += [p.get("rtt_ms") for p in (result.get("pings") or [])[1:]]
    loads = [json.loads(line) for line in open(os.path.join(out, "load.jsonl"))] \
        if os.path.exists(os.path.join(out, "load.jsonl")) else []
    rows, data = [], []
    order = list(VARIANTS)
    for (version, name) in sorted(cells, key=lambda k: (k[0] or "", order.index(k[1]))):
        c = cells[(version, name)]
        every = c["idle"] + c["saturated"]
        sat = [x for f in c["saturated"] for x in cycles(f["replies"])]
        cpu = [f["cpu_ms"] for f in c["saturated"]]
        valid, answered = sum(f["valid"] for f in every), sum(f["answered"] for f in every)
        packets = sum(f["packets"] for f in every)
        row = {"client": version, "variant": name, "sessions": len(every), "packets": packets,
               "valid": valid, "answered": answered,
               "requests_per_packet": mean(f["requests"] for f in every),
               "tool_calls_per_packet": mean(f["tools"] for f in every),
               "input_tokens_per_packet": mean(f["input"] for f in c["saturated"] or every),
               "first_request_bytes": mean(f["first_bytes"] for f in every),
               "idle_rtt_ms": c["rtt"], "saturated_cycle_ms": sat, "cpu_ms_per_packet": cpu}
        data.append(row)
        rows.append(f"| {version} | {name} | {fmt2(row['requests_per_packet'])} / {fmt2(row['tool_calls_per_packet'])} "
                    f"| {bundle.fmt(row['input_tokens_per_packet'], '{:,.0f}')} "
                    f"| {bundle.fmt(row['first_request_bytes'] and row['first_request_bytes'] / 1000, '{:.1f}')} KB "
                    f"| {quartiles(c['rtt'])} | {quartiles(sat)} | {quartiles(cpu)} | {valid} / {packets} |")
    head = ("| client | variant | requests / tool calls per packet | input tokens per packet (saturated) "
            "| first request | idle RTT, ms | saturated cycle, ms | client CPU per packet, ms (sessions) "
            "| valid / read |\n|---|---|---|---|---|---|---|---|---|")
    spread = [x for entry in loads for x in (entry["before"][0], entry["after"][0])]
    note = (f"Medians [p25–p75] (n). Load average (1 min) before and after each cell: "
            f"{min(spread):.1f} to {max(spread):.1f}." if spread else "Medians [p25–p75] (n).")
    text = f"# The harness per packet: {out}\n\n{head}\n" + "\n".join(rows) + f"\n\n{note}\n"
    with open(os.path.join(out, "overhead.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "overhead.json"), "w") as f:
        json.dump({"rows": data, "load": loads}, f, indent=1)
        f.write("\n")
    if show:
        sys.stdout.write(text)
    return 0


def fmt2(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python3 -m harness overhead", description=__doc__.splitlines()[0])
    ap.add_argument("--client", action="append", metavar="PATH",
                    help="a Claude Code to measure (repeat; default: the pinned one and the oldest supported)")
    ap.add_argument("--variant", action="append", choices=list(VARIANTS), help="repeat; default: all six")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--idle", type=int, default=12, help="pings of the idle session (default 12)")
    ap.add_argument("--idle-interval", type=float, default=0.5)
    ap.add_argument("--saturated", type=int, default=20, help="pings of the saturated session (default 20)")
    ap.add_argument("--saturated-interval", type=float, default=0.02)
    ap.add_argument("--out", help="where the results go (default out/overhead-<date>-<time>)")
    ap.add_argument("--summarise", metavar="DIR", help="only redo the table of an earlier run")
    a = ap.parse_args(argv)
    if a.summarise:
        return summarise(a.summarise)
    if os.geteuid() != 0:
        print("harness: overhead needs root (the TUN device, the network namespace)", file=sys.stderr)
        return 2
    if a.rounds < 1 or min(a.idle, a.saturated) < 3:
        print("harness: --rounds needs 1 or more, --idle and --saturated 3 or more", file=sys.stderr)
        return 2
    a.out = os.path.abspath(a.out or os.path.join("out", time.strftime("overhead-%Y%m%d-%H%M%S")))
    a.client = [os.path.abspath(os.path.expanduser(c)) for c in a.client or []]
    try:
        os.chdir(ROOT)
        return run(a)
    except (clients.ClientError, ConfigError) as e:
        print(f"harness: {e}", file=sys.stderr)
        return 2
    finally:
        procs.chown_tree(a.out)     # the results are the sudo user's, as a run's are
