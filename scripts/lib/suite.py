#!/usr/bin/env python3
"""The scenario suite: how correct a model is as an IP stack, not only how fast.

Each scenario is one request and one agent run: a ping with options, a probe, or a packet
the kernel would never send, injected from the host side (scripts/lib/inject.py). It
expects either a reply (judged valid by the bridge, and seen by the client) or silence
(nothing written for the request). `scripts/experiment.sh --suite [NAMES]` runs it; this
file holds the scenarios and does the rest:

    suite.py names [--prompt FILE] [NAMES]      the scenarios to run, one a line
    suite.py produce NAME [--wait S]            (inside the namespace) make NAME's request
    suite.py run --out DIR [--prompt FILE] [NAMES] -- EXPERIMENT_ARGS
                                                each scenario through `experiment.sh
                                                --scenario NAME`, then `score`
    suite.py score --out DIR [--agent A ...]    DIR/scorecard.json and DIR/scorecard.md
    suite.py compare DIR_OR_SCORECARD...        several scorecards side by side (markdown)

A scenario's files (the bridge record, the client's output, Claude Code's JSON) are in
DIR/<scenario>/, as `experiment.sh` writes them for one ping. Stdlib only.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import experiment_table as table  # noqa: E402  (load_jsonl, load_json, tokens, fmt, ...)
import inject  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER4 = inject.PEER
# The flaws of examples/dry_run_flaws.py, and which scenarios each one must fail.
REPLY_FLAWS = ("checksum", "data")
SILENCE_FLAWS = ("answer-all",)


@dataclass(frozen=True)
class Scenario:
    """One request, what the agent owes for it, and how the request is made."""
    name: str
    expect: str  # "reply" or "silence"
    what: str  # one line for the scorecard and --help
    ping: tuple = ()  # ping options, for a ping scenario
    build: str = ""  # an inject.BUILDERS name, for an injected packet
    traffic: str = ""  # a scripts/lib/traffic.py kind, for a probe (with `ping` as its ping options)
    scope: str = "icmpv4"  # which prompts handle it: "icmpv4" (every prompt) or "stack"
    data: bool = True  # whether the reply carries data (the `data` flaw changes one byte)
    caught_by: tuple = field(init=False, default=())

    def __post_init__(self):
        flaws = SILENCE_FLAWS if self.expect == "silence" else \
            tuple(f for f in REPLY_FLAWS if f != "data" or self.data)
        object.__setattr__(self, "caught_by", flaws)


def echo(name, what, *ping, data=True):
    return Scenario(name, "reply", what, ping=tuple(ping), data=data)


def silent(name, what, build, scope="icmpv4"):
    return Scenario(name, "silence", what, build=build, scope=scope)


def probe(name, what, traffic, *ping, data=True):
    return Scenario(name, "reply", what, ping=tuple(ping), traffic=traffic, scope="stack", data=data)


SCENARIOS = [
    echo("echo-56", "ping, 56 data bytes", "-s", "56"),
    echo("echo-0", "ping, no data", "-s", "0", data=False),
    echo("echo-57", "ping, 57 data bytes (odd length: the checksum pads a zero byte)", "-s", "57"),
    echo("echo-1400", "ping, 1400 data bytes", "-s", "1400"),
    echo("echo-ttl5", "ping with TTL 5 (the reply's TTL 64 changes the IPv4 checksum)", "-t", "5"),
    echo("echo-tos", "ping with DSCP EF, ECN 0 (ping -Q 0xb8)", "-Q", "0xb8"),
    echo("echo-record-route", "ping -R: IHL 15, the record-route option copied", "-R"),
    silent("bad-ip-checksum", "echo request with a wrong IPv4 header checksum", "bad-ip-checksum"),
    silent("bad-icmp-checksum", "echo request with a wrong ICMP checksum", "bad-icmp-checksum"),
    silent("icmp-timestamp", "ICMP timestamp request (type 13)", "icmp-timestamp"),
    silent("fragment", "first fragment (MF set) of an echo request", "fragment"),
]
BY_NAME = {s.name: s for s in SCENARIOS}


def handles(prompt: str) -> str:
    """Which scenarios a prompt handles: the ping prompts only ICMPv4, any other all."""
    return "icmpv4" if os.path.basename(prompt or "").startswith("ping-") else "stack"


def select(names, prompt):
    """The scenarios named (in suite order), or all the prompt handles. ValueError on an unknown name."""
    wanted = [n for arg in names for n in arg.split(",") if n]
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    if wanted:
        return [s for s in SCENARIOS if s.name in wanted]
    scope = handles(prompt)
    return [s for s in SCENARIOS if scope == "stack" or s.scope == "icmpv4"]


# ---------------------------------------------------------------- making the request

class Stopped(Exception):
    """SIGTERM: the runner gave up waiting (the agent has finished)."""


def produce(sc: Scenario, wait: int, dev: str, ident: int) -> dict:
    """Makes the scenario's request inside the namespace (an ICMP one with identifier
    `ident`, sequence 1); returns what the client saw."""
    if sc.build:
        packet = inject.BUILDERS[sc.build](ident, 1)
        inject.send(dev, packet)
        print(f"injected {len(packet)} bytes on {dev}: {packet.hex()}", flush=True)
        return {"client": "inject", "bytes": len(packet)}
    if sc.traffic:
        cmd = ["python3", os.path.join(ROOT, "scripts/lib/traffic.py"), sc.traffic, "--wait", str(wait),
               "--ident", str(ident)]
        cmd += ["--ping-opts", " ".join(sc.ping)] if sc.ping else []
    else:
        cmd = ["ping", "-n", "-c", "1", "-W", str(wait), "-e", str(ident), *sc.ping, PEER4]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate()
    except Stopped:
        proc.terminate()
        out, _ = proc.communicate()
        out += "(stopped: the agent had finished)\n"
    print(out, end="", flush=True)
    return {"client": sc.traffic or "ping"}


def cmd_produce(a) -> int:
    def stop(*_):
        raise Stopped()
    signal.signal(signal.SIGTERM, stop)
    try:
        probe = produce(BY_NAME[a.name], a.wait, a.dev, a.ident or random.randrange(1, 0xFFFF))
    except Stopped:
        probe = {"stopped": True}
    except OSError as e:
        print(f"suite.py: {a.name}: {e}", flush=True)
        probe = {"error": str(e)}
    print("probe: " + json.dumps(probe), flush=True)
    return 0


def read_probe(path: str) -> dict:
    """What the client saw: the last `probe:` line the producer printed, and for a ping
    whether it counted the reply and its time."""
    try:
        lines = [line for line in open(path) if line.startswith("probe: ")]
    except OSError:
        return {}
    probe = json.loads(lines[-1][len("probe: "):]) if lines else {}
    client = probe.get("client")
    if client in ("ping", "ping6"):
        probe.update(received=table.ping_received(path), rtt_ms=table.ping_rtt(path))
    elif client not in (None, "inject"):  # traffic.py: `ok <kind> ...; 1 received, time=<ms> ms` or `FAIL ...`
        ok = re.search(r"^ok .*time=([0-9.]+) ms", open(path).read(), re.M)
        probe.update(received=bool(ok), rtt_ms=float(ok.group(1)) if ok else None)
    return probe


# ---------------------------------------------------------------- scoring

def verdict_class(record: dict) -> str:
    """The verdict's class (`valid`, `icmp_checksum`, ...); from the text when the record has no class."""
    if record.get("class"):
        return record["class"]
    text = record.get("verdict") or record.get("outcome") or "?"
    return text.split(":")[0]


def judge(sc: Scenario, records: list, probe: dict):
    """(pass, why) for one scenario from its bridge record and what the client saw."""
    written = [r for r in records if r.get("written")]
    refused = [r for r in records if r.get("outcome") == "refused"]
    read = [r for r in records if r.get("queue_ms") is not None and r.get("outcome") != "unmatched"]
    if sc.expect == "silence":
        if written or refused:
            return False, f"wrote a reply ({verdict_class((written or refused)[0])})"
        if not read:
            return False, "the agent never read the request"
        return True, "silent"
    if not written:
        if refused:
            return False, f"reply refused ({verdict_class(refused[0])})"
        if not read:
            return False, "the agent never read the request"
        return False, "no reply written"
    bad = [r for r in written if verdict_class(r) != "valid"]
    if bad:
        return False, verdict_class(bad[0])
    if probe.get("client") != "inject" and not probe.get("received"):
        return False, f"valid, but {probe.get('client', 'the client')} saw no answer"
    return True, "valid"


def score_one(out: str, sc: Scenario, meta: dict) -> dict:
    d = os.path.join(out, sc.name)
    records = [r for r in table.load_jsonl(os.path.join(d, "records.jsonl"))]
    probe = read_probe(os.path.join(d, "ping-1.txt"))
    ok, why = judge(sc, records, probe)
    answered = next((r for r in records if r.get("written")), {})
    span = table.timeline(os.path.join(d, "timeline.tsv")).get(1)
    result = table.load_json(os.path.join(d, "claude-1.json")) or {}
    into, outof = table.tokens(result)
    if span and span[2] != 0 and not ok:
        why += f" (agent exit {span[2]})"
    return dict(meta, scenario=sc.name, expect=sc.expect, what=sc.what, **{"pass": ok}, why=why,
                verdict=answered.get("verdict"), agent_ms=answered.get("agent_ms"),
                agent_run_s=round(span[1] - span[0], 3) if span else None,
                rtt_ms=probe.get("rtt_ms"), bridge_rtt_ms=answered.get("rtt_ms"),
                input_tokens=into, output_tokens=outof, cost_usd=result.get("total_cost_usd"),
                turns=result.get("num_turns"), report=(result.get("result") or "")[:300] or None)


def totals(rows):
    """{"all": (passed, run), "reply": ..., "silence": ...}."""
    out = {}
    for key in ("all", "reply", "silence"):
        mine = [r for r in rows if key == "all" or r["expect"] == key]
        out[key] = (sum(r["pass"] for r in mine), len(mine))
    return out


def totals_text(rows) -> str:
    t = totals(rows)
    return (f"{t['all'][0]} / {t['all'][1]} passed: reply {t['reply'][0]} / {t['reply'][1]}, "
            f"silence {t['silence'][0]} / {t['silence'][1]}")


def label(rows, fallback: str) -> str:
    r = rows[0] if rows else {}
    text = f"{r.get('agent', '?')} {r.get('model') or 'default'}, {os.path.basename(r.get('prompt') or '?')}"
    if r.get("harness") == "lean":
        text += ", lean"
    if r.get("flaw"):
        text += f", flaw {r['flaw']}"
    return text or fallback


def markdown(rows) -> str:
    lines = [f"# Scenario suite: {label(rows, '')}", "", f"**{totals_text(rows)}**", "",
             "| scenario | expect | pass | why | agent ms | agent run s | client RTT ms "
             "| input tokens | output tokens | cost USD |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append("| " + " | ".join([
            r["scenario"], r["expect"], "pass" if r["pass"] else "**FAIL**", r["why"],
            table.fmt(r["agent_ms"], "{:.1f}"), table.fmt(r["agent_run_s"], "{:.1f}"),
            table.fmt(r["rtt_ms"], "{:.1f}"), table.fmt(r["input_tokens"], "{}"),
            table.fmt(r["output_tokens"], "{}"), table.fmt(r["cost_usd"], "{:.4f}")]) + " |")
    reports = [f"- {r['scenario']}: {' '.join(r['report'].split())}" for r in rows if r.get("report")]
    if reports:
        lines += ["", "What the agent reported (first 300 characters):", "", *reports]
    return "\n".join(lines) + "\n"


def cmd_score(a) -> int:
    meta = {"agent": a.agent, "model": a.model, "prompt": a.prompt, "harness": a.harness, "flaw": a.flaw}
    names = [n for n in os.listdir(a.out) if n in BY_NAME and os.path.isdir(os.path.join(a.out, n))]
    rows = [score_one(a.out, s, meta) for s in SCENARIOS if s.name in names]
    with open(os.path.join(a.out, "scorecard.json"), "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "scorecard.md"), "w") as f:
        f.write(markdown(rows))
    print(markdown(rows), end="")
    return 0 if rows else 1


# ---------------------------------------------------------------- running and comparing

def cmd_run(a) -> int:
    chosen = a.chosen
    os.makedirs(a.out, exist_ok=True)
    print(f"==> scenario suite: {len(chosen)} scenarios, prompt {a.prompt}", flush=True)
    for sc in chosen:
        d = os.path.join(a.out, sc.name)
        os.makedirs(d, exist_ok=True)
        cmd = [os.path.join(ROOT, "scripts/experiment.sh"), *a.experiment, "--prompt", a.prompt,
               "--count", "1", "--scenario", sc.name, "--out", d]
        with open(os.path.join(d, "experiment.log"), "w") as log:
            status = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        row = score_one(a.out, sc, {})
        note = f" (experiment.sh exit {status}; see {d}/experiment.log)" if status else ""
        print(f"    {sc.name:<20} {sc.expect:<8} {'pass' if row['pass'] else 'FAIL'}: {row['why']}{note}",
              flush=True)
    print(flush=True)
    return cmd_score(a)


def load_scorecard(path: str):
    if os.path.isdir(path):
        path = os.path.join(path, "scorecard.json")
    with open(path) as f:
        return json.load(f)


def cmd_compare(a) -> int:
    cards = []
    for path in a.scorecards:
        try:
            cards.append((path, load_scorecard(path)))
        except (OSError, ValueError) as e:
            print(f"suite.py: cannot read a scorecard at {path}: {e}", file=sys.stderr)
            return 2
    heads = [label(rows, path) for path, rows in cards]
    if len(set(heads)) < len(heads):
        heads = [f"{h} ({os.path.basename(os.path.normpath(p))})" for h, (p, _) in zip(heads, cards)]
    names = [s.name for s in SCENARIOS if any(r["scenario"] == s.name for _, rows in cards for r in rows)]
    print("| scenario | expect | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(cards))
    for key in ("all", "reply", "silence"):
        cells = ["{} / {}".format(*totals(rows)[key]) for _, rows in cards]
        print(f"| **passed** | {key} | " + " | ".join(cells) + " |")
    cost = [sum(r.get("cost_usd") or 0 for r in rows) for _, rows in cards]
    print("| **cost USD** | | " + " | ".join(f"{c:.4f}" for c in cost) + " |")
    for name in names:
        cells = []
        for _, rows in cards:
            r = next((r for r in rows if r["scenario"] == name), None)
            cells.append("-" if r is None else "pass" if r["pass"] else f"**FAIL**: {r['why']}")
        print(f"| {name} | {BY_NAME[name].expect} | " + " | ".join(cells) + " |")
    return 0


def cmd_names(a) -> int:
    chosen = a.chosen
    for s in chosen:
        if a.caught_by is None:
            print(f"{s.name}\t{s.expect}\t{s.what}" if a.long else s.name)
        elif a.caught_by in s.caught_by:
            print(s.name)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("names", help="the scenarios to run, one a line")
    p.add_argument("--prompt", default="prompts/ip-stack.md")
    p.add_argument("--long", action="store_true", help="with what each expects and does")
    p.add_argument("--caught-by", help="only those this dry-run flaw must fail")
    p.add_argument("names", nargs="*")
    p.set_defaults(fn=cmd_names)
    p = sub.add_parser("produce", help="make a scenario's request (inside the namespace)")
    p.add_argument("name", choices=list(BY_NAME))
    p.add_argument("--wait", type=int, default=180, help="seconds the client waits for its answer")
    p.add_argument("--dev", default="tun0", help="the TUN device, for injected packets")
    p.add_argument("--ident", type=int, help="the ICMP identifier of a ping or an injected ICMP packet "
                   "(default: random)")
    p.set_defaults(fn=cmd_produce)
    for name, fn in (("run", cmd_run), ("score", cmd_score)):
        p = sub.add_parser(name, help="run the suite through experiment.sh, then score" if name == "run"
                           else "write scorecard.json and scorecard.md from DIR's scenario runs")
        p.add_argument("--out", required=True)
        p.add_argument("--agent", default="claude")
        p.add_argument("--model", default=None)
        p.add_argument("--prompt", default="prompts/ping-respond.md")
        p.add_argument("--harness", default="default")
        p.add_argument("--flaw", default=None)
        if name == "run":
            p.add_argument("names", nargs="*", help="scenarios (default: all the prompt handles); "
                           "after `--`, the experiment.sh flags for every scenario")
        p.set_defaults(fn=fn)
    p = sub.add_parser("compare", help="scorecards side by side")
    p.add_argument("scorecards", nargs="+", help="scorecard.json files or the directories holding them")
    p.set_defaults(fn=cmd_compare)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    a = ap.parse_args(argv[:cut])
    a.experiment = argv[cut + 1:]
    if a.cmd in ("names", "run"):
        try:
            a.chosen = select(a.names, a.prompt)
        except ValueError as e:
            print(f"suite.py: {e}", file=sys.stderr)
            return 2
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
