"""The set-up check before spending tokens: `python3 -m harness dry-run [--with-bridge]`
(`scripts/dry-run.sh`).

Runs the real, pinned Claude Code client once as `claude -p "/ping-respond" --output-format
json --permission-mode default --settings .claude/settings.json` against the scripted model,
with a throwaway config folder (so no user-level rule, trust or login can hide a missing
project rule), against whatever bridge serves the FIFOs (TUNBRIDGE_CMD_FIFO and
TUNBRIDGE_RESP_FIFO, default /tmp/tun_cmd and /tmp/tun_resp). Prints Claude Code's JSON
result and every request the model received, and fails unless the read and the write ran
without a permission denial. `--with-bridge` (root) makes its own namespace and bridge and
pings once, as soon as the client waits in READ, and checks that ping got the reply.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

from harness import ROOT, ArgumentParser, bundle, clients, procs
from harness.agents import ScriptedModel
from harness.bridge import Bridge, put_on_path
from harness.clients import RUN_ENV, RUN_FLAGS
from harness.netns import Namespace

DONE = {"replied": "read and write", "timeout": "read (TIMEOUT: no packet was queued)",
        "not_answered": "read (a packet not to be answered)"}


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def fail(text: str) -> int:
    print(f"dry-run: {text}", file=sys.stderr)
    return 1


def verdict(result_path: str, log: list) -> int:
    """PASS or FAIL lines for the client's result and the model's last answer."""
    try:
        with open(result_path) as f:
            result = json.load(f)
    except (OSError, ValueError):
        print("FAIL: Claude Code printed no JSON result")
        return 1
    problems = []
    if result.get("is_error"):
        problems.append(f"Claude Code reported an error: {result.get('result')!r}")
    if result.get("permission_denials"):
        problems.append("permission denied: "
                        f"{[d['tool_input']['command'][:60] for d in result['permission_denials']]}")
    outcome = [r["answer"] for r in log if r["answer"] not in ("probe", "side", "count_tokens")][-1:] or ["none"]
    if outcome[0] not in DONE:
        problems.append(f"the loop ended with {outcome[0]!r}")
    for p in problems:
        print("FAIL:", p)
    if problems:
        return 1
    print(f"PASS: {DONE[outcome[0]]} ran without approval in default mode; {result.get('num_turns')} turns, "
          f"{result['usage']['input_tokens']} input tokens, ${result.get('total_cost_usd'):.4f}; "
          f"report: {result.get('result')}", flush=True)
    return 0


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python3 -m harness dry-run", description=__doc__.splitlines()[0])
    ap.add_argument("--with-bridge", action="store_true", help="(root) its own namespace, bridge and one ping")
    ap.add_argument("--out", help="keep the model log, JSON result and stderr here")
    ap.add_argument("--client", metavar="PATH", help="this Claude Code instead of the pinned one")
    a = ap.parse_args(argv)
    try:
        found = clients.find("dry-run", a.client)
    except clients.ClientError as e:
        return fail(str(e))
    client = found.path
    say(f"Claude Code: {client} ({found.version})")
    if found.warning():
        print(f"dry-run: {found.warning()}", file=sys.stderr)
    binary = os.environ.get("TUNBRIDGE") or shutil.which("tunbridge") or os.path.join(ROOT, "target/release/tunbridge")
    if not os.access(binary, os.X_OK):
        return fail(f"no tunbridge binary at {binary}; run `cargo build --release` or set TUNBRIDGE")
    say(f"tunbridge: {binary}")
    command = os.path.join(ROOT, ".claude/commands/ping-respond.md")
    if os.path.realpath(command) != os.path.realpath(os.path.join(ROOT, "prompts/ping-respond.md")):
        return fail(".claude/commands/ping-respond.md is not a link to prompts/ping-respond.md")
    say("/ping-respond is prompts/ping-respond.md")
    cmd = os.environ.get("TUNBRIDGE_CMD_FIFO", "/tmp/tun_cmd")
    resp = os.environ.get("TUNBRIDGE_RESP_FIFO", "/tmp/tun_resp")
    if a.with_bridge and os.geteuid() != 0:
        return fail("--with-bridge needs root (TUN device, network namespace)")
    if a.with_bridge and os.path.exists(cmd):
        return fail(f"a bridge already serves {cmd}; stop it or run without --with-bridge")
    with procs.Procs() as group, tempfile.TemporaryDirectory(prefix="tunbridge-dry-run.") as work:
        out = os.path.abspath(a.out or os.path.join(work, "out"))
        os.makedirs(out, exist_ok=True)
        if not a.with_bridge:
            return check(a, group, work, out, client, binary, cmd, resp, None)
        with Namespace(f"tbdry{os.getpid()}") as ns:
            say(f"made network namespace {ns.name}; starting the bridge in it")
            with Bridge(binary, ns, out, work, 20, group, cmd=cmd, resp=resp, extra=["--keep-root"]):
                status = check(a, group, work, out, client, binary, cmd, resp, ns)
            say(f"deleting network namespace {ns.name}")
            return status


def check(a, group, work, out, client, binary, cmd, resp, ns) -> int:
    if not (os.path.exists(cmd) and os.path.exists(resp)):
        return fail(f"no bridge is serving {cmd} and {resp}; start one (scripts/bridge.sh) or use --with-bridge")
    with ScriptedModel(group, out, work) as model:
        say(f"dry-run model at {model.url}")
        say('running: claude -p "/ping-respond" --output-format json --permission-mode default '
            "--settings .claude/settings.json --strict-mcp-config")
        env = {k: v for k, v in os.environ.items()
               if k not in ("ANTHROPIC_MODEL", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "PYTHONPATH")}
        env.update(RUN_ENV, ANTHROPIC_BASE_URL=model.url, ANTHROPIC_API_KEY="dry-run",
                   CLAUDE_CONFIG_DIR=os.path.join(work, "config"), TUNBRIDGE_CMD_FIFO=cmd, TUNBRIDGE_RESP_FIFO=resp)
        env.update(put_on_path(binary, os.path.join(work, "bin")))
        result = os.path.join(out, "claude.json")
        with open(result, "w") as stdout, open(os.path.join(out, "claude.err"), "w") as stderr:
            proc = group.start([client, "-p", "/ping-respond", "--output-format", "json", *RUN_FLAGS,
                                "--settings", os.path.join(ROOT, ".claude/settings.json"),
                                "--strict-mcp-config"],
                               group=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        ping = None
        if ns is not None:
            # The ping goes out once the client waits in READ, so its start-up (seconds on a
            # busy machine) cannot age the packet out of the bridge's queue.
            procs.wait_until_reading(proc, lambda t: print(f"    {t}", flush=True))
            say(f"pinging 192.0.2.2 once from {ns.name} (waits up to 60 s for the reply)")
            ping = group.start(ns.argv("ping", "-c1", "-W", "60", "192.0.2.2"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        status = proc.wait()
    say(f"Claude Code exited with {status}; its JSON result:")
    try:
        with open(result) as f:
            print(json.dumps(json.load(f), indent=4))
    except (OSError, ValueError):
        print(open(result).read())
    with open(os.path.join(out, "claude.err")) as f:
        # The untrusted project's allow rules arrive through --settings; that line is expected.
        sys.stderr.write("".join(line for line in f if "this workspace has not been trusted" not in line))
    log = bundle.load_jsonl(os.path.join(out, "model-requests.jsonl"))
    say("requests the model received:")
    for r in log:
        cmd_text = " ".join(c[:48] + ("..." if len(c) > 48 else "") for c in r.get("tool_use", []))
        print(f"  {r['method']:4} {r['path']:24} {r['bytes']:7} bytes  tools={r['tools']:2} "
              f"messages={r['messages']:2}  -> {r['answer']} {cmd_text}")
    if verdict(result, log):
        return 1
    if status != 0:
        return fail(f"Claude Code exited with {status}")
    if ping is not None:
        say("waiting for ping")
        text, _ = ping.communicate()
        print(text, end="")
        if ping.returncode != 0:
            return fail("ping got no reply")
        say("PASS: ping got the reply")
    return 0
