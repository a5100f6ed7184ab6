#!/usr/bin/env bash
# The experiment in one command: starts the bridge in a private network namespace
# with a record, runs the agent, sends the pings, and prints a results table and a
# timeline picture. Installs what it needs first. Cleans up on exit or Ctrl-C.
#
#   scripts/experiment.sh [--agent claude|native|dry-run] [--count N] [--model NAME]
#                         [--prompt FILE] [--lean] [--thinking off|on|TOKENS]
#                         [--ping-opts "OPTS"]... [--ping-wait S] [--out DIR] [--traffic KIND]...
#                         [--continuous [--interval S] [--session-packets N]]
#   scripts/experiment.sh --suite [NAMES] [same flags]   the scenario suite (scripts/lib/suite.py)
#   scripts/experiment.sh --compare DIR...               scorecards side by side
#
# --agent claude   the real Claude Code client with your ANTHROPIC_* environment or login
#                  (the default)
# --agent dry-run  the same client against a scripted model server on 127.0.0.1:
#                  checks the whole set-up without an API key
# --agent native   the non-LLM baseline (examples/native_agent.rs)
# --count N        pings (default 3)
# --prompt FILE    one-shot prompt (default prompts/ping-respond.md; also ping-respond-fast.md)
# --lean           Claude Code with only what the prompt needs: the Bash tool alone,
#                  prompts/lean-system.md as the system prompt, no MCP, no skills, no
#                  background tasks, no CLAUDE.md, memory or hooks; with an API key this is
#                  --bare, with a login (OAuth) the same without it (see docs/HARNESS.md)
# --thinking off|on|TOKENS   extended thinking: off (MAX_THINKING_TOKENS=0), on (31999),
#                  or a token budget; default: the client's own choice
# --ping-opts OPTS extra ping options, e.g. "-s 1400" or "-s 2 -e 4660 -p edca -t 5";
#                  repeat the flag to give ping i the (i-1 mod n)-th set (one-shot only)
# --ping-wait S    seconds a ping waits for its reply (default 180)
# --traffic KIND   what each round sends (default ping): ping, ping6, udp-echo, udp-closed,
#                  tcp-syn, or udp-echo6, udp-closed6, tcp-syn6 over IPv6 (scripts/lib/traffic.py);
#                  repeat to cycle (one-shot only); answer them with --prompt prompts/ip-stack.md
# --continuous     one Claude Code session serves all pings (/ping-serve N): the pings go
#                  out every --interval S seconds (default 1) once it waits in its first
#                  READ; a new session starts after --session-packets N packets (default 20)
# --out DIR        where the results go (default out/<date>-<time>-<agent>)
# --suite [NAMES]  one agent run per scenario instead of pings, scored into
#                  scorecard.json and scorecard.md (default: all the prompt handles;
#                  the prompt defaults to prompts/ip-stack.md when it exists)
# --flaw NAME      with --agent dry-run: the scripted model is wrong on purpose
#                  (checksum, data, answer-all; see examples/dry_run_flaws.py)
# TUNBRIDGE=path   use this tunbridge binary and build nothing (the tests do)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh
ARGS=("$@")

# --- options ---------------------------------------------------------------------
# Each mode is a function run_<MODE> below; a new mode adds its flag here and its
# function (or a thin one that hands over to its own file).
AGENT=claude COUNT=3 MODEL="" PROMPT="prompts/ping-respond.md" OUT="" PING_WAIT=180
MODE=oneshot INTERVAL=1 SESSION_PACKETS=20 THINKING="" LEAN=0 PING_OPTS=()
SUITE=0 SUITE_NAMES=() FLAW="" SCENARIO="" PROMPT_GIVEN=0 TRAFFIC=()
bad() { TB_DIE_STATUS=2 die "$*"; }
while (($#)); do
    case $1 in
        --agent) AGENT=${2:?--agent needs a value}; shift 2 ;;
        --count) COUNT=${2:?--count needs a value}; shift 2 ;;
        --model) MODEL=${2:?--model needs a value}; shift 2 ;;
        --prompt) PROMPT=${2:?--prompt needs a value}; PROMPT_GIVEN=1; shift 2 ;;
        --lean) LEAN=1; shift ;;
        --thinking) THINKING=${2:?--thinking needs a value}; shift 2 ;;
        --ping-opts) PING_OPTS+=("${2?--ping-opts needs a value}"); shift 2 ;;
        --ping-wait) PING_WAIT=${2:?--ping-wait needs a value}; shift 2 ;;
        --traffic) TRAFFIC+=("${2:?--traffic needs a value}"); shift 2 ;;
        --continuous) MODE=continuous; shift ;;
        --interval) INTERVAL=${2:?--interval needs a value}; shift 2 ;;
        --session-packets) SESSION_PACKETS=${2:?--session-packets needs a value}; shift 2 ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --suite) SUITE=1; shift; while (($#)) && [[ $1 != -* ]]; do SUITE_NAMES+=("$1"); shift; done ;;
        --compare) shift; exec python3 scripts/lib/suite.py compare "$@" ;;
        --flaw) FLAW=${2:?--flaw needs a value}; shift 2 ;;
        --scenario) SCENARIO=${2:?--scenario needs a value}; shift 2 ;;   # one scenario (used by --suite)
        -h|--help) tb_usage; exit 0 ;;
        *) bad "unknown flag $1 (see --help)" ;;
    esac
done
case $AGENT in claude|native|dry-run) ;; *) bad "--agent must be claude, native or dry-run" ;; esac
((SUITE && !PROMPT_GIVEN)) && [[ -f prompts/ip-stack.md ]] && PROMPT=prompts/ip-stack.md
[[ -z $FLAW || $AGENT == dry-run ]] || bad "--flaw needs --agent dry-run"
((SUITE)) && { python3 scripts/lib/suite.py names --prompt "$PROMPT" ${SUITE_NAMES[@]+"${SUITE_NAMES[@]}"} >/dev/null || exit 2; }
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || bad "--count must be a positive number"
[[ $SESSION_PACKETS =~ ^[1-9][0-9]*$ ]] || bad "--session-packets must be a positive number"
[[ $INTERVAL =~ ^[0-9]*\.?[0-9]+$ ]] || bad "--interval must be a number of seconds"
[[ $PING_WAIT =~ ^[1-9][0-9]*$ ]] || bad "--ping-wait must be a positive number of seconds"
[[ -f $PROMPT ]] || bad "prompt $PROMPT not found"
for opts in ${PING_OPTS[@]+"${PING_OPTS[@]}"}; do
    [[ $opts =~ ^[-\ a-zA-Z0-9.]*$ ]] || bad "--ping-opts takes plain ping flags, not $opts"
done
for kind in ${TRAFFIC[@]+"${TRAFFIC[@]}"}; do
    case $kind in ping|ping6|udp-echo|udp-echo6|udp-closed|udp-closed6|tcp-syn|tcp-syn6) ;;
        *) bad "--traffic takes ping, ping6, udp-echo[6], udp-closed[6] or tcp-syn[6], not $kind" ;;
    esac
done
case $THINKING in
    "") THINKING_TOKENS="" ;;
    off) THINKING_TOKENS=0 ;;
    on) THINKING_TOKENS=31999 ;;
    *) [[ $THINKING =~ ^[0-9]+$ ]] || bad "--thinking must be off, on or a number of tokens"
       THINKING_TOKENS=$THINKING ;;
esac
if [[ $MODE == continuous ]]; then
    ((!SUITE)) && [[ -z $SCENARIO ]] || bad "--continuous sends pings; it does not go with --suite"
    [[ $AGENT != native ]] || bad "--continuous runs Claude Code (--agent claude or dry-run); the native agent always runs continuously"
    ((${#PING_OPTS[@]} <= 1)) || bad "--continuous sends one ping stream: give --ping-opts once"
    ((${#TRAFFIC[@]} == 0)) || bad "--continuous sends pings; --traffic is for one-shot runs"
    PROMPT=prompts/ping-serve.md
fi
HARNESS=default; ((LEAN)) && HARNESS=lean
OUT=${OUT:-out/$(date +%Y%m%d-%H%M%S)-$AGENT}

# --- before root: install what is missing, find the client, build ----------------
needs=(ip ping python3)
[[ $AGENT == native ]] || needs+=(npm node)
if ! tb_is_root && ! command -v sudo >/dev/null; then
    bad "needs root for the TUN device: run it as root (there is no sudo here)"
fi
tb_install_commands "${needs[@]}"
BIN=${TUNBRIDGE:-}
build() {   # unless TUNBRIDGE names the binary; the native agent is always built here
    [[ -n $BIN && ( $AGENT != native || -x target/release/examples/native_agent ) ]] && return 0
    say "building tunbridge (cargo build --release)"
    cargo build --release -q -p tunbridge --bin tunbridge --example native_agent
}
if [[ -z $BIN && ( -z ${SUDO_USER:-} || ! -x target/release/tunbridge ) ]] && ! command -v cargo >/dev/null; then
    bad "needs cargo to build tunbridge (https://rustup.rs)"
fi
CLAUDE=""
if [[ $AGENT != native ]]; then
    # The dry run speaks the API of the pinned client, so it installs and uses that one
    # (into ./node_modules only); the real run takes the user's own `claude` first.
    if [[ $AGENT == dry-run ]] || ! command -v claude >/dev/null; then
        tb_install_client
    fi
    if [[ $AGENT == dry-run ]]; then
        CLAUDE=$ROOT/node_modules/.bin/claude
    else
        CLAUDE=$(command -v claude || echo "$ROOT/node_modules/.bin/claude")
    fi
fi
OAUTH=0
if [[ $AGENT == claude ]]; then
    if [[ -z ${ANTHROPIC_API_KEY:-}${ANTHROPIC_AUTH_TOKEN:-}${CLAUDE_CODE_OAUTH_TOKEN:-} \
          && ! -f ${HOME}/.claude/.credentials.json ]]; then
        echo "experiment.sh: Claude Code has no credentials (set ANTHROPIC_API_KEY, or run \`claude\` once to log in)." >&2
        echo "  to check the set-up without an API key:  scripts/experiment.sh --agent dry-run --count $COUNT" >&2
        exit 2
    fi
    [[ -z ${ANTHROPIC_API_KEY:-} ]] && OAUTH=1
fi
# The dry run can stand in for a login: the client then gets an OAuth token, not a key.
[[ $AGENT == dry-run && ${TUNBRIDGE_DRY_RUN_AUTH:-} == oauth ]] && OAUTH=1
if ! tb_is_root; then
    build
    say "the bridge needs root for the TUN device; re-running with sudo"
    exec sudo --preserve-env=ANTHROPIC_API_KEY,ANTHROPIC_AUTH_TOKEN,ANTHROPIC_BASE_URL,ANTHROPIC_MODEL,CLAUDE_CODE_OAUTH_TOKEN,HOME,TUNBRIDGE_DRY_RUN_AUTH,TUNBRIDGE \
        "$0" ${ARGS[@]+"${ARGS[@]}"} --out "$OUT"
fi
if [[ -z ${SUDO_USER:-} ]] && command -v cargo >/dev/null \
   || [[ ! -x target/release/tunbridge || ! -x target/release/examples/native_agent ]]; then
    build
fi

# --- set-up: namespace, bridge, model, client flags ---------------------------------
RUN_USER=${SUDO_USER:-root}
as_user() {   # sudo drops BASH_ENV (see tb_put_on_path), so it is passed on by name
    if [[ $RUN_USER != root ]]; then sudo -u "$RUN_USER" --preserve-env env BASH_ENV="$BASH_ENV" "$@"; else "$@"; fi
}
if ((SUITE)); then   # one run of this script per scenario, then the scorecard
    flags=(--agent "$AGENT" --ping-wait "$PING_WAIT" ${MODEL:+--model "$MODEL"} ${FLAW:+--flaw "$FLAW"})
    ((LEAN)) && flags+=(--lean)
    [[ -n $THINKING ]] && flags+=(--thinking "$THINKING")
    status=0
    python3 scripts/lib/suite.py run --out "$OUT" --agent "$AGENT" --prompt "$PROMPT" --harness "$HARNESS" \
        ${MODEL:+--model "$MODEL"} ${FLAW:+--flaw "$FLAW"} ${SUITE_NAMES[@]+"${SUITE_NAMES[@]}"} -- "${flags[@]}" || status=$?
    [[ $RUN_USER != root ]] && chown -R "$RUN_USER" "$OUT"
    say "scorecard in $OUT: scorecard.md, scorecard.json; one directory per scenario"
    exit "$status"
fi
NETNS=tbx-$$
WORK=$(mktemp -d /tmp/tunbridge-exp.XXXXXX)
tb_track_dir "$WORK"
chmod 755 "$WORK"
mkdir -p "$OUT"
[[ $RUN_USER != root ]] && chown "$RUN_USER" "$OUT" "$WORK"
export TUNBRIDGE_CMD_FIFO=$WORK/tun_cmd TUNBRIDGE_RESP_FIFO=$WORK/tun_resp
tb_put_on_path "${BIN:-$ROOT/target/release/tunbridge}" "$WORK/bin"
BRIDGE_PID=""
tb_traps

say "network namespace $NETNS (the host's networking is not touched)"
tb_netns_create "$NETNS"
say "starting the bridge; record: $OUT/records.jsonl"
# A packet stays queued as long as its ping waits for the reply (--max-age), so that a slow
# client start cannot make it expire before the first READ.
tunbridge serve --netns "$NETNS" --max-age "$PING_WAIT" --record "$OUT/records.jsonl" --pcap "$OUT/capture.pcap" \
    2> "$OUT/bridge.log" &
BRIDGE_PID=$!
tb_track_pid "$BRIDGE_PID"
tb_wait_for_bridge "$BRIDGE_PID" "$TUNBRIDGE_RESP_FIFO" "$OUT/bridge.log" || exit 1

if [[ $AGENT == dry-run ]]; then
    tb_start_model "$OUT/model-requests.jsonl" "$WORK/model.out" ${FLAW:+--flaw "$FLAW"}
    say "dry-run model at $MODEL_URL"
    tb_export_dry_run_env
    if ((OAUTH)); then
        unset ANTHROPIC_API_KEY
        export CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-dry-run
    fi
fi
# Streamed events, timestamped as they arrive (scripts/lib/session.py): model requests,
# tool calls, tokens per request, and the phase the progress line shows.
# The Bash prompts run without MCP servers: the project's .mcp.json (tunbridge mcp, for the
# MCP prompts) would otherwise load in -p and add its three tools to every request.
CLAUDE_FLAGS=(--output-format stream-json --verbose --include-partial-messages --strict-mcp-config)
[[ -n $MODEL ]] && CLAUDE_FLAGS+=(--model "$MODEL")
[[ -n $THINKING_TOKENS ]] && export MAX_THINKING_TOKENS=$THINKING_TOKENS
# Lean: only what the prompt needs. --tools Bash offers nothing else; no MCP servers, no
# skills or slash commands, no background tasks, no session files, no CLAUDE.md or
# auto-memory, no hooks. With an API key --bare does the same and also shortens Bash's
# description to one line; --bare reads only ANTHROPIC_API_KEY, so for a login (OAuth) the
# same flags run without it (Bash's description is then 652 bytes, not 19: the only
# difference, docs/HARNESS.md). The permission mode stays the default: the two commands
# are allowed by the same rules.
SETTINGS=$ROOT/.claude/settings.json
if ((LEAN)); then
    SETTINGS=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); s["disableAllHooks"]=True; print(json.dumps(s))' "$SETTINGS")
    CLAUDE_FLAGS+=(--tools Bash --system-prompt-file "$ROOT/prompts/lean-system.md"
                   --disable-slash-commands --no-session-persistence --permission-mode default)
    export CLAUDE_CODE_DISABLE_BACKGROUND_TASKS=1 CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS=1
    export CLAUDE_CODE_DISABLE_CLAUDE_MDS=1 CLAUDE_CODE_DISABLE_AUTO_MEMORY=1
    ((OAUTH)) || CLAUDE_FLAGS+=(--bare)
    say "lean harness ($( ((OAUTH)) && echo "login: without --bare" || echo "API key: --bare")): claude ${CLAUDE_FLAGS[*]}"
fi
CLAUDE_FLAGS+=(--settings "$SETTINGS")

# The prompt as Claude Code gets it: its slash command (with ARGS) when it has one and
# the harness reads commands; otherwise its text, front matter stripped, with $ARGUMENTS
# and @file references filled in the way Claude Code fills them.
prompt_text() {   # $1: arguments
    local name; name=$(basename "$PROMPT" .md)
    if ((!LEAN)) && [[ $(realpath "$PROMPT") == $(realpath ".claude/commands/$name.md" 2>/dev/null) ]]; then
        echo "/$name${1:+ $1}"
    else
        awk -v args="$1" '
            NR == 1 && $0 != "---" {body = 1}
            !body { if (/^---$/ && ++n == 2) body = 1; next }
            /^@[^ ]+$/ { f = substr($0, 2); while ((getline l < f) > 0) print l; close(f); next }
            { gsub(/\$ARGUMENTS/, args); print }' "$PROMPT"
    fi
}

# Runs Claude Code once (tag: the ping or session number) with prompt arguments $2.
run_claude() {
    local tag=$1 status=0
    as_user "$CLAUDE" -p "$(prompt_text "${2:-}")" "${CLAUDE_FLAGS[@]}" 2> "$OUT/claude-$tag.err" \
        | python3 scripts/lib/session.py stamp --out "$OUT/claude-$tag.jsonl" \
            --result "$OUT/claude-$tag.json" --status "$WORK/status" || status=$?
    return "$status"
}

# Shows what the agent (pid $1) is doing, once a second, until it exits. $2: the label
# ("ping 3/10") in one-shot runs; in continuous runs the session's status names the ping.
watch_agent() {
    local pid=$1 label=$2 start=$SECONDS seq="" since="" phase="" now text
    while kill -0 "$pid" 2>/dev/null; do
        [[ -s $WORK/status ]] && IFS=$'\t' read -r seq since phase < "$WORK/status" || true
        now=$(date +%s)
        if [[ $MODE == continuous && $seq =~ ^[0-9]+$ && $phase == "waiting in READ" ]]; then
            text="waiting in READ for ping $((seq + 1))/$COUNT, $(( now - ${since%.*} )) s"
        elif [[ $MODE == continuous && $seq =~ ^[0-9]+$ ]]; then
            text="ping $seq/$COUNT: ${phase:-starting}, $(( now - ${since%.*} )) s"
        else
            text="$label: ${phase:-starting}, $(( SECONDS - start )) s"
        fi
        if [[ -t 1 ]]; then
            printf '\r    %-70s' "$text"
        elif (( (SECONDS - start) % 10 == 0 && SECONDS > start )); then
            printf '    %s\n' "$text"
        fi
        sleep 1
    done
    [[ -t 1 ]] && printf '\r%78s\r' ""
    return 0
}

# Each ping process gets its own ICMP identifier (ping -e), so that the table can match
# the bridge's record to it by flow key; a -e in --ping-opts wins.
IDENT_BASE=$(( ($$ * 131) % 60000 + 1000 ))
ident_for() {   # $1: ping options, $2: number
    if [[ " $1 " =~ \ -e\ ([0-9]+)\  ]]; then echo "${BASH_REMATCH[1]}"; else echo $(( (IDENT_BASE + $2) & 0xffff )); fi
}

# The request of ping $1: a ping with options $2, with --scenario the scenario's own
# request (scripts/lib/suite.py), or with --traffic the round's kind (scripts/lib/traffic.py).
request() {
    if [[ -n $SCENARIO ]]; then
        exec ip netns exec "$NETNS" python3 scripts/lib/suite.py produce "$SCENARIO" --wait "$PING_WAIT" \
            --ident "$(ident_for "$2" "$1")"
    fi
    local kind=ping
    ((${#TRAFFIC[@]})) && kind=${TRAFFIC[$(( ($1 - 1) % ${#TRAFFIC[@]} ))]}
    if [[ $kind != ping ]]; then
        exec ip netns exec "$NETNS" python3 scripts/lib/traffic.py "$kind" --wait "$PING_WAIT" \
            --ident "$(ident_for "$2" "$1")" --ping-opts "$2"
    fi
    # shellcheck disable=SC2086 # $2 is a list of plain ping flags, checked above
    exec ip netns exec "$NETNS" ping -n -c 1 -W "$PING_WAIT" -e "$(ident_for "$2" "$1")" $2 192.0.2.2
}

# --- one-shot: one agent run per ping -------------------------------------------------
run_oneshot() {
    local i opts ident ping_pid agent t0 agent_status rtt
    for i in $(seq "$COUNT"); do
        opts=""
        ((${#PING_OPTS[@]})) && opts=${PING_OPTS[$(( (i - 1) % ${#PING_OPTS[@]} ))]}
        ident=$(ident_for "$opts" "$i")
        rm -f "$WORK/status"
        request "$i" "$opts" > "$OUT/ping-$i.txt" 2>&1 &
        ping_pid=$!
        tb_track_pid "$ping_pid"
        t0=$(date +%s.%N)
        case $AGENT in
            native) target/release/examples/native_agent --count 1 > "$OUT/agent-$i.txt" 2>&1 & ;;
            *) run_claude "$i" & ;;
        esac
        agent=$!
        watch_agent "$agent" "ping $i/$COUNT"
        agent_status=0; wait "$agent" || agent_status=$?
        printf '%d\t%s\t%s\t%d\t%d\t%s\n' "$i" "$t0" "$(date +%s.%N)" "$agent_status" "$ident" "$opts" >> "$OUT/timeline.tsv"
        if [[ -n $SCENARIO ]]; then   # the agent is done: an answer it wrote is there within ms
            for _ in $(seq 30); do kill -0 "$ping_pid" 2>/dev/null || break; sleep 0.1; done
            kill "$ping_pid" 2>/dev/null || true
        fi
        wait "$ping_pid" 2>/dev/null || true
        tb_stop_pid "$ping_pid"
        rtt=$(grep -o 'time=[0-9.]* ms' "$OUT/ping-$i.txt" | head -1 || true)
        printf '    ping %d/%d: %s (agent exit %d)\n' "$i" "$COUNT" "${rtt:-no reply}" "$agent_status"
    done
}

# --- continuous: one session serves a stream of pings -----------------------------------
run_continuous() {
    local done=0 session=0 n agent agent_status ping_pid="" got t0 opts=${PING_OPTS[0]:-} ident
    ident=$(ident_for "$opts" 0)
    while ((done < COUNT)); do
        # ping has given up on the rest (they expired or were lost): no session can help.
        if [[ -n $ping_pid ]] && ! kill -0 "$ping_pid" 2>/dev/null; then
            say "ping has finished; $((COUNT - done)) packets were never read"
            break
        fi
        session=$((session + 1))
        n=$(( COUNT - done < SESSION_PACKETS ? COUNT - done : SESSION_PACKETS ))
        rm -f "$WORK/status"
        say "session $session: claude -p \"$(prompt_text "$n" | head -1)\" ($n packets)"
        t0=$(date +%s.%N)
        run_claude "s$session" "$n" &
        agent=$!
        if [[ -z $ping_pid ]]; then
            tb_wait_until_reading "$agent" || true
            say "session $session waits in READ; pinging 192.0.2.2 $COUNT times, every $INTERVAL s"
            # shellcheck disable=SC2086 # $opts is a list of plain ping flags, checked above
            ip netns exec "$NETNS" ping -n -D -O -c "$COUNT" -i "$INTERVAL" -W "$PING_WAIT" -e "$ident" $opts 192.0.2.2 \
                > "$OUT/ping-continuous.txt" 2>&1 &
            ping_pid=$!
            tb_track_pid "$ping_pid"
        fi
        watch_agent "$agent" "session $session"
        agent_status=0; wait "$agent" || agent_status=$?
        got=$(python3 scripts/lib/session.py packets "$OUT/claude-s$session.jsonl")
        printf '%s\t%s\t%s\t%d\t%d\t%s\n' "s$session" "$t0" "$(date +%s.%N)" "$agent_status" "$ident" "$opts" >> "$OUT/timeline.tsv"
        printf '    session %d: %d packets read (agent exit %d)\n' "$session" "$got" "$agent_status"
        done=$((done + got))
        if ((got == 0)); then
            say "session $session read no packet; stopping"
            break
        fi
    done
    say "waiting for ping to finish"
    wait "$ping_pid" 2>/dev/null || true
    tb_stop_pid "$ping_pid"
    grep -E 'packets transmitted|rtt' "$OUT/ping-continuous.txt" | sed 's/^/    /' || true
}

say "agent: $AGENT${MODEL:+ ($MODEL)}, prompt: $PROMPT, harness: $HARNESS, pings: $COUNT, mode: $MODE${TRAFFIC[*]:+, traffic: ${TRAFFIC[*]}}"
"run_$MODE"

tb_stop_pid "$BRIDGE_PID"
python3 scripts/lib/experiment_table.py --out "$OUT" --agent "$AGENT" --model "${MODEL:-default}" \
    --prompt "$PROMPT" --harness "$HARNESS$( ((LEAN && OAUTH)) && echo " (login, without --bare)")" --count "$COUNT" --mode "$MODE" \
    --interval "$INTERVAL" --session-packets "$SESSION_PACKETS" --max-age "$PING_WAIT" \
    --thinking "${THINKING:-client default}${THINKING_TOKENS:+ (MAX_THINKING_TOKENS=$THINKING_TOKENS)}" \
    --timeline "$OUT/timeline.json" > "$OUT/summary.md"
# (A scenario of the suite that is no ping, e.g. an injected packet, has nothing to draw.)
tunbridge timeline "$OUT/timeline.json" --out "$OUT/timeline.svg" || [[ -n $SCENARIO ]]
[[ $RUN_USER != root ]] && chown -R "$RUN_USER" "$OUT"
echo
cat "$OUT/summary.md"
say "results in $OUT: summary.md, timeline.svg, records.jsonl, capture.pcap, bridge.log"
