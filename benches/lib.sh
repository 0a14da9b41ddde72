# shellcheck shell=bash
# Shared by the benchmark scripts (source it after scripts/env.sh): private
# network + mount namespaces to run in, cleanup on any exit, and a median.
#
# The sourcing script defines, before its first sandbox_start:
#   host_state       prints what must not change on the machine; called here
#                    once at sourcing time and again on exit, where a
#                    difference fails the run (so host_state must be defined
#                    before this file is sourced)
#   HOST_WHAT        how to name that in the error ("the host firewall")
#   sandbox_prepare  (optional) run once a new sandbox has been entered
# and gets T (a mktemp dir, removed on exit), in_sandbox, in_sandbox_step,
# sandbox_start, sandbox_stop, say, die and median.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: ERROR: %s\n' "$*" >&2; exit 1; }

HOST_NET="$(readlink /proc/self/ns/net)"
HOST_MNT="$(readlink /proc/self/ns/mnt)"
HOST_BEFORE="$(host_state)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

T="$(mktemp -d /tmp/portmatrix-bench.XXXXXX)"
SANDBOX_PID="" # the holder of the current sandbox's namespaces
STEP_PID=""    # a long step running inside it (ansible-playbook, hyperfine)

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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

in_sandbox() { nsenter --target "$SANDBOX_PID" --net --mount -- "$@"; }

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

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
