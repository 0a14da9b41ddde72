# shellcheck shell=bash
# Shared by the benchmark scripts (source it after scripts/env.sh): private
# network + mount namespaces to run in, cleanup on any exit, and a median.
#
# Sourcing defines functions only (say, die, need_commands and need_positive
# are usable at once). After
# its preconditions, the script defines
#   host_state       prints what must not change on the machine; read by
#                    bench_begin and again on exit, where a difference fails
#                    the run
#   HOST_WHAT        how to name that in the error ("the host firewall")
#   sandbox_prepare  (optional) run once a new sandbox has been entered
# and calls bench_begin, which records the host state and the load, makes T
# (a mktemp dir, removed on exit) and installs the clean-up traps. Then it has
# in_sandbox, in_sandbox_step, sandbox_start, sandbox_stop, median, ratio,
# collection_version and report_header. For host_state: host_firewall_state and
# host_sysctl_state; for sandbox_prepare: sandbox_private_sysctl; and
# iptables_variant_bin, a directory that picks an iptables variant via PATH.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

# Preconditions: every COMMAND on PATH; a knob (its BENCH_ name and value) a
# positive integer.
need_commands() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null || die "$cmd not found (run scripts/setup.sh / make setup)"
    done
}
need_positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"; }

PROC_RESERVED=/proc/sys/net/ipv4/ip_local_reserved_ports
SYSCTL_DIRS=(/etc/sysctl.d /run/sysctl.d) # covered with tmpfs inside a sandbox (when present)

SANDBOX_PID="" # the holder of the current sandbox's namespaces
STEP_PID=""    # a long step running inside it (ansible-playbook, hyperfine)

bench_begin() {
    HOST_NET="$(readlink /proc/self/ns/net)"
    HOST_MNT="$(readlink /proc/self/ns/mnt)"
    HOST_BEFORE="$(host_state)"
    LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
    T="$(mktemp -d /tmp/portmatrix-bench.XXXXXX)"
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

sandbox_stop() {
    if [ -n "$SANDBOX_PID" ]; then
        kill "$SANDBOX_PID" 2>/dev/null || true
        wait "$SANDBOX_PID" 2>/dev/null || true
        SANDBOX_PID=""
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$STEP_PID" ]; then
        kill "$STEP_PID" 2>/dev/null
        wait "$STEP_PID" 2>/dev/null
    fi
    sandbox_stop
    rm -rf "$T"
    if [ "$(host_state)" != "$HOST_BEFORE" ]; then
        printf 'bench: ERROR: %s changed during the run\n' "${HOST_WHAT:-the host}" >&2
        rc=1
    fi
    exit "$rc"
}

in_sandbox() { nsenter --target "$SANDBOX_PID" --net --mount -- "$@"; }

# The host's firewall, read only (listing the legacy tables loads none): part
# of host_state.
host_firewall_state() {
    nft list ruleset 2>&1
    cat /proc/net/ip_tables_names /proc/net/ip6_tables_names 2>/dev/null || true
}

# DIR with iptables, ip6tables and their -save/-restore linked to VARIANT
# (legacy or nft): put first on a PATH to pick the variant as alternatives
# would, without touching the machine's alternatives.
iptables_variant_bin() {
    local variant=$1 dir=$2 family tool
    mkdir -p "$dir"
    for family in iptables ip6tables; do
        for tool in "" -save -restore; do
            ln -s "/usr/sbin/${family}-${variant}${tool}" "${dir}/${family}${tool}"
        done
    done
}

# The reservation and the sysctl directories (names, types, sizes, times of
# every entry, and every file's content): part of host_state.
host_sysctl_state() {
    printf 'reserved=%s\n' "$(cat "$PROC_RESERVED")"
    local d
    for d in "${SYSCTL_DIRS[@]}"; do
        [ -e "$d" ] || continue
        find "$d" -printf '%p %y %s %T@ %l\n' | sort
        find "$d" -type f -exec sha256sum {} + | sort
    done
}

# Inside a new sandbox: tmpfs over the sysctl directories, and a check that the
# reservation starts empty. Part of sandbox_prepare.
sandbox_private_sysctl() {
    local d
    for d in "${SYSCTL_DIRS[@]}"; do
        [ -d "$d" ] || continue
        in_sandbox mount -t tmpfs -o mode=0755 portmatrix-bench "$d"
        [ "$(in_sandbox findmnt -n -o FSTYPE --target "$d")" = tmpfs ] || die "tmpfs over $d inside the sandbox"
    done
    [ -z "$(in_sandbox cat "$PROC_RESERVED")" ] || die "a fresh sandbox should start with an empty reservation"
}

# A long command inside the sandbox, run as a background job and waited for:
# bash runs a trap only between commands, and `wait` returns at once on a
# signal, so Ctrl-C or a kill reaches cleanup, which stops the step by pid.
# (A simple command started with & is exec'd by the forked child, so the pid
# is nsenter's, which execs env, which execs the command.)
in_sandbox_step() {
    local rc=0
    nsenter --target "$SANDBOX_PID" --net --mount -- "$@" &
    STEP_PID=$!
    wait "$STEP_PID" || rc=$?
    STEP_PID=""
    return "$rc"
}

sandbox_start() {
    # The holder keeps the namespaces alive; steps enter them with nsenter.
    # It ignores SIGINT (background job of a script); cleanup kills it by pid.
    unshare --net --mount --propagation private sleep infinity </dev/null &
    SANDBOX_PID=$!
    # unshare execs sleep once it has unshared; until then nsenter would
    # enter the host's namespaces, so wait until both differ.
    local i net mnt
    for ((i = 0; i < 300; i++)); do
        net="$(readlink "/proc/${SANDBOX_PID}/ns/net" 2>/dev/null || true)"
        mnt="$(readlink "/proc/${SANDBOX_PID}/ns/mnt" 2>/dev/null || true)"
        if [ -n "$net" ] && [ -n "$mnt" ] && [ "$net" != "$HOST_NET" ] && [ "$mnt" != "$HOST_MNT" ]; then
            break
        fi
        sleep 0.01
    done
    if ! { [ -n "$net" ] && [ -n "$mnt" ] && [ "$net" != "$HOST_NET" ] && [ "$mnt" != "$HOST_MNT" ]; }; then
        die "the sandbox's namespaces did not appear"
    fi
    if declare -F sandbox_prepare >/dev/null; then
        sandbox_prepare
    fi
}

# A/B as "N.Nx" (the other tool's figure over ours).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a" }'; }

# The version of an Ansible collection in the venv (e.g. ansible.posix).
collection_version() {
    local dir
    dir="$("${REPO}/.venv/bin/python" -c "import ansible_collections.$1 as m; print(list(m.__path__)[0])")"
    jq -r .collection_info.version "$dir/MANIFEST.json" 2>/dev/null || echo '?'
}

# The report's header: what ran, when, on what machine, under what load, with
# which software (ansible-core first, then "$2").
report_header() { # TITLE SOFTWARE
    local cpu os core
    cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    os="$(sed -n 's/^PRETTY_NAME="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' /etc/os-release)"
    core="$("${REPO}/.venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')"
    echo
    echo "$1, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) CPUs (${cpu:-unknown}), kernel $(uname -r), ${os}"
    echo "load average (1/5/15 min): ${LOAD_START} at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    echo "software: ansible-core ${core}, $2"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
