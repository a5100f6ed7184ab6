"""The command line: `python3 -m harness COMMAND [flags]`, a thin entry into the package.

    run      one configuration or a matrix of them (the default command)
    suite    the scenario suite (run --suite)
    compare  earlier results side by side: one leaderboard, or scorecards
    bench    the bridge against the floors (harness/bench.py)
    overhead what the harness costs per packet: two-call, one-call and MCP sessions (harness/overhead.py)
    flood    a channel client that never reads, against the bridge (harness/flood.py)
    dry-run  one exchange of the real client with the scripted model, every request shown
    names    the scenarios the suite runs

Flags are checked here and in harness/config.py; a bad value is one line and exit 2.
docs/RUNNER.md has the whole account.
"""

import argparse
import os
import signal
import sys
import time

from harness import (ROOT, ArgumentParser, backends, bench, clients, dryrun, flood, leaderboard, matrix, overhead,
                     procs, runner, scenarios)
from harness.config import ConfigError, Options, matrix as expand

COMMANDS = ("run", "suite", "compare", "bench", "overhead", "flood", "dry-run", "names")


def fail(text: str, status: int = 2) -> int:
    print(f"harness: {text}", file=sys.stderr)
    return status


def run_parser(prog: str) -> argparse.ArgumentParser:
    ap = ArgumentParser(prog=prog, description="Run the experiment: the bridge, an agent and pings, "
                                 "for one configuration or every combination of the repeatable flags.")
    m = ap.add_argument_group("the matrix (each repeatable; every combination is a configuration)")
    m.add_argument("--model", action="append", default=[], help="model name for Claude Code (default: its own)")
    m.add_argument("--prompt", action="append", default=[], help="prompt file (default: the harness's own: "
                   "prompts/ping-respond.md, ping-serve-next.md with --continuous, ip-stack.md with --suite; "
                   "for the MCP harnesses ping-respond-mcp.md, ping-serve-mcp.md); a prompt runs with the "
                   "harnesses of its kind (Bash or MCP)")
    m.add_argument("--harness", action="append", default=[], help="default, lean, mcp or lean-mcp "
                   "(docs/RUNNER.md)")
    m.add_argument("--lean", action="append_const", dest="harness", const="lean", help="same as --harness lean")
    m.add_argument("--thinking", action="append", default=[], help="off, on or a token budget (default: the client's)")
    m.add_argument("--traffic", action="append", default=[], metavar="KIND[,KIND...]",
                   help="what each round sends: ping, ping6, udp-echo[6], udp-closed[6], tcp-syn[6]; "
                   "a comma list is cycled through within one configuration")
    m.add_argument("--model-behaviour", action="append", default=[], metavar="NAME[:KEY=VALUE;...][,NAME...]",
                   help="dry run: the scripted model behaves like a real one: latency, thinking, caching, "
                   "errors, python-first, raw-fifo, malformed-hex, write-twice, no-write (docs/RUNNER.md)")
    r = ap.add_argument_group("every configuration")
    r.add_argument("--agent", default="claude", help="claude (default), dry-run (the scripted model) or native")
    r.add_argument("--backend", metavar="NAME[=URL]|URL", help="where Claude Code sends its requests: "
                   "anthropic, ollama, llama-server, vllm or litellm (each at its usual local address, "
                   "or NAME=URL), or the URL of any Anthropic-compatible server; sets what the client "
                   "needs and checks the model's context first (docs/BACKENDS.md)")
    r.add_argument("--client", metavar="PATH", help="run this Claude Code (`claude`) instead of the one on PATH "
                   "or the pinned one in ./node_modules; its version is recorded, and one outside the "
                   "supported range gets a warning")
    r.add_argument("--count", "--repeat", type=int, dest="count", help="pings per configuration (default 3; "
                   "none with --suite unless given)")
    r.add_argument("--ping-opts", action="append", default=[], help="extra ping options; repeat to cycle")
    r.add_argument("--ping-wait", type=int, default=180, help="seconds each ping waits for its reply")
    r.add_argument("--continuous", action="store_true", help="one Claude Code session serves all pings")
    r.add_argument("--interval", type=float, default=1.0, help="seconds between pings (--continuous)")
    r.add_argument("--session-packets", type=int, default=20, help="packets per session (--continuous)")
    r.add_argument("--suite", nargs="*", metavar="NAME", help="add the scenario suite (all the prompt handles, "
                   "or the names given)")
    r.add_argument("--flaw", help="dry run: the scripted model is wrong on purpose (checksum, data, answer-all)")
    r.add_argument("--model-delay", type=float, help="dry run: seconds the scripted model takes per turn")
    r.add_argument("--run-timeout", type=float, default=600.0, help="seconds an agent run may take before "
                   "it is stopped (default 600; a continuous session also gets its pings' time)")
    r.add_argument("--jobs", type=int, default=1, help="configurations at once (default 1)")
    r.add_argument("--max-cost", type=float, help="USD: start no new agent run once the reported spend reaches it")
    r.add_argument("--out", help="where the results go (default out/<date>-<time>-<agent>)")
    return ap


def parse_run(argv, prog="python3 -m harness run"):
    """(Options, configs) from run flags; ConfigError for a bad value."""
    a = run_parser(prog).parse_args(argv)
    count = a.count if a.count is not None else (None if a.suite is not None else 3)
    out = a.out or os.path.join("out", time.strftime("%Y%m%d-%H%M%S") + f"-{a.agent}")
    opts = Options(agent=a.agent, count=count, mode="continuous" if a.continuous else "oneshot",
                   interval=a.interval, session_packets=a.session_packets, ping_opts=a.ping_opts,
                   ping_wait=a.ping_wait, suite=a.suite, flaw=a.flaw, model_delay=a.model_delay,
                   run_timeout=a.run_timeout,
                   out=os.path.abspath(out), jobs=a.jobs, max_cost=a.max_cost, argv=list(argv))
    opts.client = os.path.join(ROOT, os.path.expanduser(a.client)) if a.client else None
    opts.backend = a.backend
    try:
        if opts.suite is not None:
            for p in a.prompt or [None]:
                scenarios.select(opts.suite, p or "prompts/ip-stack.md")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    configs = expand(opts, a.model, a.prompt, a.harness or [], a.thinking, a.traffic, a.model_behaviour)
    return opts, configs


def credentials_missing() -> bool:
    env = os.environ
    if env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_AUTH_TOKEN") or env.get("CLAUDE_CODE_OAUTH_TOKEN"):
        return False
    return not os.path.exists(os.path.join(os.path.expanduser("~"), ".claude", ".credentials.json"))


def cmd_run(argv) -> int:
    try:
        opts, configs = parse_run(argv)
    except ConfigError as e:
        return fail(str(e))
    backend = backends.parse(opts.backend) if opts.backend else None
    local = backend is not None and backend.preset.local
    if opts.agent == "claude" and not local and credentials_missing():
        print("harness: Claude Code has no credentials (set ANTHROPIC_API_KEY, or run `claude` once to log in).\n"
              f"  to check the set-up without an API key:  scripts/experiment.sh --agent dry-run --count {opts.count or 3}",
              file=sys.stderr)
        return 2
    if opts.agent != "native":
        try:
            client = clients.find(opts.agent, opts.client)
        except clients.ClientError as e:
            return fail(str(e))
        if client.warning():
            print(f"harness: {client.warning()}", file=sys.stderr)
    if os.geteuid() != 0:
        return fail("needs root for the TUN device and the network namespace: run scripts/experiment.sh, "
                    "which re-runs itself with sudo")
    problem = opts.agent != "native" and runner.unprivileged_problem(
        opts, configs, [ROOT, client.path, runner.tunbridge_binary()])
    if problem:
        return fail(problem)
    try:
        if opts.agent == "claude" and not backend and os.environ.get("ANTHROPIC_BASE_URL"):
            backends.check_url(os.environ["ANTHROPIC_BASE_URL"], "ANTHROPIC_BASE_URL")
        if backend:
            opts.backend_checks = backends.preflight(backend, configs, opts, client.version)
    except backends.BackendError as e:
        return fail(str(e))
    for line in opts.backend_checks:
        print(f"harness: backend {backend.label()}: {line}", file=sys.stderr)
    if local and opts.max_cost:
        print(f"harness: note: --max-cost adds up the cost Claude Code reports, which for a model it does not "
              f"know is its own guess, not what {backend.name} costs you", file=sys.stderr)
    oauth = (opts.agent == "claude" and not local and not os.environ.get("ANTHROPIC_API_KEY")) or \
            (opts.agent == "dry-run" and os.environ.get("TUNBRIDGE_DRY_RUN_AUTH") == "oauth")
    try:    # last: a run refused above leaves no folder behind
        procs.makedirs(opts.out)
    except OSError as e:
        return fail(f"cannot make the results folder --out {opts.out}: {e.strerror}")
    os.chdir(ROOT)
    return matrix.run(opts, configs, oauth)


def cmd_suite(argv) -> int:
    names = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    return cmd_run(["--suite", *names, *argv])


def cmd_compare(argv) -> int:
    ap = ArgumentParser(prog="python3 -m harness compare",
                                 description="Earlier results side by side: one leaderboard of every bundle "
                                 "under the folders given (runs of this package or of the runner before it); "
                                 "scorecards side by side when the folders hold only suite results.")
    ap.add_argument("paths", nargs="+", help="run folders, bundles, or scorecard.json files")
    ap.add_argument("--out", help="also write leaderboard.md and leaderboard.svg here")
    a = ap.parse_args(argv)
    cards, rows = [], []
    for path in a.paths:
        found = leaderboard.find_results(path) if os.path.isdir(path) else []
        if found:
            rows += [leaderboard.row_of(result, shown_path(where)) for where, result in found]
            continue
        try:
            cards.append((path, scenarios.load_scorecard(path)))
        except (OSError, ValueError) as e:
            return fail(f"no results and no scorecard at {path}: {e}")
    if not rows:
        sys.stdout.write(scenarios.compare(cards))
        return 0
    for path, card in cards:
        rows.append(leaderboard.row_of(scorecard_result(card), path))
    picture = os.path.join(a.out, "leaderboard.svg") if a.out else None
    sys.stdout.write(leaderboard.markdown(rows, "Leaderboard: " + ", ".join(a.paths), picture))
    if a.out:
        procs.makedirs(a.out)
        leaderboard.write(a.out, rows)
    return 0


def shown_path(path: str) -> str:
    """`path` from the current folder when it is below it, else in full."""
    relative = os.path.relpath(path)
    return os.path.abspath(path) if relative.startswith("..") else relative


def scorecard_result(card: list) -> dict:
    """A leaderboard entry for a suite run that has no pings: its score."""
    first = card[0] if card else {}
    t = scenarios.totals(card)
    return {"meta": {"agent": first.get("agent"), "model": first.get("model"), "prompt": first.get("prompt"),
                     "harness": first.get("harness")},
            "pings": [], "suite": {"passed": t["all"][0], "run": t["all"][1]}}


def cmd_names(argv) -> int:
    ap = ArgumentParser(prog="python3 -m harness names", description="The scenarios the suite runs.")
    ap.add_argument("--prompt", default="prompts/ip-stack.md")
    ap.add_argument("--long", action="store_true", help="with what each expects and does")
    ap.add_argument("--caught-by", help="only those this dry-run flaw must fail")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args(argv)
    try:
        chosen = scenarios.select(a.names, a.prompt)
    except ValueError as e:
        return fail(str(e))
    for s in chosen:
        if a.caught_by is None:
            print(f"{s.name}\t{s.expect}\t{s.what}" if a.long else s.name)
        elif a.caught_by in s.caught_by:
            print(s.name)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "run"
    if command == "run" and "--compare" in argv:   # the runner's old spelling
        argv.remove("--compare")
        command = "compare"
    # Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all end a command the same way: what it
    # started is stopped and removed by its context managers (the bridge and the scripted
    # model run in sessions of their own and hear of it only from here).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    try:
        return {"run": cmd_run, "suite": cmd_suite, "compare": cmd_compare, "bench": bench.main,
                "overhead": overhead.main, "flood": flood.main, "dry-run": dryrun.main,
                "names": cmd_names}[command](argv)
    except KeyboardInterrupt:
        return 130


def interrupt(signum, frame):
    raise KeyboardInterrupt
