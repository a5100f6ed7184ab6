#!/usr/bin/env bash
# End-to-end check of the Claude Code harness without a model: the real, pinned Claude Code
# client runs `claude -p "/ping-respond" --output-format json` once against the scripted
# model (python3 -m harness.model), in the default permission mode with only the project's
# .claude/settings.json, against whatever bridge serves the FIFOs; prints Claude Code's JSON
# result and the model's request log, and fails unless both commands ran without a
# permission denial. Installs the pinned client when missing, then hands over to
# `python3 -m harness dry-run` (harness/dryrun.py).
#
#   scripts/dry-run.sh                 against a running bridge (default FIFOs /tmp/tun_cmd, /tmp/tun_resp)
#   scripts/dry-run.sh --with-bridge   as root: its own namespace, bridge and one ping; checks ping got the reply
#   scripts/dry-run.sh --out DIR       keep the artifacts (model log, JSON result, stderr) in DIR
#   scripts/dry-run.sh --client PATH   check this Claude Code instead of the pinned one
#
#   TUNBRIDGE=path/to/tunbridge        the binary the prompt's `tunbridge` resolves to
#                                      (default: tunbridge on PATH, else target/release/tunbridge)
#   TUNBRIDGE_CMD_FIFO, TUNBRIDGE_RESP_FIFO   other FIFO paths, honoured by tunbridge itself
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/common.sh

for arg in "$@"; do [[ $arg == -h || $arg == --help ]] && { tb_usage; exit 0; }; done
tb_install_commands python3 npm node
[[ " $* " == *" --client "* || -x node_modules/.bin/claude ]] || command -v claude >/dev/null || tb_install_client
exec python3 -m harness dry-run "$@"
