#!/usr/bin/env bash
# The experiment in one command: installs what is missing, builds tunbridge, re-runs itself
# with sudo when not root (the TUN device needs it), and hands over to the harness package
# (`python3 -m harness run`), which starts the bridge in a private network namespace, runs
# the agent, sends the pings and writes the results. Every flag is the package's:
#
#   scripts/experiment.sh [--agent claude|native|dry-run] [--count N] [--model NAME]...
#                         [--prompt FILE]... [--harness default|lean|mcp|lean-mcp]... [--lean]
#                         [--thinking off|on|TOKENS]... [--traffic KIND[,KIND...]]...
#                         [--ping-opts "OPTS"]... [--ping-wait S] [--out DIR]
#                         [--continuous [--interval S] [--session-packets N]]
#                         [--suite [NAMES]] [--flaw NAME] [--model-delay S]
#                         [--jobs J] [--max-cost USD] [--client PATH]
#                         [--backend anthropic|ollama|llama-server|vllm|litellm[=URL]|URL]
#   scripts/experiment.sh --compare DIR...        earlier results side by side
#   scripts/experiment.sh --help                  every flag (docs/RUNNER.md has the whole account)
#
# TUNBRIDGE=path   use this tunbridge binary and build nothing (the tests do)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

AGENT=claude CLIENT=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case ${args[i]} in
        --compare) tb_install_commands python3; exec python3 -m harness compare "${args[@]:i+1}" ;;
        -h|--help) tb_install_commands python3; exec python3 -m harness run --help ;;
        --agent) AGENT=${args[i+1]:-} ;;
        --client) CLIENT=${args[i+1]:-} ;;
    esac
done

needs=(ip ping python3)
[[ $AGENT == native ]] || needs+=(npm node)
if ! tb_is_root && ! command -v sudo >/dev/null; then
    TB_DIE_STATUS=2 die "needs root for the TUN device: run it as root (there is no sudo here)"
fi
tb_sudo_now "the bridge needs root for the TUN device"
tb_install_commands "${needs[@]}"
# The dry run speaks the API of the pinned client, so it installs and uses that one (into
# ./node_modules only); the real run takes the user's own `claude` first; --client names one.
if [[ -z $CLIENT ]] && { [[ $AGENT == dry-run ]] || { [[ $AGENT == claude ]] && ! command -v claude >/dev/null; }; }; then
    tb_install_client
fi

BIN=${TUNBRIDGE:-}
build() {   # unless TUNBRIDGE names the binary; the native agent is always built here
    [[ -n $BIN && ( $AGENT != native || -x target/release/examples/native_agent ) ]] && return 0
    tb_not_as_root_for_a_user "building tunbridge"
    command -v cargo >/dev/null || TB_DIE_STATUS=2 die "needs cargo to build tunbridge (https://rustup.rs)"
    say "building tunbridge (cargo build --release)"
    cargo build --release -q -p tunbridge --bin tunbridge --example native_agent
}
PY=$(command -v python3)
if ! tb_is_root; then
    build
    say "the bridge needs root for the TUN device; re-running with sudo"
    # Root writes no bytecode into the user's checkout (a root-owned __pycache__ they could
    # not remove); everything else root makes there is given to the user (harness/procs.py).
    export PYTHONDONTWRITEBYTECODE=1
    exec sudo --preserve-env=PYTHONDONTWRITEBYTECODE,ANTHROPIC_API_KEY,ANTHROPIC_AUTH_TOKEN,ANTHROPIC_BASE_URL,ANTHROPIC_MODEL,CLAUDE_CODE_OAUTH_TOKEN,CLAUDE_CODE_MAX_OUTPUT_TOKENS,HOME,TUNBRIDGE_DRY_RUN_AUTH,TUNBRIDGE,CLAUDE_CODE_MAX_RETRIES,API_TIMEOUT_MS \
        "$PY" -m harness run "$@"
fi
if [[ -z ${SUDO_USER:-} ]] && command -v cargo >/dev/null \
   || [[ -z $BIN && ( ! -x target/release/tunbridge || ! -x target/release/examples/native_agent ) ]]; then
    build
fi
exec "$PY" -m harness run "$@"
