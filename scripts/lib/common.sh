# shellcheck shell=bash
# The shell library the scripts share: messages, installing what is missing, root,
# network namespaces, and cleaning up. (Everything that runs an experiment is the harness
# package, harness/; the scripts install, build, re-run with sudo and hand over to it.)
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
    [tmux]=tmux
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

# Installs Claude Code at the oldest version the harness supports (harness/clients.py) into
# target/clients/VERSION (npm install --prefix), unless it is there already, for the tests
# that check the harness with both ends of the supported range. Needs npm.
tb_install_oldest_client() {
    local version dir
    version=$(cd "$ROOT" && python3 -c 'from harness.clients import OLDEST; print(OLDEST)')
    dir=$ROOT/target/clients/$version
    [[ $("$dir/node_modules/.bin/claude" --version 2>/dev/null) == "$version "* ]] && return 0
    say "installing Claude Code $version, the oldest supported, into target/clients/$version (npm install)"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "@anthropic-ai/claude-code@$version"
}

# --- cleanup ---------------------------------------------------------------------------
tb_track_pid() { TB_PIDS+=("$@"); }
tb_track_netns() { TB_NETNS+=("$@"); }
tb_track_dir() { TB_DIRS+=("$@"); }

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
