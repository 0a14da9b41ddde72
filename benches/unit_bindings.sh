#!/usr/bin/env bash
# Benchmark: unit_bindings (static Rust binary module) on a busy node, against
# `ss -tlnpu` and community.general.listen_ports_facts (Python) on the same
# sockets. A benchmark, not a test: it prints figures and never judges them.
# It fails only when something is broken (a wrong verdict, a socket missing
# from an answer), so a broken module cannot produce figures.
#
# The node: a private network namespace holding BENCH_SOCKETS_PER_PROC x
# BENCH_PROCS listening sockets (default 10 x 500 = 5,000: per process 9 TCP
# on 0.0.0.0 and 1 UDP), held by BENCH_PROCS `sleep` processes, 5 in each of
# BENCH_PROCS/5 cgroups named like units (bench-000.service, ...) under a
# slice of the benchmark's own (cgroup v2). unit_bindings names each
# socket's unit from the kernel's cgroup id (no process's open files read
# when every expectation holds); ss -tlnpu reads every process's.
#
#   1. the command alone, per run (hyperfine, inside the namespace):
#      unit_bindings with 100 expectations (one listening port per unit, so
#      100 owners to find), unit_bindings with facts=true (every socket with
#      its owner and unit), and `ss -tlnpu` (every socket with its process)
#   2. per task through ansible-playbook (local connection): the two
#      unit_bindings tasks and community.general.listen_ports_facts, each a
#      one-task playbook minus an empty one; listen_ports_facts runs `ps`
#      twice per socket, so it gets BENCH_LPF_RUNS runs (default 1)
#
# Cleanup (trap, also on failure or Ctrl-C): every process in the
# benchmark's cgroups is killed by pid (they are all its own), the cgroups
# are removed, the namespace holder is stopped and the temp dir removed; the
# script then checks that nothing of it is left.
#
# Usage (root): bash benches/unit_bindings.sh   (after make library)
#   BENCH_PROCS=500  BENCH_SOCKETS_PER_PROC=10  BENCH_RUNS=3  BENCH_LPF_RUNS=1
set -euo pipefail
export LC_ALL=C.UTF-8

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh disable=SC1091
. "${REPO}/scripts/env.sh"
# shellcheck source=benches/lib.sh
. "${REPO}/benches/lib.sh"

PROCS="${BENCH_PROCS:-500}"
PER="${BENCH_SOCKETS_PER_PROC:-10}"
RUNS="${BENCH_RUNS:-3}"
LPF_RUNS="${BENCH_LPF_RUNS:-1}"
PROCS_PER_UNIT=5
BASE_PORT=20000
BIN="${REPO}/library/unit_bindings"
PY="${REPO}/.venv/bin/python"

# --- preconditions -------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (network namespace, cgroups)"
for v in PROCS PER RUNS LPF_RUNS; do
    need_positive "BENCH_${v}" "${!v}"
done
if [ "$PROCS" -gt 2000 ] || [ "$PER" -lt 2 ] || [ "$PER" -gt 20 ]; then
    die "bounded: at most 2000 processes, 2-20 sockets each"
fi
[ $((PROCS % PROCS_PER_UNIT)) = 0 ] || die "BENCH_PROCS must be a multiple of ${PROCS_PER_UNIT}"
UNITS=$((PROCS / PROCS_PER_UNIT))
SOCKETS=$((PROCS * PER))
[ $((BASE_PORT + SOCKETS)) -le 65535 ] || die "too many sockets for the port range"
[ "$UNITS" -ge 100 ] || die "100 expectations need at least 100 units (BENCH_PROCS >= 500)"
need_commands unshare nsenter ss ip hyperfine jq ansible-playbook python3 sleep
[ -x "$BIN" ] || die "$BIN missing: run 'make library'"
[ -x "$PY" ] || die "$PY missing: run scripts/setup.sh"
CGROOT=""
for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do
    if [ "$(stat -f -c %T "$d" 2>/dev/null)" = cgroup2fs ]; then CGROOT=$d; break; fi
done
[ -n "$CGROOT" ] || die "no cgroup v2 hierarchy mounted"

# A slice, as systemd puts units in one: a unit is the first past the slices.
CG="${CGROOT}/portmatrix-bench-$$.slice"
# What must not change on the machine: no cgroup of this benchmark is left.
host_state() { find "$CGROOT" -maxdepth 1 -name 'portmatrix-bench-*' | sort; }
HOST_WHAT="the set of portmatrix-bench cgroups under ${CGROOT}"
sandbox_prepare() { in_sandbox ip link set lo up; }
bench_begin

# Every process the benchmark put in its cgroups; only those are killed.
cgroup_pids() { cat "$CG"/*/cgroup.procs 2>/dev/null || true; }

# Runs before lib.sh's cleanup (which stops the step and the namespace
# holder, removes $T and compares host_state): the processes in the
# benchmark's cgroups, then the cgroups.
cleanup_cgroups() {
    local rc=$? i
    set +e
    if [ -d "$CG" ]; then
        for ((i = 0; i < 100; i++)); do
            [ -z "$(cgroup_pids)" ] && break
            # shellcheck disable=SC2046 # one argument per pid, split on purpose
            kill -9 $(cgroup_pids) 2>/dev/null
            sleep 0.05
        done
        rmdir "$CG"/*/ "$CG" 2>/dev/null
    fi
    (exit "$rc")
    cleanup
}
trap cleanup_cgroups EXIT

# --- the busy node -----------------------------------------------------------------
say "namespace with ${SOCKETS} sockets held by ${PROCS} processes in ${UNITS} unit cgroups"
sandbox_start
mkdir "$CG"
for ((u = 0; u < UNITS; u++)); do mkdir "$(printf '%s/bench-%03d.service' "$CG" "$u")"; done

# Enters each unit's cgroup, opens there the sockets of each of its
# processes (as a service makes its own: the kernel records the cgroup a
# socket is made in) and hands them to a `sleep` started there (which
# inherits them: cheap, and its name is what owners show).
in_sandbox python3 - "$CG" "$PROCS" "$PER" "$PROCS_PER_UNIT" "$BASE_PORT" <<'EOF'
import os, socket, subprocess, sys
cg, procs, per, per_unit, base = sys.argv[1], *map(int, sys.argv[2:])
for i in range(procs):
    with open(f"{cg}/bench-{i // per_unit:03d}.service/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    socks = []
    for j in range(per):
        udp = j == per - 1
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", base + i * per + j))
        if not udp:
            s.listen(16)
        socks.append(s)
    subprocess.Popen(["sleep", "infinity"], pass_fds=[s.fileno() for s in socks], stdin=subprocess.DEVNULL)
    for s in socks:
        s.close()
EOF
[ "$(cgroup_pids | wc -l)" = "$PROCS" ] || die "expected ${PROCS} processes in the unit cgroups"
got="$(in_sandbox ss -Htlnu | wc -l)"
[ "$got" = "$SOCKETS" ] || die "the namespace holds ${got} sockets, expected ${SOCKETS}"

# --- arguments -----------------------------------------------------------------------
# 100 expectations: the first TCP port of the first process of units 0..99.
jq -n --argjson base "$BASE_PORT" --argjson step $((PER * PROCS_PER_UNIT)) \
    '{expect: [range(100) | {port: ($base + . * $step), unit: ("bench-\(. | tostring | ("00" + .)[-3:]).service")}]}' \
    >"$T/expect100.json"
echo '{"expect": [], "facts": true}' >"$T/facts.json"

check_expect100() { # FILE
    jq -e '.failed == false and .mismatches == 0 and (.results | length) == 100
           and all(.results[]; .ok and .owners[0].unit == .unit)' "$1" >/dev/null \
        || die "unit_bindings (100 expectations) is not all ok: $(jq -c '{msg, mismatches}' "$1")"
}
check_facts() { # FILE (the module's own result, or under ansible_facts in a task)
    jq -e --argjson n "$SOCKETS" '.ansible_facts.port_bindings | length == $n
           and all(.[]; .unit | test("^bench-[0-9]{3}[.]service$"))' "$1" >/dev/null \
        || die "unit_bindings facts do not list ${SOCKETS} sockets with their units"
}

in_sandbox "$BIN" "$T/expect100.json" >"$T/once-100.json" || true
check_expect100 "$T/once-100.json"
in_sandbox "$BIN" "$T/facts.json" >"$T/once-facts.json"
check_facts "$T/once-facts.json"
got="$(in_sandbox ss -Htlnpu | grep -c 'users:(("sleep"')"
[ "$got" = "$SOCKETS" ] || die "ss -tlnpu names the process of ${got} sockets, expected ${SOCKETS}"

# --- 1. the command alone ----------------------------------------------------------
say "1/2 hyperfine inside the namespace: unit_bindings (100 expectations, facts) and ss -tlnpu"
in_sandbox_step hyperfine -N --style basic --warmup 3 --runs 30 --export-json "$T/hf.json" \
    -n "unit_bindings, 100 expectations" "$BIN $T/expect100.json" \
    -n "unit_bindings, facts: true" "$BIN $T/facts.json" \
    -n "ss -tlnpu" "ss -tlnpu" >&2
hf() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$T/hf.json"; }
M_100=$(hf "unit_bindings, 100 expectations")
M_FACTS=$(hf "unit_bindings, facts: true")
M_SS=$(hf "ss -tlnpu")

# --- 2. per task through ansible-playbook --------------------------------------------
mkdir -p "$T/home" "$T/local" "$T/remote"
export ANSIBLE_HOME="$T/home" ANSIBLE_LOCAL_TEMP="$T/local"
ANSIBLE_ENV=(ANSIBLE_REMOTE_TMP="$T/remote" ANSIBLE_STDOUT_CALLBACK=ansible.posix.json ANSIBLE_NOCOLOR=1
    ANSIBLE_RETRY_FILES_ENABLED=0)
playbook() { # NAME TASK_YAML
    {
        printf -- '- hosts: localhost\n  gather_facts: false\n  tasks:'
        if [ -n "$2" ]; then printf '\n    - name: %s\n%s\n' "$1" "$2"; else printf ' []\n'; fi
    } >"$T/$1.yml"
}
playbook empty ""
playbook ub100 "      unit_bindings: $(jq -c . "$T/expect100.json")"
playbook ubfacts "      unit_bindings: {expect: [], facts: true}"
playbook lpf "      community.general.listen_ports_facts: {}"

run_playbook() { # NAME -> MS (wall clock); result in $T/out-NAME.json
    local t0 t1
    t0=$EPOCHREALTIME
    in_sandbox_step env "${ANSIBLE_ENV[@]}" ansible-playbook -i localhost, -c local \
        -e "ansible_python_interpreter=${PY}" "$T/$1.yml" >"$T/out-$1.json" 2>"$T/out-$1.err" \
        || { tail -n 20 "$T/out-$1.err" >&2; die "$1: ansible-playbook failed"; }
    t1=$EPOCHREALTIME
    MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
}
task_result() { jq '.plays[0].tasks[0].hosts.localhost' "$T/out-$1.json"; }

say "2/2 ansible-playbook: ${RUNS} runs each of an empty playbook and the two unit_bindings tasks"
: >"$T/t-empty"; : >"$T/t-ub100"; : >"$T/t-ubfacts"; : >"$T/t-lpf"
for ((r = 1; r <= RUNS; r++)); do
    for v in empty ub100 ubfacts; do
        run_playbook "$v"
        echo "$MS" >>"$T/t-$v"
    done
    task_result ub100 | jq '. + {failed: (.failed // false)}' >"$T/r-ub100.json"
    check_expect100 "$T/r-ub100.json"
    task_result ubfacts >"$T/r-ubfacts.json"
    check_facts "$T/r-ubfacts.json"
    say "  run $r/$RUNS: empty $(tail -n1 "$T/t-empty") ms, 100 expectations $(tail -n1 "$T/t-ub100") ms, facts $(tail -n1 "$T/t-ubfacts") ms"
done
say "   listen_ports_facts: ${LPF_RUNS} run(s) (it runs ps twice per socket: minutes)"
for ((r = 1; r <= LPF_RUNS; r++)); do
    run_playbook lpf
    echo "$MS" >>"$T/t-lpf"
    task_result lpf >"$T/r-lpf.json"
    jq -e --argjson n "$SOCKETS" '(.ansible_facts.tcp_listen | length) + (.ansible_facts.udp_listen | length) == $n
        and all(.ansible_facts.tcp_listen[]; .name == "sleep")' "$T/r-lpf.json" >/dev/null \
        || die "listen_ports_facts did not list ${SOCKETS} sockets: $(jq -c '{msg}' "$T/r-lpf.json")"
    say "  listen_ports_facts run $r/$LPF_RUNS: $MS ms"
done
T_EMPTY=$(median <"$T/t-empty")
task_ms() { awk -v a="$(median <"$T/t-$1")" -v b="$T_EMPTY" 'BEGIN { printf "%.1f", a - b }'; }
P_100=$(task_ms ub100)
P_FACTS=$(task_ms ubfacts)
P_LPF=$(task_ms lpf)

# --- report --------------------------------------------------------------------------
ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
report_header "unit_bindings benchmark" \
    "community.general $(collection_version community.general), $(ss -V), $(hyperfine --version)"
echo "node: ${SOCKETS} sockets ($((PROCS * (PER - 1))) TCP listening, ${PROCS} UDP) held by ${PROCS} processes in ${UNITS} unit cgroups"
echo
printf '%-46s %12s %8s\n' "" "median (ms)" "ratio"
printf '%-46s %12s %8s\n' "command alone (hyperfine, 30 runs)" "" ""
printf '%-46s %12s %8s\n' "  unit_bindings, 100 expectations" "$(ms "$M_100")" "$(ratio "$M_SS" "$M_100")"
printf '%-46s %12s %8s\n' "  unit_bindings, facts: true" "$(ms "$M_FACTS")" "$(ratio "$M_SS" "$M_FACTS")"
printf '%-46s %12s %8s\n' "  ss -tlnpu" "$(ms "$M_SS")" ""
printf '%-46s %12s %8s\n' "per task through ansible-playbook" "" ""
printf '%-46s %12s %8s\n' "  unit_bindings, 100 expectations (${RUNS} runs)" "$P_100" "$(ratio "$P_LPF" "$P_100")"
printf '%-46s %12s %8s\n' "  unit_bindings, facts: true (${RUNS} runs)" "$P_FACTS" "$(ratio "$P_LPF" "$P_FACTS")"
printf '%-46s %12s %8s\n' "  listen_ports_facts (${LPF_RUNS} run)" "$P_LPF" ""
echo
echo "ratio = ss -tlnpu / the row (command alone) and listen_ports_facts / the row (per task):"
echo "how many times longer the other tool takes; below 1.0x the other tool is faster."
echo
echo "Per task = playbook with the one task - empty playbook (median ${T_EMPTY} ms), local connection."
echo "Every answer was checked: 100 of 100 expectations hold with their unit; facts and"
echo "listen_ports_facts list all ${SOCKETS} sockets; ss -tlnpu names the process of every socket."
