# shellcheck shell=bash
# The shell library the scripts share: messages, installing what is missing, root,
# network namespaces, waiting for the bridge and the dry-run model, and cleaning up.
# Sourced, never run:  . "$ROOT/scripts/lib/common.sh"  (after `set -euo pipefail`).
#
# Cleanup: whatever is registered with tb_track_pid, tb_track_netns and tb_track_dir is
# stopped or removed by tb_cleanup, which tb_traps installs on EXIT (INT and TERM exit
# 130, which runs it too). Scripts with more to do define tb_on_exit; it runs first.

TB_SCRIPT=${TB_SCRIPT:-$(basename "$0")}
TB_PIDS=() TB_NETNS=() TB_DIRS=()

say() { printf '==> %s\n' "$*"; }
die() { printf '%s: %s\n' "$TB_SCRIPT" "$*" >&2; exit "${TB_DIE_STATUS:-1}"; }
# Prints the script's usage: its opening comment, after the #! line, without the '# '.
tb_usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# --- root ----------------------------------------------------------------------------
tb_is_root() { [[ $(id -u) -eq 0 ]]; }

# Runs a command as root: directly when we are root, else through sudo.
tb_as_root() {
    if tb_is_root; then "$@"; else sudo "$@"; fi
}

# --- installing what is missing --------------------------------------------------------
# The commands the scripts use, and the Debian package that provides each.
declare -A TB_APT_PACKAGE=(
    [ip]=iproute2 [ping]=iputils-ping [tcpdump]=tcpdump [python3]=python3
    [npm]=npm [node]=nodejs [sudo]=sudo [rsvg-convert]=librsvg2-bin [gcc]=gcc [setpriv]=util-linux
)

# Installs the Debian packages for the commands given that are not on PATH, saying what
# it installs first; as root, or through sudo. Fails with a one-line message when
# neither root nor sudo nor apt-get is there.
tb_install_commands() {
    local cmd packages=()
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null && continue
        packages+=("${TB_APT_PACKAGE[$cmd]:?no package known for $cmd}")
    done
    ((${#packages[@]})) || return 0
    # shellcheck disable=SC2207 # package names have no spaces
    packages=($(printf '%s\n' "${packages[@]}" | sort -u))
    command -v apt-get >/dev/null \
        || die "needs ${packages[*]} (not on PATH, and no apt-get here to install them)"
    tb_is_root || command -v sudo >/dev/null \
        || die "needs ${packages[*]}: run as root (or install sudo) so they can be installed"
    say "installing ${packages[*]} (apt-get install, as root)"
    # Other runs may hold the dpkg lock for a while: wait for it rather than fail.
    tb_as_root apt-get -o DPkg::Lock::Timeout=300 update -qq
    tb_as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# The Claude Code version package.json pins.
tb_pinned_client_version() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dependencies"]["@anthropic-ai/claude-code"])' \
        "$ROOT/package.json"
}

# Installs the pinned Claude Code client into ./node_modules (npm ci) unless it is there
# already at the pinned version. Needs npm (tb_install_commands npm node first).
tb_install_client() {
    local have="" want
    want=$(tb_pinned_client_version)
    if [[ -f $ROOT/node_modules/@anthropic-ai/claude-code/package.json ]]; then
        have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
            "$ROOT/node_modules/@anthropic-ai/claude-code/package.json")
    fi
    [[ $have == "$want" && -x $ROOT/node_modules/.bin/claude ]] && return 0
    say "installing the pinned Claude Code client $want into ./node_modules (npm ci)"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
}

# --- cleanup ---------------------------------------------------------------------------
tb_track_pid() { TB_PIDS+=("$@"); }
tb_track_netns() { TB_NETNS+=("$@"); }
tb_track_dir() { TB_DIRS+=("$@"); }

# Stops one process we started (TERM, then waits for it) and forgets it.
tb_stop_pid() {
    local pid=$1 keep=() p
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in ${TB_PIDS[@]+"${TB_PIDS[@]}"}; do [[ $p == "$pid" ]] || keep+=("$p"); done
    TB_PIDS=(${keep[@]+"${keep[@]}"})
}

# Stops every process we started, newest first.
tb_stop_pids() {
    local i
    for ((i = ${#TB_PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${TB_PIDS[i]}" 2>/dev/null || true; done
    for ((i = ${#TB_PIDS[@]} - 1; i >= 0; i--)); do wait "${TB_PIDS[i]}" 2>/dev/null || true; done
    TB_PIDS=()
}

tb_cleanup() {
    local status=$? ns
    trap - EXIT INT TERM
    if declare -F tb_on_exit >/dev/null; then tb_on_exit || true; fi
    tb_stop_pids
    for ns in ${TB_NETNS[@]+"${TB_NETNS[@]}"}; do
        ip netns del "$ns" 2>/dev/null || true
    done
    ((${#TB_DIRS[@]})) && rm -rf "${TB_DIRS[@]}"
    exit "$status"
}

# Installs tb_cleanup on EXIT; INT and TERM exit 130 (which runs it).
tb_traps() {
    trap tb_cleanup EXIT
    trap 'echo; say "interrupted"; exit 130' INT TERM
}

# --- network namespaces ------------------------------------------------------------------
# Creates network namespace $1 with its loopback up, deleted again on exit.
tb_netns_create() {
    ip netns add "$1"
    tb_track_netns "$1"
    ip -n "$1" link set lo up
}

# --- waiting ---------------------------------------------------------------------------------
# Waits until FILE has a line containing TEXT; gives up after SECONDS (default 10) or
# when process PID (optional) has exited, printing FILE.
tb_wait_for_line() {
    local file=$1 text=$2 seconds=${3:-10} pid=${4:-} i
    for ((i = 0; i < seconds * 10; i++)); do
        grep -q -- "$text" "$file" 2>/dev/null && return 0
        [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null && break
        sleep 0.1
    done
    grep -q -- "$text" "$file" 2>/dev/null && return 0
    echo "$TB_SCRIPT: no \"$text\" in $file:" >&2
    cat "$file" >&2 2>/dev/null || true
    return 1
}

# Waits until the bridge with pid PID serves answer FIFO FIFO; prints its LOG and fails
# when it exits first or takes over 10 s.
tb_wait_for_bridge() {
    local pid=$1 fifo=$2 log=$3 i
    for ((i = 0; i < 100; i++)); do
        [[ -p $fifo ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -p $fifo ]] && return 0
    echo "$TB_SCRIPT: the bridge did not start:" >&2
    cat "$log" >&2 2>/dev/null || true
    return 1
}

# Starts the scripted model server (python3 -m harness.model) on a free loopback port,
# its request log in LOG, its output in OUTFILE, any further arguments passed on; sets
# MODEL_PID and MODEL_URL.
tb_start_model() {
    local log=$1 outfile=$2
    shift 2
    (cd "$ROOT" && exec python3 -m harness.model --port 0 --log "$log" "$@") > "$outfile" 2>&1 &
    MODEL_PID=$!
    tb_track_pid "$MODEL_PID"
    tb_wait_for_line "$outfile" "listening on" 10 "$MODEL_PID" || die "the dry-run model did not start"
    MODEL_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$outfile" | head -1)
}

# Puts the binary $1 first on PATH under the name the prompts run, `tunbridge` (a link in
# directory $2), so a prompt's `tunbridge read` runs exactly that binary. When Claude Code
# could not snapshot the user's shell (its rc file failed, or it timed out on a busy
# machine) it runs each command as `bash -c -l`, whose /etc/profile sets PATH anew
# ("tunbridge: command not found"); BASH_ENV, read after the profile, puts it back.
tb_put_on_path() {
    mkdir -p "$2"
    ln -sf "$(realpath "$1")" "$2/tunbridge"
    printf 'case ":$PATH:" in *":%s:"*) ;; *) PATH=%q:$PATH ;; esac\n' "$2" "$2" > "$2/path.sh"
    export PATH=$2:$PATH BASH_ENV=$2/path.sh
}

# True while a descendant of process $1 is `tunbridge read`: the agent waits for a packet.
tb_waits_in_read() {
    ps -e -o pid=,ppid=,comm=,args= | awk -v root="$1" '
        { parent[$1] = $2; comm[$1] = $3; reading[$1] = ($0 ~ /tunbridge read$/) }
        END { for (p in parent) if (comm[p] == "tunbridge" && reading[p])
                  for (q = p; q in parent; q = parent[q]) if (q == root) exit 0
              exit 1 }'
}

# Waits until process $1 waits in READ (true) or exits (false), saying so every 2 s.
tb_wait_until_reading() {
    local pid=$1 i=0
    until tb_waits_in_read "$pid"; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((i++ % 20 == 19)) && printf '    waiting for the agent to wait in READ (%d s)\n' $((i / 10))
        sleep 0.1
    done
}

# The environment that points Claude Code at the dry-run model and keeps it off the
# network: exported into the caller's shell.
tb_export_dry_run_env() {
    export ANTHROPIC_BASE_URL=$MODEL_URL ANTHROPIC_API_KEY=dry-run
    export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1
}
