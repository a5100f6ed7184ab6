#!/usr/bin/env bash
# End-to-end check of the Claude Code harness without a model: starts the scripted model
# server (examples/dry_run_model.py) on a free loopback port and runs the real, pinned
# Claude Code client as `claude -p "/ping-respond" --output-format json` against it, in the
# default permission mode with only the project's .claude/settings.json, against whatever
# bridge is serving the FIFOs. Prints Claude Code's JSON result and the model's request log,
# and fails unless both commands ran without a permission denial.
#
#   scripts/dry-run.sh                 against a running bridge (default FIFOs /tmp/tun_cmd, /tmp/tun_resp)
#   scripts/dry-run.sh --with-bridge   as root: its own namespace, bridge and one ping; checks ping got the reply
#   scripts/dry-run.sh --out DIR       keep the artifacts (model log, JSON result, stderr) in DIR
#
#   TUNBRIDGE=path/to/tunbridge        the binary the prompt's `tunbridge` resolves to
#                                      (default: tunbridge on PATH, else target/release/tunbridge)
#   TUNBRIDGE_CMD_FIFO, TUNBRIDGE_RESP_FIFO   other FIFO paths, honoured by tunbridge itself
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

WITH_BRIDGE="" OUT=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --with-bridge) WITH_BRIDGE=1; shift ;;
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) tb_usage; exit 0 ;;
        *) echo "dry-run.sh: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

tb_traps
tb_on_exit() { ((${#TB_NETNS[@]})) && say "deleting network namespace $NETNS"; }

WORK=$(mktemp -d /tmp/tunbridge-dry-run.XXXXXX)
tb_track_dir "$WORK"
OUT=${OUT:-$WORK/out}
mkdir -p "$OUT"
PING_PID="" NETNS=""

# --- the pieces ------------------------------------------------------------------------
CLAUDE=$ROOT/node_modules/.bin/claude
[[ -x $CLAUDE ]] || CLAUDE=$(command -v claude || true)
[[ -n $CLAUDE ]] || die "Claude Code is not installed; run \`npm ci\` here"
say "Claude Code: $CLAUDE ($("$CLAUDE" --version))"

BIN=${TUNBRIDGE:-$(command -v tunbridge || echo "$ROOT/target/release/tunbridge")}
[[ -x $BIN ]] || die "no tunbridge binary at $BIN; run \`cargo build --release\` or set TUNBRIDGE"
# The prompt runs plain `tunbridge`, so the chosen binary goes first on PATH under that name.
tb_put_on_path "$BIN" "$WORK/bin"
say "tunbridge: $BIN"

# The slash command must be the prompt itself (a link), so the two cannot drift apart.
if [[ $(realpath .claude/commands/ping-respond.md) != $(realpath prompts/ping-respond.md) ]]; then
    die ".claude/commands/ping-respond.md is not a link to prompts/ping-respond.md"
fi
say "/ping-respond is prompts/ping-respond.md"

CMD_FIFO=${TUNBRIDGE_CMD_FIFO:-/tmp/tun_cmd} RESP_FIFO=${TUNBRIDGE_RESP_FIFO:-/tmp/tun_resp}
if [[ -n $WITH_BRIDGE ]]; then
    [[ $(id -u) -eq 0 ]] || die "--with-bridge needs root (TUN device, network namespace)"
    [[ -p $CMD_FIFO ]] && die "a bridge already serves $CMD_FIFO; stop it or run without --with-bridge"
    NETNS=tbdry$$
    say "creating network namespace $NETNS and starting the bridge in it"
    tb_netns_create "$NETNS"
    "$BIN" serve --netns "$NETNS" --keep-root --record "$OUT/records.jsonl" 2> "$OUT/bridge.log" &
    BRIDGE_PID=$!
    tb_track_pid "$BRIDGE_PID"
    tb_wait_for_bridge "$BRIDGE_PID" "$RESP_FIFO" "$OUT/bridge.log" || die "the bridge did not start"
fi
[[ -p $CMD_FIFO && -p $RESP_FIFO ]] \
    || die "no bridge is serving $CMD_FIFO and $RESP_FIFO; start one (scripts/bridge.sh) or use --with-bridge"

# --- the model -------------------------------------------------------------------------
tb_start_model "$OUT/model-requests.jsonl" "$WORK/model.out"
URL=$MODEL_URL
say "dry-run model at $URL"

# --- the run ---------------------------------------------------------------------------
# A throwaway config dir: no user-level allow rule, trust or login can help the run along,
# so only the project grants the two commands: --settings .claude/settings.json and the
# slash command's allowed-tools (either alone is enough). Default permission mode.
say "running: claude -p \"/ping-respond\" --output-format json --permission-mode default --settings .claude/settings.json --strict-mcp-config"
env -u ANTHROPIC_MODEL -u ANTHROPIC_AUTH_TOKEN -u CLAUDE_CODE_OAUTH_TOKEN \
    ANTHROPIC_BASE_URL="$URL" ANTHROPIC_API_KEY=dry-run \
    CLAUDE_CONFIG_DIR="$WORK/config" DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    "$CLAUDE" -p "/ping-respond" --output-format json --permission-mode default \
    --settings "$ROOT/.claude/settings.json" --strict-mcp-config > "$OUT/claude.json" 2> "$OUT/claude.err" &
CLAUDE_PID=$!
if [[ -n $WITH_BRIDGE ]]; then
    # The ping goes out once the client waits in READ, so its start-up (seconds on a busy
    # machine) cannot age the packet out of the bridge's queue.
    tb_wait_until_reading "$CLAUDE_PID" || true
    say "pinging 192.0.2.2 once from $NETNS (waits up to 60 s for the reply)"
    ip netns exec "$NETNS" ping -c1 -W 60 192.0.2.2 > "$OUT/ping.txt" 2>&1 &
    PING_PID=$!
    tb_track_pid "$PING_PID"
fi
status=0
wait "$CLAUDE_PID" || status=$?
say "Claude Code exited with $status; its JSON result:"
python3 -m json.tool "$OUT/claude.json" 2>/dev/null || cat "$OUT/claude.json"
# Claude Code notes on stderr that it ignores the untrusted project's allow rules; the
# same rules arrive through --settings, so that line is expected.
grep -v "this workspace has not been trusted" "$OUT/claude.err" >&2 || true
touch "$OUT/model-requests.jsonl"

say "requests the model received:"
python3 - "$OUT/model-requests.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    cmd = " ".join(c[:48] + ("..." if len(c) > 48 else "") for c in r.get("tool_use", []))
    print(f"  {r['method']:4} {r['path']:24} {r['bytes']:7} bytes  tools={r['tools']:2} "
          f"messages={r['messages']:2}  -> {r['answer']} {cmd}")
EOF

# --- the verdict -----------------------------------------------------------------------
python3 - "$OUT/claude.json" "$OUT/model-requests.jsonl" <<'EOF' || exit 1
import json, sys
try:
    result = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit("FAIL: Claude Code printed no JSON result")
answers = [json.loads(l)["answer"] for l in open(sys.argv[2])]
problems = []
if result.get("is_error"):
    problems.append(f"Claude Code reported an error: {result.get('result')!r}")
if result.get("permission_denials"):
    problems.append(f"permission denied: {[d['tool_input']['command'][:60] for d in result['permission_denials']]}")
# The model's last answer names the outcome: a reply written, TIMEOUT, or a packet it must
# not answer are all fine; a read or write that failed or was refused is not.
outcome = [a for a in answers if a not in ("probe", "side", "count_tokens")][-1:] or ["none"]
done = {"replied": "read and write", "timeout": "read (TIMEOUT: no packet was queued)",
        "not_answered": "read (a packet not to be answered)"}
if outcome[0] not in done:
    problems.append(f"the loop ended with {outcome[0]!r}")
for p in problems:
    print("FAIL:", p)
if problems:
    sys.exit(1)
print(f"PASS: {done[outcome[0]]} ran without approval in default mode; "
      f"{result.get('num_turns')} turns, {result['usage']['input_tokens']} input tokens, "
      f"${result.get('total_cost_usd'):.4f}; report: {result.get('result')}")
EOF
[[ $status -eq 0 ]] || die "Claude Code exited with $status"

if [[ -n $PING_PID ]]; then
    say "waiting for ping"
    ping_status=0
    wait "$PING_PID" || ping_status=$?
    tb_stop_pid "$PING_PID"
    cat "$OUT/ping.txt"
    [[ $ping_status -eq 0 ]] || die "ping got no reply"
    say "PASS: ping got the reply"
fi
