"""The scenario suite: how correct a model is as an IP stack, not only how fast.

Each scenario is one request and one agent run: a ping with options, a probe
(harness/traffic.py), or a packet the kernel would never send, injected from the host side
(harness/inject.py). It expects either a reply (judged valid by the bridge, and seen by the
client) or silence (nothing written for the request). `--suite [NAMES]` runs one bundle per
scenario (harness/runner.py); this module holds the scenarios, judges each bundle, and
writes the scorecard (scorecard.json, scorecard.md) and its side-by-side comparison.
"""

import json
import os
import sys
from dataclasses import dataclass, field

from harness import bundle, pingout
from harness.bundle import fmt
from harness.wire import PEER as PEER4

# The flaws of harness/model/flaws.py, and which scenarios each one must fail.
REPLY_FLAWS = ("checksum", "data")
SILENCE_FLAWS = ("answer-all",)


@dataclass(frozen=True)
class Scenario:
    """One request, what the agent owes for it, and how the request is made."""
    name: str
    expect: str  # "reply" or "silence"
    what: str  # one line for the scorecard and --help
    ping: tuple = ()  # ping options, for a ping scenario
    build: str = ""  # a harness.inject BUILDERS name, for an injected packet
    traffic: str = ""  # a harness/traffic.py kind, for a probe (with `ping` as its ping options)
    scope: str = "icmpv4"  # which prompts handle it: "icmpv4" (every prompt) or "stack"
    data: bool = True  # whether the reply carries data (the `data` flaw changes one byte)
    caught_by: tuple = field(init=False, default=())

    def __post_init__(self):
        flaws = SILENCE_FLAWS if self.expect == "silence" else \
            tuple(f for f in REPLY_FLAWS if f != "data" or self.data)
        object.__setattr__(self, "caught_by", flaws)

    @property
    def client(self) -> str:
        """What makes the request: "inject", a traffic kind, or "ping"."""
        return "inject" if self.build else self.traffic or "ping"

    def request_argv(self, wait: int, ident: int, dev: str = "tun0") -> list:
        """The command that makes the request, run inside the namespace (from the repository
        root, for `python3 -m harness.*`)."""
        if self.build:
            return [sys.executable, "-m", "harness.inject", "--dev", dev, "--build", self.build,
                    "--ident", str(ident)]
        if self.traffic:
            argv = [sys.executable, "-m", "harness.traffic", self.traffic, "--wait", str(wait),
                    "--ident", str(ident)]
            return argv + (["--ping-opts", " ".join(self.ping)] if self.ping else [])
        return ["ping", "-n", "-c", "1", "-W", str(wait), "-e", str(ident), *self.ping, PEER4]


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
    probe("echo6-56", "ping -6, 56 data bytes", "ping6", "-s", "56"),
    probe("udp-echo4", "UDP to the echo port 7 (RFC 862): the same 19 bytes back", "udp-echo"),
    probe("udp-echo6", "UDP echo over IPv6", "udp-echo6"),
    probe("udp-closed4", "UDP to closed port 9: ICMP port unreachable, the client sees ECONNREFUSED",
          "udp-closed"),
    probe("tcp-syn4", "TCP connect to closed port 9: RST+ACK, refused at once", "tcp-syn", data=False),
    probe("tcp-syn6", "TCP connect over IPv6 to closed port 9: refused at once", "tcp-syn6", data=False),
    silent("bad-udp-checksum", "UDP to port 7 with a wrong UDP checksum", "bad-udp-checksum", scope="stack"),
    silent("tcp-rst", "a TCP RST to a closed port (never answered)", "tcp-rst", scope="stack"),
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


def client_saw(sc: Scenario, path: str) -> dict:
    """What the client saw: for a ping or a probe, whether it got the answer and its time."""
    if sc.client == "inject":
        return {"client": "inject"}
    seen = pingout.read(path)
    return {"client": sc.client, "received": seen.got(1), "rtt_ms": seen.rtt(1)}


# ---------------------------------------------------------------- scoring

def verdict_class(record: dict) -> str:
    """The verdict's class (`valid`, `icmp_checksum`, ...); from the text when the record has no class."""
    if record.get("class"):
        return record["class"]
    text = record.get("verdict") or record.get("outcome") or "?"
    return text.split(":")[0]


def judge(sc: Scenario, records: list, seen: dict):
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
    if seen.get("client") != "inject" and not seen.get("received"):
        return False, f"valid, but {seen.get('client', 'the client')} saw no answer"
    return True, "valid"


def score_one(out: str, sc: Scenario, meta: dict) -> dict:
    d = os.path.join(out, sc.name)
    records = bundle.load_jsonl(os.path.join(d, "records.jsonl"))
    seen = client_saw(sc, os.path.join(d, "ping-1.txt"))
    ok, why = judge(sc, records, seen)
    answered = next((r for r in records if r.get("written")), {})
    run = next((r for r in bundle.agent_runs(d) if str(r["tag"]) == "1"), None)
    span = (run["start"], run["end"], run["status"]) if run else None
    result = bundle.load_json(os.path.join(d, "claude-1.json")) or {}
    into, outof = bundle.tokens(result)
    if span and span[2] != 0 and not ok:
        why += f" (agent exit {span[2]})"
    return dict(meta, scenario=sc.name, expect=sc.expect, what=sc.what, **{"pass": ok}, why=why,
                verdict=answered.get("verdict"), agent_ms=answered.get("agent_ms"),
                agent_run_s=round(span[1] - span[0], 3) if span else None,
                rtt_ms=seen.get("rtt_ms"), bridge_rtt_ms=answered.get("rtt_ms"),
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
            fmt(r["agent_ms"], "{:.1f}"), fmt(r["agent_run_s"], "{:.1f}"),
            fmt(r["rtt_ms"], "{:.1f}"), fmt(r["input_tokens"], "{}"),
            fmt(r["output_tokens"], "{}"), fmt(r["cost_usd"], "{:.4f}")]) + " |")
    reports = [f"- {r['scenario']}: {' '.join(r['report'].split())}" for r in rows if r.get("report")]
    if reports:
        lines += ["", "What the agent reported (first 300 characters):", "", *reports]
    return "\n".join(lines) + "\n"


def write_scorecard(out: str, meta: dict) -> list:
    """Scores every scenario folder in `out`; writes scorecard.json and scorecard.md."""
    names = [n for n in os.listdir(out) if n in BY_NAME and os.path.isdir(os.path.join(out, n))]
    rows = [score_one(out, s, meta) for s in SCENARIOS if s.name in names]
    with open(os.path.join(out, "scorecard.json"), "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "scorecard.md"), "w") as f:
        f.write(markdown(rows))
    return rows


def load_scorecard(path: str):
    if os.path.isdir(path):
        path = os.path.join(path, "scorecard.json")
    with open(path) as f:
        return json.load(f)


def compare(cards) -> str:
    """Scorecards side by side: `cards` is [(path, rows)]; markdown."""
    heads = [label(rows, path) for path, rows in cards]
    if len(set(heads)) < len(heads):
        heads = [f"{h} ({os.path.basename(os.path.normpath(p))})" for h, (p, _) in zip(heads, cards)]
    names = [s.name for s in SCENARIOS if any(r["scenario"] == s.name for _, rows in cards for r in rows)]
    lines = ["| scenario | expect | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(cards)]
    for key in ("all", "reply", "silence"):
        cells = ["{} / {}".format(*totals(rows)[key]) for _, rows in cards]
        lines.append(f"| **passed** | {key} | " + " | ".join(cells) + " |")
    cost = [sum(r.get("cost_usd") or 0 for r in rows) for _, rows in cards]
    lines.append("| **cost USD** | | " + " | ".join(f"{c:.4f}" for c in cost) + " |")
    for name in names:
        cells = []
        for _, rows in cards:
            r = next((r for r in rows if r["scenario"] == name), None)
            cells.append("-" if r is None else "pass" if r["pass"] else f"**FAIL**: {r['why']}")
        lines.append(f"| {name} | {BY_NAME[name].expect} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
