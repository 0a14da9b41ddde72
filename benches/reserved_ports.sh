#!/usr/bin/env bash
# Benchmark: reserved_ports (static Rust binary module) against
# ansible.posix.sysctl (Python) for the same job, setting
# net.ipv4.ip_local_reserved_ports to the DC/OS agent's Mesos port ranges.
# A benchmark, not a test: it prints figures and never judges them. It fails
# only when something is broken (a task fails, the reservation is wrong), so a
# broken module cannot produce figures.
#
#   1. per task through Ansible: one ansible-playbook run (local connection)
#      with N tasks of each module, all making the same reservation (the first
#      changes it, the rest are idempotent), minus a playbook with no tasks;
#      median of BENCH_RUNS runs, each in a fresh sandbox
#   2. the module alone, per invocation (hyperfine, idempotent re-run):
#      `library/reserved_ports ARGS_FILE` against `python AnsiballZ_sysctl.py`,
#      both files as Ansible left them with ANSIBLE_KEEP_REMOTE_FILES=1
#   3. bytes Ansible copies to the target per task: the binary against the
#      AnsiballZ payload
#
# Everything that touches the kernel runs in a sandbox: a private network
# namespace (its own, empty ip_local_reserved_ports) plus a private mount
# namespace with tmpfs over /etc/sysctl.d (and /run/sysctl.d if it exists), so
# the machine's own reservation and files are never read or written. Ansible's
# home, local and remote temp dirs live in a mktemp dir. Sandboxes and the temp
# dir are removed on exit, also on failure or Ctrl-C, and the host's
# reservation and sysctl directories are checked to be unchanged.
#
# Usage (root): make bench   or   bash benches/reserved_ports.sh
#   BENCH_TASKS=50   tasks per playbook
#   BENCH_RUNS=3     playbook runs per variant (the median is reported)
set -euo pipefail
export LC_ALL=C.UTF-8  # "." as decimal point (EPOCHREALTIME, awk, printf); Ansible wants UTF-8

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh disable=SC1091
. "${REPO}/scripts/env.sh"
# shellcheck source=benches/lib.sh
. "${REPO}/benches/lib.sh"

N="${BENCH_TASKS:-50}"
RUNS="${BENCH_RUNS:-3}"
PORTS="1025-2180,2182-3887,3889-5049,5052-8079,8082-8180,8182-32000"
KEY="net.ipv4.ip_local_reserved_ports"
CONF="/etc/sysctl.d/90-reserved-ports.conf"  # the reserved_ports default; sysctl gets the same
BIN="${REPO}/library/reserved_ports"
PY="${REPO}/.venv/bin/python"


# --- preconditions -------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (network and mount namespaces)"
need_positive BENCH_TASKS "$N"
need_positive BENCH_RUNS "$RUNS"
need_commands unshare nsenter findmnt sysctl hyperfine jq ansible-playbook
[ -x "$BIN" ] || die "$BIN missing: run 'make library'"
[ -x "$PY" ] || die "$PY missing: run scripts/setup.sh"

# --- host state, checked again on exit; sandboxes (benches/lib.sh) ---------------
host_state() { host_sysctl_state; }
HOST_WHAT="the host reservation or ${SYSCTL_DIRS[*]}"
bench_begin

# Inside every new sandbox: tmpfs over the sysctl directories.
sandbox_prepare() { sandbox_private_sysctl; }

# The kernel value and the file inside the sandbox must hold the reservation.
check_reservation() {
    local what=$1 got
    got="$(in_sandbox cat "$PROC_RESERVED")"
    [ "$got" = "$PORTS" ] || die "$what: reservation in the sandbox is '$got', expected '$PORTS'"
    in_sandbox grep -Eq "^[[:space:]]*${KEY//./[./]}[[:space:]]*=[[:space:]]*${PORTS}[[:space:]]*$" "$CONF" \
        || die "$what: $CONF in the sandbox does not set $KEY = $PORTS"
}

# --- playbooks -------------------------------------------------------------------
mkdir -p "$T/home" "$T/local" "$T/remote" "$T/keep" "$T/pytmp"
write_playbook() { # FILE MODULE COUNT
    local file=$1 module=$2 count=$3 i
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:'
        [ "$count" -gt 0 ] || printf ' []'
        printf '\n'
        for ((i = 1; i <= count; i++)); do
            case "$module" in
                reserved_ports)
                    printf '    - name: reserve the Mesos task ports (%d)\n' "$i"
                    printf '      reserved_ports:\n'
                    printf '        ports: ["%s"]\n' "${PORTS//,/\", \"}"
                    ;;
                sysctl)
                    printf '    - name: reserve the Mesos task ports (%d)\n' "$i"
                    printf '      ansible.posix.sysctl:\n'
                    printf '        name: %s\n' "$KEY"
                    printf '        value: "%s"\n' "$PORTS"
                    printf '        sysctl_file: %s\n' "$CONF"
                    printf '        reload: true\n'
                    ;;
            esac
        done
    } >"$file"
}
write_playbook "$T/baseline.yml" none 0
write_playbook "$T/reserved_ports.yml" reserved_ports "$N"
write_playbook "$T/sysctl.yml" sysctl "$N"
write_playbook "$T/capture.yml" reserved_ports 1
write_playbook "$T/capture-sysctl.yml" sysctl 1
sed -n '/^  tasks:/,$p' "$T/capture-sysctl.yml" | tail -n +2 >>"$T/capture.yml"

# Nothing lands in ~/.ansible (also not from `ansible-playbook --version`).
export ANSIBLE_HOME="$T/home" ANSIBLE_LOCAL_TEMP="$T/local"
# Environment of every ansible-playbook run.
ANSIBLE_ENV=(
    ANSIBLE_REMOTE_TMP="$T/remote"
    ANSIBLE_STDOUT_CALLBACK=ansible.posix.json
    ANSIBLE_NOCOLOR=1
    ANSIBLE_RETRY_FILES_ENABLED=0
    ANSIBLE_KEEP_REMOTE_FILES=0
    ANSIBLE_PIPELINING=0
)
playbook() { # PLAYBOOK OUT [extra env...]
    local pb=$1 out=$2
    shift 2
    in_sandbox_step env "${ANSIBLE_ENV[@]}" "$@" ansible-playbook -i localhost, -c local \
        -e "ansible_python_interpreter=${PY}" "$pb" >"$out" 2>"$out.err"
}

# CPU time (user + system, ms) of all children this shell has waited for;
# ansible-playbook waits for its workers and they for the modules, so the
# difference around a run is the whole run's CPU time, whatever else the
# machine is busy with. Into CHILD_CPU; `times` must run in this shell, not
# in a pipeline or $(...) (a forked shell has no children of its own yet).
children_cpu_ms() {
    times >"$T/times"
    CHILD_CPU=$(awk 'NR == 2 {
        n = split($0, f, /[ ms]+/); t = 0
        for (i = 1; i <= n; i++) if (f[i] != "") { t += (i % 2 ? f[i] * 60 : f[i]) }
        printf "%.1f", t * 1000 }' "$T/times")
}

# One timed run of a playbook in a fresh sandbox; wall-clock ms into MS, CPU
# ms into CPU.
# Fails unless every task succeeded and the reservation is in place.
# (Not called in $(...): a subshell would hide SANDBOX_PID from cleanup.)
timed_run() { # NAME TASKS [extra env...]
    local name=$1 tasks=$2 out t0 t1 c0 c1
    shift 2
    out="$T/out-${name}.json"
    sandbox_start
    children_cpu_ms; c0=$CHILD_CPU
    t0=$EPOCHREALTIME
    if ! playbook "$T/${name}.yml" "$out" "$@"; then
        tail -n 20 "$out.err" >&2
        jq -r '.. | objects | select(.failed? == true) | .msg? // empty' "$out" 2>/dev/null | head -n 5 >&2 || true
        die "$name: ansible-playbook failed"
    fi
    t1=$EPOCHREALTIME
    children_cpu_ms; c1=$CHILD_CPU
    if [ "$tasks" -gt 0 ]; then
        jq -e --argjson n "$tasks" '.stats.localhost | .ok == $n and .failures == 0 and .unreachable == 0' \
            "$out" >/dev/null || die "$name: expected $tasks ok tasks: $(jq -c .stats "$out")"
        check_reservation "$name"
        jq -r '.stats.localhost.changed' "$out" >"$T/changed-${name}"
    fi
    sandbox_stop
    MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }')
}

# --- 1. per task through Ansible --------------------------------------------------
say "1/3 ansible-playbook: ${RUNS} runs each of 0 tasks, ${N} x reserved_ports, ${N} x ansible.posix.sysctl (fresh sandbox each)"
: >"$T/t-baseline"; : >"$T/t-reserved_ports"; : >"$T/t-sysctl"
: >"$T/c-baseline"; : >"$T/c-reserved_ports"; : >"$T/c-sysctl"
for ((r = 1; r <= RUNS; r++)); do
    # interleaved, so slow drift of the machine hits all three alike
    line=""
    for v in baseline reserved_ports sysctl; do
        if [ "$v" = baseline ]; then timed_run "$v" 0; else timed_run "$v" "$N"; fi
        echo "$MS" >>"$T/t-$v"
        echo "$CPU" >>"$T/c-$v"
        line+="${line:+, }$v ${MS} ms (CPU ${CPU} ms)"
    done
    say "  run $r/$RUNS: $line"
done
per_task() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }'; }
T_BASE=$(median <"$T/t-baseline")
T_RP=$(median <"$T/t-reserved_ports")
T_SY=$(median <"$T/t-sysctl")
PT_RP=$(per_task "$T_RP" "$T_BASE")
PT_SY=$(per_task "$T_SY" "$T_BASE")
C_BASE=$(median <"$T/c-baseline")
PC_RP=$(per_task "$(median <"$T/c-reserved_ports")" "$C_BASE")
PC_SY=$(per_task "$(median <"$T/c-sysctl")" "$C_BASE")
CH_RP=$(cat "$T/changed-reserved_ports")
CH_SY=$(cat "$T/changed-sysctl")

# --- 2 and 3. the module alone, and what Ansible copies ----------------------------
say "2/3 capture: one task of each with ANSIBLE_KEEP_REMOTE_FILES=1, then hyperfine on the kept files"
sandbox_start
playbook "$T/capture.yml" "$T/out-capture.json" ANSIBLE_KEEP_REMOTE_FILES=1 ANSIBLE_REMOTE_TMP="$T/keep" \
    || { tail -n 20 "$T/out-capture.json.err" >&2; die "capture: ansible-playbook failed"; }
jq -e '.stats.localhost | .ok == 2 and .failures == 0' "$T/out-capture.json" >/dev/null \
    || die "capture: expected 2 ok tasks: $(jq -c .stats "$T/out-capture.json")"
check_reservation capture
# Each task's remote dir: the binary module's holds a copy of the binary and
# `args` (the task's JSON arguments); the Python one holds AnsiballZ_sysctl.py.
ARGS_FILE="$(find "$T/keep" -type f -name args | head -n 1)"
SHIPPED_BIN="$(find "$T/keep" -type f -name AnsiballZ_reserved_ports | head -n 1)"
ANSIBALLZ="$(find "$T/keep" -type f -name AnsiballZ_sysctl.py | head -n 1)"
if [ -z "$ARGS_FILE" ] || [ -z "$SHIPPED_BIN" ] || [ -z "$ANSIBALLZ" ]; then
    die "kept remote files not found under $T/keep: $(find "$T/keep" -type f | tr '\n' ' ')"
fi
cmp -s "$BIN" "$SHIPPED_BIN" || die "the binary Ansible copied differs from $BIN"

# One idempotent run of each, checked, before timing them.
in_sandbox env TMPDIR="$T/pytmp" "$BIN" "$ARGS_FILE" >"$T/once-bin.json"
jq -e --arg p "$PORTS" '.changed == false and (.failed // false) == false and .reserved == $p' "$T/once-bin.json" >/dev/null \
    || die "reserved_ports re-run is not an idempotent success: $(cat "$T/once-bin.json")"
in_sandbox env TMPDIR="$T/pytmp" "$PY" "$ANSIBALLZ" >"$T/once-py.json"
jq -e '.changed == false and (.failed // false) == false' "$T/once-py.json" >/dev/null \
    || die "AnsiballZ_sysctl.py re-run is not an idempotent success: $(cat "$T/once-py.json")"

# -N: no intermediate shell, so a ~1 ms command is not swamped by sh's start-up.
in_sandbox_step env TMPDIR="$T/pytmp" hyperfine -N --style basic --warmup 20 --runs 200 \
    --export-json "$T/hf-bin.json" -n "reserved_ports ARGS_FILE" "$BIN $ARGS_FILE" >&2
in_sandbox_step env TMPDIR="$T/pytmp" hyperfine -N --style basic --warmup 5 --runs 30 \
    --export-json "$T/hf-py.json" -n "python AnsiballZ_sysctl.py" "$PY $ANSIBALLZ" >&2
check_reservation hyperfine
sandbox_stop
hf() { awk -v s="$(jq -r ".results[0].$2" "$1")" 'BEGIN { printf "%.2f", s * 1000 }'; }
M_RP=$(hf "$T/hf-bin.json" median); S_RP=$(hf "$T/hf-bin.json" stddev)
M_SY=$(hf "$T/hf-py.json" median); S_SY=$(hf "$T/hf-py.json" stddev)

[ "$(host_state)" = "$HOST_BEFORE" ] || die "the host reservation or ${SYSCTL_DIRS[*]} changed during the run"
HOST_RESERVED="$(cat "$PROC_RESERVED")"

say "3/3 sizes"
SZ_RP=$(stat -c %s "$SHIPPED_BIN")
SZ_SY=$(stat -c %s "$ANSIBALLZ")
SZ_ARGS=$(stat -c %s "$ARGS_FILE")

# --- report ------------------------------------------------------------------------
kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
report_header "reserved_ports benchmark" \
    "ansible.posix $(collection_version ansible.posix), $("$PY" -V), $(hyperfine --version)"
echo "job: ${KEY} = ${PORTS}; persisted to ${CONF}"
echo "     reserved_ports (defaults) vs ansible.posix.sysctl (sysctl_file as above, reload: true)"
echo
printf '%-44s %16s %16s %9s\n' "" "reserved_ports" "posix.sysctl" "ratio"
printf '%-44s %16s %16s %9s\n' "playbook, ${N} tasks, median of ${RUNS} (ms)" "$T_RP" "$T_SY" ""
printf '%-44s %16s %16s %9s\n' "  same playbook with 0 tasks (ms)" "$T_BASE" "$T_BASE" ""
printf '%-44s %16s %16s %9s\n' "  tasks reporting changed" "$CH_RP of $N" "$CH_SY of $N" ""
printf '%-44s %16s %16s %9s\n' "per task through Ansible (ms)" "$PT_RP" "$PT_SY" "$(ratio "$PT_SY" "$PT_RP")"
printf '%-44s %16s %16s %9s\n' "  CPU time per task, user + system (ms)" "$PC_RP" "$PC_SY" "$(ratio "$PC_SY" "$PC_RP")"
printf '%-44s %16s %16s %9s\n' "module alone, median per run (ms)" "$M_RP" "$M_SY" "$(ratio "$M_SY" "$M_RP")"
printf '%-44s %16s %16s %9s\n' "  standard deviation (ms)" "$S_RP" "$S_SY" ""
printf '%-44s %16s %16s %9s\n' "file Ansible copies per task (KiB)" "$(kib "$SZ_RP")" "$(kib "$SZ_SY")" "$(ratio "$SZ_SY" "$SZ_RP")"
echo
echo "ratio = ansible.posix.sysctl / reserved_ports. Per task = (playbook - 0-task playbook) / ${N},"
echo "wall clock, and CPU time of ansible-playbook and all it ran (less affected by other load);"
echo "the first task changes the reservation, the other $((N - 1)) are idempotent. Module alone:"
echo "hyperfine, idempotent re-run of the files Ansible left with ANSIBLE_KEEP_REMOTE_FILES=1"
echo "(the binary with its ${SZ_ARGS}-byte args file; AnsiballZ_sysctl.py with ${PY##*/} from the venv)."
echo "Copied: the binary (${SZ_RP} bytes) plus its args file, against AnsiballZ_sysctl.py (${SZ_SY} bytes,"
echo "the arguments inside); a smaller ratio than 1 means the Python payload is the smaller one."
echo "host: ip_local_reserved_ports '${HOST_RESERVED}' and ${SYSCTL_DIRS[0]} unchanged (all work ran in sandboxes)"
