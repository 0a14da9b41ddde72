#!/usr/bin/env bash
# Set up a machine for building and testing portmatrix (Debian 12, as root).
#
# Idempotent: the first run on a fresh machine installs everything; a run on a
# machine that already has it all checks and returns within seconds.
#
#   1. Debian packages: podman and its runtime, mmdebstrap, nftables, iptables,
#      iproute2, procps, hyperfine, jq, make, shellcheck (apt only when one is
#      missing)
#   2. the Rust musl target (static module binaries)
#   3. the Python virtualenv .venv with scripts/requirements.txt (ansible,
#      molecule, molecule-plugins[podman], ansible-lint, yamllint); pip only
#      when requirements changed
#   4. podman's Docker-compatible API service on /run/podman/podman.sock (for
#      testcontainers and molecule), started in the background if not answering
#   5. the node images (images/build.sh; skips the ones that exist)
#
# Writes nothing outside the repo but what apt, rustup and podman write
# themselves, and the service's socket, pid and log under /run/podman/.
#
# Usage: scripts/setup.sh [--rebuild-images]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
. "${REPO}/scripts/env.sh"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }
# ($? is expanded first, while it still holds the failed command's status.)
trap 'printf "setup: ERROR: command failed (exit %s) at %s line %s: %s\n" "$?" "${BASH_SOURCE[0]}" "$LINENO" "$BASH_COMMAND" >&2' ERR

REBUILD=()
for arg in "$@"; do
    case "$arg" in
        --rebuild-images) REBUILD=(--rebuild) ;;
        -h|--help) sed -n '2,/^# Usage:/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $arg (try --help)" ;;
    esac
done

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, rootful podman)"

# One set-up at a time on a machine (apt, podman's store and its service are
# shared by every checkout): a second run waits for the first.
mkdir -p /run/lock
exec 9>/run/lock/portmatrix-setup.lock
if ! flock -n 9; then
    say "another scripts/setup.sh is running; waiting for it (at most 20 min)"
    flock -w 1200 9 || die "gave up waiting for the other scripts/setup.sh"
fi

# --- 1. Debian packages -------------------------------------------------------
# Podman 4.3 on Debian 12, rootful: runc as OCI runtime (images/containers.conf
# says why not crun), conmon, netavark + aardvark-dns as network stack,
# catatonit for --init, fuse-overlayfs as the fallback storage driver.
# Recommends are not installed (buildah, dbus-user-session and the rootless
# helpers are not needed as root).
APT_PACKAGES=(
    podman runc conmon netavark aardvark-dns catatonit fuse-overlayfs
    golang-github-containers-common
    mmdebstrap
    nftables iptables iproute2 procps python3
    hyperfine jq make curl ca-certificates
    # tests/reserved_ports/concurrency.rs holds a run still (strace's syscall
    # delay) while another program edits sysctl_file
    strace
    shellcheck
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    # (what `dpkg -s` reports as "Status: install ok installed", without a pipe)
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
else
    say "apt: all ${#APT_PACKAGES[@]} packages present"
fi

# --- 2. Rust musl target --------------------------------------------------------
MUSL=x86_64-unknown-linux-musl
command -v rustup >/dev/null || die "rustup not found on PATH (the machine's Rust toolchain is expected)"
# (grep without -q everywhere here: an early exit would SIGPIPE the writer and
# pipefail would turn a match into a failure)
if rustup target list --installed | grep -x "$MUSL" >/dev/null; then
    say "rust: $MUSL present"
else
    say "rust: adding target $MUSL"
    rustup target add "$MUSL" || die "rustup target add $MUSL failed"
fi

# --- 3. Python virtualenv ---------------------------------------------------------
VENV="${REPO}/.venv"
REQ="${REPO}/scripts/requirements.txt"
STAMP="${VENV}/.portmatrix-requirements.sha256"
PYTHON="${PORTMATRIX_PYTHON:-python3}"  # the interpreter the venv is made from
# The stamp records the requirements file and the interpreter it was made with.
want="$(cat "$REQ" <("$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ -x "${VENV}/bin/ansible-playbook" ] && [ -x "${VENV}/bin/molecule" ] \
    && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
    say "venv: up to date (${VENV})"
else
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is $("$PYTHON" --version 2>&1); ansible-core 2.19 needs Python >= 3.11"
    if [ ! -x "${VENV}/bin/python" ]; then
        say "venv: creating ${VENV}"
        "$PYTHON" -m venv "$VENV" || die "python venv creation failed"
    fi
    say "venv: installing scripts/requirements.txt"
    "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" \
        || die "pip install -r scripts/requirements.txt failed"
    echo "$want" >"$STAMP"
fi

# --- 4. podman API service --------------------------------------------------------
# The service reads CONTAINERS_CONF once, at start: the hash of that file is kept
# beside its pid, and a service of ours started with another config is restarted.
SOCK="/run/podman/podman.sock"
PIDFILE="/run/podman/service.pid"
CONFSTAMP="/run/podman/service.conf.sha256"
LOG="/run/podman/service.log"
conf_hash="$(sha256sum "$CONTAINERS_CONF" | cut -d' ' -f1)"
ping_socket() { curl -fsS --max-time 5 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
our_service_pid() {  # prints the pid of the service this script started, if alive
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep 'podman system service' >/dev/null \
        && echo "$pid"
}
if ping_socket && [ "$(cat "$CONFSTAMP" 2>/dev/null)" != "$conf_hash" ] \
    && pid="$(our_service_pid)"; then
    say "podman: ${CONTAINERS_CONF} changed; restarting the API service (pid $pid)"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && die "podman API service (pid $pid) did not stop"
fi
if ping_socket; then
    say "podman: API service answering on ${SOCK}"
else
    mkdir -p /run/podman
    if pid="$(our_service_pid)"; then
        say "podman: API service (pid $pid) is starting; waiting"
    else
        rm -f "$SOCK"
        say "podman: starting API service on ${SOCK} (log ${LOG})"
        # setsid + no inherited descriptors: the service outlives this script
        # and holds none of its pipes open, nor the set-up lock.
        setsid podman system service --time=0 "unix://${SOCK}" \
            </dev/null >>"$LOG" 2>&1 9>&- &
        echo $! >"$PIDFILE"
        echo "$conf_hash" >"$CONFSTAMP"
    fi
    for _ in $(seq 1 60); do
        ping_socket && break
        sleep 0.5
    done
    ping_socket || die "podman API service did not answer on ${SOCK} within 30 s; see ${LOG}"
    say "podman: API service answering"
fi

# Test containers whose test process is gone (killed before its Drop ran) are
# removed; tests label theirs portmatrix.test=<pid> (tests/support/container.rs).
stale=()
while read -r cid pid; do
    [ -n "$cid" ] || continue
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then stale+=("$cid"); fi
done < <(podman ps -a --filter label=portmatrix.test \
            --format '{{.ID}} {{index .Labels "portmatrix.test"}}' 2>/dev/null || true)
if [ "${#stale[@]}" -gt 0 ]; then
    say "podman: removing ${#stale[@]} stale test container(s)"
    podman rm -f "${stale[@]}" >/dev/null || true
fi

# --- 5. node images -----------------------------------------------------------------
"${REPO}/images/build.sh" "${REBUILD[@]}"

say "done"
