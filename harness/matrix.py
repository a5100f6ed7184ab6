"""A run: its configurations, `--jobs` at a time, within the budget; then the leaderboard.

Before it starts it says how many agent runs the matrix makes. Each configuration runs in a
thread of its own (its processes, namespace, bridge and model are its own; harness/runner.py)
and writes its bundle: the run's folder itself when there is one configuration (the layout
of one run, as before), else one folder per configuration. At the end, however it ends
(done, the budget reached, Ctrl-C), the top of the run's folder gets leaderboard.md,
leaderboard.svg and run.json.
"""

import concurrent.futures
import os
import sys
import time

from harness import ROOT, backends, clients, leaderboard, procs, provenance, runner
from harness.progress import Progress


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def folder(opts, config, single: bool) -> str:
    return opts.out if single else os.path.join(opts.out, config.slug())


def plan(opts, configs) -> int:
    return sum(runner.planned_runs(opts, c, len(runner.suite_scenarios(opts, c))) for c in configs)


def budget_line(opts, configs, total: int) -> str:
    per = []
    if opts.count:
        per.append(f"{opts.count} ping{'s' if opts.count != 1 else ''}"
                   + (f" in sessions of {opts.session_packets}" if opts.mode == "continuous" else ""))
    if opts.suite is not None:
        sizes = sorted({len(runner.suite_scenarios(opts, c)) for c in configs})
        per.append(f"{sizes[0]}{'-' + str(sizes[-1]) if len(sizes) > 1 else ''} scenarios")
    text = (f"{len(configs)} configuration{'s' if len(configs) != 1 else ''} x {' + '.join(per)}: "
            f"{total} agent run{'s' if total != 1 else ''}, {min(opts.jobs, len(configs))} at a time")
    if opts.max_cost:
        text += f"; stops starting runs at ${opts.max_cost:g} reported spend"
    return text


def run(opts, configs, oauth: bool) -> int:
    single = len(configs) == 1
    procs.makedirs(opts.out)
    binaries = runner.find_binaries(opts)
    total = plan(opts, configs)
    say(budget_line(opts, configs, total))
    if binaries["claude_code"]:
        cc, backend = binaries["claude_code"], backends.describe(opts)
        say(f"Claude Code {cc.version} ({os.path.relpath(cc.path, ROOT) if cc.path.startswith(ROOT) else cc.path}, "
            f"{cc.source}), permission mode {clients.PERMISSION_MODE}, backend {backend['label']}")
    prov = provenance.collect(opts, configs, binaries)
    for entry, c in zip(prov["configurations"], configs):
        entry["folder"] = os.path.relpath(folder(opts, c, single), opts.out) if not single else "."
    provenance.write(opts.out, prov)
    status = 0
    results = {}
    with Progress(total, opts.jobs) as progress:
        ctx = runner.Run(opts, binaries["tunbridge"], binaries["client"], binaries["native"], oauth,
                         runner.Budget(opts.max_cost), progress, single=single,
                         claude_code=binaries["claude_code"])
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=opts.jobs)
        try:
            futures = {pool.submit(runner.run_config, ctx, c, folder(opts, c, single)): c for c in configs}
            pending = set(futures)
            while pending:
                try:
                    done, pending = concurrent.futures.wait(pending, timeout=0.5)
                except KeyboardInterrupt:
                    if not ctx.stop.is_set():
                        ctx.stop.set()
                        for f in pending:
                            f.cancel()
                        try:    # a closed terminal takes no more output
                            progress.note("==> interrupted; stopping the runs and cleaning up")
                        except OSError:
                            pass
                    continue
                for f in done:
                    c = futures[f]
                    if f.cancelled():
                        continue
                    try:
                        results[c.index] = f.result()
                    except Exception as e:  # the configuration's failure, named; the others go on
                        results[c.index] = {"meta": runner.meta_of(ctx, c), "pings": [], "error": one_line(e)}
                        progress.note(f"==> #{c.index} {c.label()}: failed: {one_line(e)}")
                        status = 1
        finally:
            pool.shutdown(wait=True)
    rows = []
    for c in configs:
        result = results.get(c.index)
        entry = prov["configurations"][c.index - 1]
        if result is None:
            entry["state"] = "not run"
            continue
        rows.append(leaderboard.row_of(result, entry["folder"]))
        if str((result.get("meta") or {}).get("stopped") or "").startswith(runner.FAILED_SET_UP):
            status = 1
        entry["state"] = "failed" if result.get("error") else "stopped" if (result.get("meta") or {}).get("stopped") \
            else "done"
        entry["models"] = result.get("models") or []
        entry["cost_usd"] = result.get("cost_usd")
        if result.get("suite"):
            entry["suite"] = {k: result["suite"][k] for k in ("passed", "run")}
        prov["models"][str(c.index)] = result.get("models") or []
    prov["budget"] = {"max_cost_usd": opts.max_cost, "spent_usd": round(ctx.budget.spent, 6),
                      "stopped": ctx.budget.reason}
    prov["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prov["interrupted"] = ctx.stop.is_set()
    provenance.write(opts.out, prov)
    leaderboard.write(opts.out, rows)
    procs.chown_tree(opts.out)
    finish(opts, configs, single, ctx)
    if ctx.stop.is_set():
        return 130
    return status


def finish(opts, configs, single, ctx) -> None:
    print(flush=True)
    if ctx.budget.reason:
        say(f"stopped early: {ctx.budget.reason}; no agent run was started after that, the leaderboard has what ran")
    out = os.path.relpath(opts.out, ROOT) if opts.out.startswith(ROOT) else opts.out
    summary, scorecard = (os.path.join(opts.out, name) for name in ("summary.md", "scorecard.md"))
    if single and opts.count and os.path.exists(summary):
        with open(summary) as f:
            sys.stdout.write(f.read())
        say(f"results in {out}: summary.md, timeline.svg, records.jsonl, capture.pcap, bridge.log; "
            "leaderboard.md, run.json")
    elif single and not opts.count and os.path.exists(scorecard):
        with open(scorecard) as f:
            sys.stdout.write(f.read())
        say(f"scorecard in {out}: scorecard.md, scorecard.json; one directory per scenario")
    else:
        with open(os.path.join(opts.out, "leaderboard.md")) as f:
            sys.stdout.write(f.read())
        say(f"results in {out}: leaderboard.md, leaderboard.svg, run.json; one folder per configuration")


def one_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0] + (" (more in the bundle)" if "\n" in text else "")
