#!/usr/bin/env bash
# The experiment in one command: starts the bridge in a private network namespace
# with a record, runs the agent once per ping, sends the pings one at a time, and
# prints a results table. Cleans up on exit or Ctrl-C.
#
#   scripts/experiment.sh [--agent claude|native|dry-run] [--count N] [--model NAME]
#                         [--prompt FILE] [--lean] [--ping-opts "OPTS"]... [--out DIR]
#                         [--ping-wait S] [--traffic KIND]...
#   scripts/experiment.sh --suite [NAMES] [same flags]   the scenario suite (scripts/lib/suite.py)
#   scripts/experiment.sh --compare DIR...               scorecards side by side
#
# --agent claude   the real Claude Code client, `claude -p "/ping-respond"`, with your
#                  ANTHROPIC_* environment (the default)
# --agent dry-run  the same client against a scripted model server on 127.0.0.1:
#                  checks the whole set-up without an API key
# --agent native   the non-LLM baseline (examples/native_agent.rs)
# --prompt FILE    the prompt (default prompts/ping-respond.md; also ping-respond-fast.md)
# --lean           Claude Code with only what the prompt needs: --bare, the Bash tool
#                  alone, prompts/lean-system.md as the system prompt, no MCP, no skills,
#                  no background tasks (needs ANTHROPIC_API_KEY with --agent claude)
# --ping-opts OPTS extra ping options, e.g. "-s 1400" or "-s 2 -e 4660 -p edca -t 5";
#                  repeat the flag to give ping i the (i-1 mod n)-th set
# --traffic KIND   what each round sends (default ping): ping, ping6, udp-echo, udp-closed,
#                  tcp-syn, or udp-echo6, udp-closed6, tcp-syn6 over IPv6 (scripts/lib/traffic.py);
#                  repeat to cycle; answer them with --prompt prompts/ip-stack.md
# --suite [NAMES]  one agent run per scenario instead of pings, scored into
#                  scorecard.json and scorecard.md (default: all the prompt handles;
#                  the prompt defaults to prompts/ip-stack.md when it exists)
# --flaw NAME      with --agent dry-run: the scripted model is wrong on purpose
#                  (checksum, data, answer-all; see examples/dry_run_flaws.py)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

AGENT=claude COUNT=3 MODEL="" PROMPT="prompts/ping-respond.md" OUT="" PING_WAIT=180
usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
LEAN=0 PING_OPTS=() TRAFFIC=() SUITE=0 SUITE_NAMES=() FLAW="" SCENARIO="" PROMPT_GIVEN=0
while (($#)); do
    case $1 in
        --agent) AGENT=${2:?--agent needs a value}; shift 2 ;;
        --count) COUNT=${2:?--count needs a value}; shift 2 ;;
        --model) MODEL=${2:?--model needs a value}; shift 2 ;;
        --prompt) PROMPT=${2:?--prompt needs a value}; PROMPT_GIVEN=1; shift 2 ;;
        --lean) LEAN=1; shift ;;
        --ping-opts) PING_OPTS+=("${2?--ping-opts needs a value}"); shift 2 ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --ping-wait) PING_WAIT=${2:?--ping-wait needs a value}; shift 2 ;;
        --traffic) TRAFFIC+=("${2:?--traffic needs a value}"); shift 2 ;;
        --suite) SUITE=1; shift; while (($#)) && [[ $1 != -* ]]; do SUITE_NAMES+=("$1"); shift; done ;;
        --compare) shift; exec python3 scripts/lib/suite.py compare "$@" ;;
        --flaw) FLAW=${2:?--flaw needs a value}; shift 2 ;;
        --scenario) SCENARIO=${2:?--scenario needs a value}; shift 2 ;;   # one scenario (used by --suite)
        -h|--help) usage; exit 0 ;;
        *) echo "experiment.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    esac
done
case $AGENT in claude|native|dry-run) ;; *) echo "experiment.sh: --agent must be claude, native or dry-run" >&2; exit 2 ;; esac
((SUITE && !PROMPT_GIVEN)) && [[ -f prompts/ip-stack.md ]] && PROMPT=prompts/ip-stack.md
[[ -z $FLAW || $AGENT == dry-run ]] || { echo "experiment.sh: --flaw needs --agent dry-run" >&2; exit 2; }
((SUITE)) && { python3 scripts/lib/suite.py names --prompt "$PROMPT" ${SUITE_NAMES[@]+"${SUITE_NAMES[@]}"} >/dev/null || exit 2; }
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || { echo "experiment.sh: --count must be a positive number" >&2; exit 2; }
[[ -f $PROMPT ]] || { echo "experiment.sh: prompt $PROMPT not found" >&2; exit 2; }
for opts in ${PING_OPTS[@]+"${PING_OPTS[@]}"}; do
    [[ $opts =~ ^[-\ a-zA-Z0-9.]*$ ]] || { echo "experiment.sh: --ping-opts takes plain ping flags, not $opts" >&2; exit 2; }
done
for kind in ${TRAFFIC[@]+"${TRAFFIC[@]}"}; do
    case $kind in ping|ping6|udp-echo|udp-echo6|udp-closed|udp-closed6|tcp-syn|tcp-syn6) ;;
        *) echo "experiment.sh: --traffic takes ping, ping6, udp-echo[6], udp-closed[6] or tcp-syn[6], not $kind" >&2; exit 2 ;;
    esac
done
HARNESS=default; ((LEAN)) && HARNESS=lean
OUT=${OUT:-out/$(date +%Y%m%d-%H%M%S)-$AGENT}

say() { printf '==> %s\n' "$*"; }

# --- before root: check the tools, find the client, check credentials, build -----
missing=()
command -v ip >/dev/null || missing+=("ip (apt-get install iproute2)")
command -v ping >/dev/null || missing+=("ping (apt-get install iputils-ping)")
command -v python3 >/dev/null || missing+=("python3 (apt-get install python3)")
if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    missing+=("sudo, or run it as root (the TUN device needs root)")
fi
if [[ -z ${SUDO_USER:-} || ! -x target/release/tunbridge ]] && ! command -v cargo >/dev/null; then
    missing+=("cargo (https://rustup.rs)")
fi
if ((${#missing[@]})); then
    printf -v list '%s, ' "${missing[@]}"
    echo "experiment.sh: needs ${list%, }" >&2
    exit 2
fi
CLAUDE=""
if [[ $AGENT != native ]]; then
    # The dry run speaks the API of the pinned client, so it installs and uses that one
    # (into ./node_modules only); the real run takes the user's own `claude` first.
    if [[ $AGENT == dry-run && ! -x node_modules/.bin/claude ]] && command -v npm >/dev/null; then
        say "installing the pinned Claude Code client into ./node_modules (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
    fi
    if [[ $AGENT == dry-run ]]; then
        [[ -x node_modules/.bin/claude ]] && CLAUDE=$ROOT/node_modules/.bin/claude
    else
        CLAUDE=$(command -v claude || true)
        [[ -z $CLAUDE && -x node_modules/.bin/claude ]] && CLAUDE=$ROOT/node_modules/.bin/claude
    fi
    if [[ -z $CLAUDE ]]; then
        command -v npm >/dev/null || echo "experiment.sh: Claude Code needs Node.js and npm (e.g. apt-get install nodejs npm)." >&2
        echo "experiment.sh: Claude Code is not installed." >&2
        echo "  install the pinned client here:  npm ci      (or: npm install -g @anthropic-ai/claude-code)" >&2
        exit 2
    fi
fi
if [[ $AGENT == claude && -z ${ANTHROPIC_API_KEY:-}${ANTHROPIC_AUTH_TOKEN:-}${CLAUDE_CODE_OAUTH_TOKEN:-} \
      && ! -f ${HOME}/.claude/.credentials.json ]]; then
    echo "experiment.sh: Claude Code has no credentials (set ANTHROPIC_API_KEY, or run \`claude\` once to log in)." >&2
    echo "  to check the set-up without an API key:  scripts/experiment.sh --agent dry-run --count $COUNT" >&2
    exit 2
fi
if [[ $AGENT == claude && $LEAN == 1 && -z ${ANTHROPIC_API_KEY:-} ]]; then
    echo "experiment.sh: --lean runs claude --bare, which takes only ANTHROPIC_API_KEY (no login, no token)." >&2
    exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
    say "building tunbridge (cargo build --release)"
    cargo build --release -q -p tunbridge --bin tunbridge --example native_agent
    say "the bridge needs root for the TUN device; re-running with sudo"
    again=(--agent "$AGENT" --count "$COUNT" --prompt "$PROMPT" --out "$OUT" --ping-wait "$PING_WAIT")
    [[ -n $MODEL ]] && again+=(--model "$MODEL")
    ((LEAN)) && again+=(--lean)
    for opts in ${PING_OPTS[@]+"${PING_OPTS[@]}"}; do again+=(--ping-opts "$opts"); done
    for kind in ${TRAFFIC[@]+"${TRAFFIC[@]}"}; do again+=(--traffic "$kind"); done
    [[ -n $FLAW ]] && again+=(--flaw "$FLAW")
    ((SUITE)) && again+=(--suite ${SUITE_NAMES[@]+"${SUITE_NAMES[@]}"})
    exec sudo --preserve-env=ANTHROPIC_API_KEY,ANTHROPIC_AUTH_TOKEN,ANTHROPIC_BASE_URL,ANTHROPIC_MODEL,CLAUDE_CODE_OAUTH_TOKEN,HOME \
        "$0" "${again[@]}"
fi
if [[ -z ${SUDO_USER:-} ]] && command -v cargo >/dev/null \
   || [[ ! -x target/release/tunbridge || ! -x target/release/examples/native_agent ]]; then
    say "building tunbridge (cargo build --release)"
    cargo build --release -q -p tunbridge --bin tunbridge --example native_agent
fi

# --- set-up ----------------------------------------------------------------------
RUN_USER=${SUDO_USER:-root}
as_user() { if [[ $RUN_USER != root ]]; then sudo -u "$RUN_USER" --preserve-env "$@"; else "$@"; fi; }
if ((SUITE)); then   # one run of this script per scenario, then the scorecard
    flags=(--agent "$AGENT" --ping-wait "$PING_WAIT" ${MODEL:+--model "$MODEL"} ${FLAW:+--flaw "$FLAW"})
    ((LEAN)) && flags+=(--lean)
    status=0
    python3 scripts/lib/suite.py run --out "$OUT" --agent "$AGENT" --prompt "$PROMPT" --harness "$HARNESS" \
        ${MODEL:+--model "$MODEL"} ${FLAW:+--flaw "$FLAW"} ${SUITE_NAMES[@]+"${SUITE_NAMES[@]}"} -- "${flags[@]}" || status=$?
    [[ $RUN_USER != root ]] && chown -R "$RUN_USER" "$OUT"
    say "scorecard in $OUT: scorecard.md, scorecard.json; one directory per scenario"
    exit "$status"
fi
NETNS=tbx-$$
WORK=$(mktemp -d /tmp/tunbridge-exp.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT"
[[ $RUN_USER != root ]] && chown "$RUN_USER" "$OUT" "$WORK"
export TUNBRIDGE_CMD_FIFO=$WORK/tun_cmd TUNBRIDGE_RESP_FIFO=$WORK/tun_resp
export PATH=$ROOT/target/release:$PATH
BRIDGE_PID="" MODEL_PID="" PING_PID=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    [[ -n $PING_PID ]] && kill "$PING_PID" 2>/dev/null || true
    [[ -n $MODEL_PID ]] && kill "$MODEL_PID" 2>/dev/null || true
    if [[ -n $BRIDGE_PID ]]; then kill -TERM "$BRIDGE_PID" 2>/dev/null || true; wait "$BRIDGE_PID" 2>/dev/null || true; fi
    ip netns del "$NETNS" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'echo; say "interrupted"; exit 130' INT TERM

say "network namespace $NETNS (the host's networking is not touched)"
ip netns add "$NETNS"
ip -n "$NETNS" link set lo up
say "starting the bridge; record: $OUT/records.jsonl"
tunbridge serve --netns "$NETNS" --record "$OUT/records.jsonl" --pcap "$OUT/capture.pcap" \
    2> "$OUT/bridge.log" &
BRIDGE_PID=$!
for _ in $(seq 100); do [[ -p $TUNBRIDGE_RESP_FIFO ]] && break; sleep 0.1; done
[[ -p $TUNBRIDGE_RESP_FIFO ]] || { echo "experiment.sh: the bridge did not start:" >&2; cat "$OUT/bridge.log" >&2; exit 1; }

if [[ $AGENT == dry-run ]]; then
    python3 examples/dry_run_model.py --port 0 --log "$OUT/model-requests.jsonl" ${FLAW:+--flaw "$FLAW"} \
        > "$WORK/model.out" 2>&1 &
    MODEL_PID=$!
    for _ in $(seq 100); do grep -q "listening on" "$WORK/model.out" 2>/dev/null && break; sleep 0.1; done
    URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/model.out" | head -1)
    [[ -n $URL ]] || { echo "experiment.sh: the dry-run model did not start:" >&2; cat "$WORK/model.out" >&2; exit 1; }
    say "dry-run model at $URL"
    export ANTHROPIC_BASE_URL=$URL ANTHROPIC_API_KEY=dry-run
    export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1
fi
# Lean: only what the prompt needs. --bare drops hooks, CLAUDE.md, memory, plugins and
# custom commands and gives Bash a one-line description; --tools Bash offers nothing else;
# no MCP servers, no skills, no background tasks, no session files. The permission mode
# stays the default: the two commands are allowed by the same --settings rules.
CLAUDE_FLAGS=(--output-format json --settings "$ROOT/.claude/settings.json")
[[ -n $MODEL ]] && CLAUDE_FLAGS+=(--model "$MODEL")
if ((LEAN)); then
    CLAUDE_FLAGS+=(--bare --tools Bash --system-prompt-file "$ROOT/prompts/lean-system.md" --strict-mcp-config
                   --disable-slash-commands --no-session-persistence --permission-mode default)
    export CLAUDE_CODE_DISABLE_BACKGROUND_TASKS=1 CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS=1
    say "lean harness: claude ${CLAUDE_FLAGS[*]}"
fi
run_agent() {   # $1: ping number
    case $AGENT in
        native) target/release/examples/native_agent --count 1 > "$OUT/agent-$1.txt" 2>&1 ;;
        *) as_user "$CLAUDE" -p "$(prompt_text)" "${CLAUDE_FLAGS[@]}" > "$OUT/claude-$1.json" 2> "$OUT/claude-$1.err" ;;
    esac
}
prompt_text() {   # a prompt with a slash command runs through it; otherwise (and in lean mode) as text
    local name; name=$(basename "$PROMPT" .md)
    if ((!LEAN)) && [[ $(realpath "$PROMPT") == $(realpath ".claude/commands/$name.md" 2>/dev/null) ]]; then
        echo "/$name"
    else
        awk 'NR == 1 && $0 != "---" {body = 1} body; !body && /^---$/ && ++n == 2 {body = 1}' "$PROMPT"
    fi
}

request() {   # the round's traffic: --scenario's request (scripts/lib/suite.py), or the
    # round's --traffic kind (default ping, with $opts; others through scripts/lib/traffic.py)
    if [[ -n $SCENARIO ]]; then
        exec ip netns exec "$NETNS" python3 scripts/lib/suite.py produce "$SCENARIO" --wait "$PING_WAIT"
    fi
    local kind=ping
    ((${#TRAFFIC[@]})) && kind=${TRAFFIC[$(( ($1 - 1) % ${#TRAFFIC[@]} ))]}
    if [[ $kind != ping ]]; then
        exec ip netns exec "$NETNS" python3 scripts/lib/traffic.py "$kind" --wait "$PING_WAIT" --ping-opts "$opts"
    fi
    # shellcheck disable=SC2086 # $opts is a list of plain ping flags, checked above
    exec ip netns exec "$NETNS" ping -n -c 1 -W "$PING_WAIT" $opts 192.0.2.2
}

# --- the pings, one at a time ----------------------------------------------------
say "agent: $AGENT${MODEL:+ ($MODEL)}, prompt: $PROMPT, harness: $HARNESS, pings: $COUNT${TRAFFIC[*]:+, traffic: ${TRAFFIC[*]}}"
for i in $(seq "$COUNT"); do
    opts=""
    ((${#PING_OPTS[@]})) && opts=${PING_OPTS[$(( (i - 1) % ${#PING_OPTS[@]} ))]}
    request "$i" > "$OUT/ping-$i.txt" 2>&1 &
    PING_PID=$!
    start=$(date +%s)
    t0=$(date +%s.%N)
    run_agent "$i" &
    agent=$!
    while kill -0 "$agent" 2>/dev/null; do
        waited=$(( $(date +%s) - start ))
        if [[ -t 1 ]]; then
            printf '\r    ping %d/%d: waiting for the agent (%d s)' "$i" "$COUNT" "$waited"
        elif (( waited > 0 && waited % 10 == 0 )); then
            printf '    ping %d/%d: waiting for the agent (%d s)\n' "$i" "$COUNT" "$waited"
        fi
        sleep 1
    done
    agent_status=0; wait "$agent" || agent_status=$?
    printf '%d\t%s\t%s\t%d\t%s\n' "$i" "$t0" "$(date +%s.%N)" "$agent_status" "$opts" >> "$OUT/timeline.tsv"
    if [[ -n $SCENARIO ]]; then   # the agent is done: an answer it wrote is there within ms
        for _ in $(seq 30); do kill -0 "$PING_PID" 2>/dev/null || break; sleep 0.1; done
        kill "$PING_PID" 2>/dev/null || true
    fi
    wait "$PING_PID" 2>/dev/null || true
    PING_PID=""
    rtt=$(grep -o 'time=[0-9.]* ms' "$OUT/ping-$i.txt" | head -1 || true)
    [[ -t 1 ]] && printf '\r'
    printf '    ping %d/%d: %s (agent exit %d)            \n' "$i" "$COUNT" "${rtt:-no reply}" "$agent_status"
done

kill -TERM "$BRIDGE_PID" 2>/dev/null || true
wait "$BRIDGE_PID" 2>/dev/null || true
BRIDGE_PID=""
python3 scripts/lib/experiment_table.py --out "$OUT" --agent "$AGENT" --model "${MODEL:-default}" \
    --prompt "$PROMPT" --harness "$HARNESS" --count "$COUNT" > "$OUT/summary.md"
[[ $RUN_USER != root ]] && chown -R "$RUN_USER" "$OUT"
echo
cat "$OUT/summary.md"
say "results in $OUT: records.jsonl, summary.md, capture.pcap, bridge.log"
