"""The leaderboard: one row per configuration, from the bundles' result.json (or from the
files of a bundle written before the package), as markdown and as a picture.

Columns: the model as the API named it (with the scripted model's behaviour in a dry run),
prompt, harness, thinking; pings, valid %, median ping RTT with its 95 % bootstrap interval,
p90 RTT, median agent time (hand-over to WRITE), and per ping the model requests, tool calls,
the client's retries, input / cached / output tokens and cost with and without the prompt
cache; the fates other than a plain answer (harness/fates.py); the suite score where it ran. Sorted by median RTT among the configurations whose every reply
was valid; the others follow, by valid share, then median.
"""

import json
import os

from harness import bundle, plot, stats
from harness.bundle import fmt

COLUMNS = ["#", "model", "prompt", "harness", "thinking", "pings", "valid %", "median RTT ms [95 % CI]",
           "p90 RTT ms", "agent ms", "requests / ping", "tool calls / ping", "retries / ping", "input tok / ping",
           "cached tok / ping", "output tok / ping", "cost USD / ping", "without cache USD / ping", "fates",
           "suite"]


def row_of(result: dict, where: str = "") -> dict:
    """A leaderboard row from one bundle's result."""
    meta, pings = result.get("meta") or {}, result.get("pings") or []
    rtts = [p["rtt_ms"] for p in pings if p.get("rtt_ms") is not None]
    n = len(pings)
    per = (lambda key: sum(p.get(key) or 0 for p in pings) / n if n else None)
    llm = meta.get("agent") != "native"
    models = result.get("models") or []
    model = ", ".join(models) if models else (meta.get("model") or ("native agent" if not llm else "default"))
    if meta.get("behaviour"):
        model += f" [{meta['behaviour']}]"
    suite = result.get("suite")
    fates = {}
    for p in pings:
        kind = p.get("fate_kind")
        if kind and kind != "answered":
            fates[kind] = fates.get(kind, 0) + 1
    retries = sum(sum((p.get("retries") or {}).values()) + (p.get("silent_recoveries") or 0) for p in pings)
    return {
        "config": meta.get("config"), "where": where, "model": model, "asked": meta.get("model"),
        "prompt": os.path.basename(meta.get("prompt") or "-"), "harness": meta.get("harness_label") or meta.get("harness"),
        "thinking": meta.get("thinking") or "default", "traffic": ",".join(meta.get("traffic") or []) or None,
        "pings": n, "valid": sum(bool(p.get("valid")) for p in pings),
        "lost": sum(bool(p.get("lost")) for p in pings),
        "rtts": rtts, "points": [(p.get("rtt_ms"), p.get("valid"), p.get("lost")) for p in pings],
        "median": stats.median(rtts), "ci": stats.bootstrap_median(rtts), "p90": stats.percentile(rtts, 90),
        "agent_ms": stats.median(p.get("agent_ms") for p in pings),
        "requests": per("requests") if llm else None, "tool_calls": per("tool_calls") if llm else None,
        "input": per("input_tokens") if llm else None, "cached": per("cached_tokens") if llm else None,
        "output": per("output_tokens") if llm else None,
        "cost": (result.get("cost_usd") or 0) / n if llm and n else None,
        "cost_plain": result["cost_without_cache_usd"] / n
        if llm and n and result.get("cost_without_cache_usd") is not None else None,
        "retries": retries / n if llm and n else None, "fates": fates,
        "suite": suite, "stopped": meta.get("stopped"), "error": result.get("error"),
    }


def order(rows: list) -> list:
    """Every-reply-valid configurations first, by median RTT; then by valid share, median."""
    def key(r):
        clean = r["pings"] > 0 and r["valid"] == r["pings"]
        share = r["valid"] / r["pings"] if r["pings"] else 0
        med = r["median"] if r["median"] is not None else float("inf")
        return (not clean, -share if not clean else 0, med)
    return sorted(rows, key=key)


def cells(r: dict, rank: int) -> list:
    ci = r["ci"]
    median = fmt(r["median"], "{:.1f}") + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
    valid = f"{100 * r['valid'] / r['pings']:.0f}" if r["pings"] else "-"
    suite = f"{r['suite']['passed']} / {r['suite']['run']}" if r.get("suite") else "-"
    prompt = r["prompt"] + (f" ({r['traffic']})" if r.get("traffic") else "")
    fates = ", ".join(f"{k} {n}" for k, n in sorted(r.get("fates", {}).items())) or "-"
    return [str(rank), r["model"], prompt, r["harness"] or "-", r["thinking"], str(r["pings"]), valid, median,
            fmt(r["p90"], "{:.1f}"), fmt(r["agent_ms"], "{:.1f}"), fmt(r["requests"], "{:.1f}"),
            fmt(r["tool_calls"], "{:.1f}"), fmt(r.get("retries"), "{:.1f}"), fmt(r["input"], "{:.0f}"),
            fmt(r["cached"], "{:.0f}"), fmt(r["output"], "{:.0f}"), fmt(r["cost"], "{:.4f}"),
            fmt(r.get("cost_plain"), "{:.4f}"), fates.replace("|", "\\|"), suite]


def markdown(rows: list, title: str = "Leaderboard", picture: str = "leaderboard.svg") -> str:
    """The table, what it shows, and below it each row's bundle with what stopped it; `picture`
    is where leaderboard.svg is (None: not drawn)."""
    rows = order(rows)
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 3 + "---|" * 3
             + "---:|" * (len(COLUMNS) - 9) + "---|" * 3]
    for i, r in enumerate(rows, 1):
        lines.append("| " + " | ".join(cells(r, i)) + " |")
    notes = []
    for i, r in enumerate(rows, 1):
        said = [f"failed: {r['error']}" if r.get("error") else
                f"stopped early: {r['stopped']}" if r.get("stopped") else None,
                f"{r['lost']} of {r['pings']} pings got no reply" if r["lost"] else None]
        said = "; ".join(s for s in said if s)
        if r.get("where") or said:
            notes.append(f"- #{i}" + (f" `{r['where']}`" if r.get("where") else "") + (f": {said}" if said else ""))
    lines += ["", "Sorted by median ping RTT among the configurations whose every reply was valid; "
              "the rest follow by valid share. RTT is the client's (ping's) round trip; the interval is a "
              "95 % percentile bootstrap of the median. Tokens and cost are per ping, as Claude Code reported "
              "them; without the cache, every input token at the input price. Retries are the client's own "
              "(its api_retry events and the streams it recovered without one); fates other than a plain "
              "answer are counted by kind (docs/RUNNER.md, *Fates*)."
              + (f" Every ping: [leaderboard.svg]({picture})." if picture else "")]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def svg(rows: list, title: str = "Ping RTT per configuration") -> str:
    rows = order(rows)
    series = []
    for i, r in enumerate(rows, 1):
        label = f"#{i} {r['model']}, {r['prompt']}, {r['harness']}"
        if r["thinking"] != "default":
            label += f", thinking {r['thinking']}"
        if r.get("traffic"):
            label += f", {r['traffic']}"
        if not r["pings"] and r.get("suite"):
            label += f" (suite only: {r['suite']['passed']} / {r['suite']['run']})"
        series.append(plot.Strip(label, [(rtt, bool(valid), bool(lost)) for rtt, valid, lost in r["points"]]))
    return plot.strip_chart(series, title=title, unit="ping RTT (log scale)")


def write(out: str, rows: list) -> None:
    with open(os.path.join(out, "leaderboard.md"), "w") as f:
        f.write(markdown(rows))
    with open(os.path.join(out, "leaderboard.svg"), "w") as f:
        f.write(svg(rows))


# ---------------------------------------------------------------- reading earlier runs

def find_results(path: str) -> list:
    """(where, result) for each bundle under `path`: result.json files, or bundles written
    before the package (records.jsonl and summary.md, read again)."""
    found = []
    for top, dirs, files in os.walk(path):
        dirs.sort()
        if "result.json" in files:
            with open(os.path.join(top, "result.json")) as f:
                result = json.load(f)
            if (result.get("meta") or {}).get("scenario"):
                continue
            found.append((top, result))
            dirs[:] = []
        elif "summary.md" in files and "records.jsonl" in files:
            meta = bundle.old_meta(top)
            if meta:
                found.append((top, bundle.summarise(top, meta, write=False)))
            dirs[:] = []
    return found
