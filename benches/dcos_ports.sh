#!/usr/bin/env bash
# Benchmark: the whole dcos_ports role (playbooks/dcos_ports.yml: plan,
# preflight, reserve, firewall, with the three static Rust binary modules)
# against what an operator writes without portmatrix, with ansible-core and
# collection modules (Python on the node), derived from the same matrix file.
# A benchmark, not a test: it prints figures and never judges them. It fails
# only when something is broken (a task fails, an apply changes nothing, a
# re-run changes anything, an end state differs from the matrix or between
# the two), so a broken role cannot produce figures.
#
# One DC/OS 1.13 master (open source), local connection, ansible_become=false,
# inventory host in group masters with dcos_ports_address=198.18.0.1 and
# cluster (and master) sources ["198.18.0.0/24"], iptables-nft for both:
#   A  playbooks/dcos_ports.yml as shipped (-e dcos_ports_firewall_backend=iptables
#      -e dcos_ports_firewall_persist=false: the sandbox has no systemd, and B persists no firewall)
#   B  one playbook reading roles/dcos_ports/files/matrix/1.13.yml with a
#      lookup: community.general.listen_ports_facts + ansible.builtin.assert
#      (no port of the matrix held), ansible.posix.sysctl
#      (net.ipv4.ip_local_reserved_ports, the master's ports from 32768 up, in
#      /etc/sysctl.d/90-dcos-ports.conf, reload), ansible.builtin.iptables
#      looping over the same accepts (port x source, with comments) and drops
#      (per port) in a chain dcos_ports (chain_management), IPv4 and IPv6
#      (ip_version: both where a rule has no source), jumped to from INPUT
# Each variant in a fresh sandbox: apply (empty firewall, empty reservation),
# then re-run (nothing to change); the playbook's wall clock and CPU time,
# median of BENCH_RUNS runs (B: BENCH_B_RUNS), and a playbook with no tasks.
# After every re-run the end state is read back (iptables-nft-save and
# ip6tables-nft-save: the set of (family, proto, port, source, target), the
# order accepts-then-drops, the INPUT hook; the kernel's reservation and the
# sysctl.d file) and compared with what the matrix says; A and B must agree.
#
# Everything that touches the kernel runs in a sandbox: a private network
# namespace (its own, empty firewall and ip_local_reserved_ports) plus a
# private mount namespace with tmpfs over /etc/sysctl.d and /run/sysctl.d,
# entered with nsenter; ansible-playbook itself runs inside, so the modules
# do. iptables-nft is picked through a PATH of symlinks, never through the
# machine's alternatives. Ansible's home and temp dirs live in a mktemp dir.
# Sandboxes and the temp dir are removed on exit, also on failure or Ctrl-C,
# and the host's firewall (nft list ruleset, the legacy tables it has), its
# reservation and its sysctl.d directories are checked to be unchanged.
#
# Usage (root): bash benches/dcos_ports.sh   (after make library)
#   BENCH_RUNS=3     runs of A and of the 0-task playbook (the median is reported)
#   BENCH_B_RUNS     runs of B (default BENCH_RUNS; about 1.5-2 min each)
set -euo pipefail
export LC_ALL=C.UTF-8 # "." as decimal point (EPOCHREALTIME, awk, printf); Ansible wants UTF-8

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh disable=SC1091
. "${REPO}/scripts/env.sh"
# shellcheck source=benches/lib.sh
. "${REPO}/benches/lib.sh"

RUNS="${BENCH_RUNS:-3}"
B_RUNS="${BENCH_B_RUNS:-$RUNS}"
PY="${REPO}/.venv/bin/python"
MATRIX="${REPO}/roles/dcos_ports/files/matrix/1.13.yml"
PLAYBOOK="${REPO}/playbooks/dcos_ports.yml"
HOST=dcos-master
ADDRESS=198.18.0.1
SOURCES='["198.18.0.0/24"]'
CHAIN=dcos_ports                        # the role's default dcos_ports_firewall_name; B uses the same
CONF=/etc/sysctl.d/90-dcos-ports.conf   # the role's default dcos_ports_sysctl_file; B uses the same

# --- preconditions -------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (network and mount namespaces)"
need_positive BENCH_RUNS "$RUNS"
need_positive BENCH_B_RUNS "$B_RUNS"
need_commands unshare nsenter findmnt nft iptables-nft ip6tables-nft iptables-nft-save ip6tables-nft-save \
    iptables-nft-restore ip6tables-nft-restore sysctl jq ansible-playbook
command -v ss >/dev/null || command -v netstat >/dev/null || die "listen_ports_facts needs ss or netstat"
for m in unit_bindings reserved_ports open_ports; do
    [ -x "${REPO}/library/$m" ] || die "library/$m missing: run 'make library'"
done
[ -x "$PY" ] || die "$PY missing: run scripts/setup.sh"
[ -f "$MATRIX" ] || die "$MATRIX missing"
cd "$REPO" # ansible.cfg (library, roles_path) as for any run from here

# --- the host's firewall and reservation, checked again on exit (read only) ---
host_state() {
    host_firewall_state
    host_sysctl_state
}
HOST_WHAT="the host firewall, reservation or ${SYSCTL_DIRS[*]}"
bench_begin

# Inside every new sandbox: tmpfs over the sysctl directories; nothing there yet.
sandbox_prepare() {
    sandbox_private_sysctl
    [ -z "$(in_sandbox nft list ruleset)" ] || die "a fresh sandbox should have an empty ruleset"
}

# iptables-nft for both, through PATH (as alternatives would): the role's
# open_ports runs `iptables`, ansible.builtin.iptables looks it up in PATH first.
mkdir -p "$T/home" "$T/local" "$T/remote"
iptables_variant_bin nft "$T/nft-bin"

# --- inventory and playbooks ------------------------------------------------------
cat >"$T/inventory.ini" <<EOF
[masters]
${HOST} ansible_connection=local ansible_become=false dcos_ports_address=${ADDRESS}
[agents]
[agents_public]
[all:vars]
dcos_ports_cluster_sources=${SOURCES}
# The same sources for the master-only ports, as B writes one loop for all
# cluster ports (the role's default would be the masters' addresses).
dcos_ports_master_sources=${SOURCES}
EOF
printf -- '- hosts: masters\n  gather_facts: false\n  tasks: []\n' >"$T/baseline.yml"

# B: what an operator writes with ansible-core and collection modules.
cat >"$T/operator.yml" <<'EOF'
# The DC/OS 1.13 master matrix without portmatrix: the same matrix file, read
# with a lookup, applied with ansible-core and collection modules.
- name: DC/OS ports, with ansible-core and collection modules
  hosts: masters
  gather_facts: false
  become: true
  vars:
    matrix: "{{ lookup('ansible.builtin.file', matrix_file) | from_yaml }}"
    # This node's entries: a master, open-source DC/OS.
    entries: "{{ matrix.ports | selectattr('nodes', 'contains', 'master') | rejectattr('enterprise') | list }}"
    public: "{{ entries | selectattr('sources', 'contains', 'public') | list }}"
    local_only: "{{ entries | selectattr('sources', 'equalto', ['localhost']) | list }}"
    cluster: "{{ entries | difference(public) | difference(local_only) }}"
    cluster_sources: "{{ dcos_ports_cluster_sources }}"
    # DC/OS ports from 32768 up, in the kernel's own format (adjacent ports
    # merged into ranges): ansible.posix.sysctl compares strings, so a plain
    # "61091,61092" would be reported changed on every run.
    reserved: >-
      {%- set ns = namespace(runs=[]) -%}
      {%- for p in entries | map(attribute='port') | select('ge', 32768) | unique | sort -%}
        {%- if ns.runs and ns.runs[-1][1] + 1 == p -%}
          {%- set ns.runs = ns.runs[:-1] + [[ns.runs[-1][0], p]] -%}
        {%- else -%}
          {%- set ns.runs = ns.runs + [[p, p]] -%}
        {%- endif -%}
      {%- endfor -%}
      {%- for r in ns.runs -%}
        {{ r[0] if r[0] == r[1] else r[0] ~ '-' ~ r[1] }}{{ '' if loop.last else ',' }}
      {%- endfor -%}
  tasks:
    - name: "Preflight: the listening sockets"
      community.general.listen_ports_facts:

    - name: "Preflight: no port of the matrix is held"
      ansible.builtin.assert:
        that: held | length == 0
        fail_msg: "held already: {{ held }}"
        quiet: true
      vars:
        held: >-
          {{ (ansible_facts.tcp_listen | map(attribute='port') | list
              | intersect(entries | selectattr('proto', 'eq', 'tcp') | map(attribute='port') | list))
           + (ansible_facts.udp_listen | map(attribute='port') | list
              | intersect(entries | selectattr('proto', 'eq', 'udp') | map(attribute='port') | list)) }}

    - name: "Reserve: DC/OS ports from 32768 up"
      ansible.posix.sysctl:
        name: net.ipv4.ip_local_reserved_ports
        value: "{{ reserved }}"
        sysctl_file: /etc/sysctl.d/90-dcos-ports.conf
        reload: true

    - name: "Firewall: the chain dcos_ports"
      ansible.builtin.iptables:
        chain: dcos_ports
        chain_management: true
        ip_version: both

    - name: "Firewall: established connections accepted"
      ansible.builtin.iptables:
        chain: dcos_ports
        ctstate: [ESTABLISHED, RELATED]
        jump: ACCEPT
        ip_version: both

    - name: "Firewall: public ports from anywhere"
      ansible.builtin.iptables:
        chain: dcos_ports
        protocol: "{{ item.proto }}"
        destination_port: "{{ item.port }}"
        comment: "{{ item.component }}"
        jump: ACCEPT
        ip_version: both
      loop: "{{ public }}"
      loop_control:
        label: "{{ item.port }}/{{ item.proto }}"

    - name: "Firewall: cluster ports from the cluster"
      ansible.builtin.iptables:
        chain: dcos_ports
        protocol: "{{ item.0.proto }}"
        destination_port: "{{ item.0.port }}"
        source: "{{ item.1 }}"
        comment: "{{ item.0.component }}"
        jump: ACCEPT
      loop: "{{ cluster | product(cluster_sources) | list }}"
      loop_control:
        label: "{{ item.0.port }}/{{ item.0.proto }} from {{ item.1 }}"

    - name: "Firewall: cluster and local-only ports from loopback"
      ansible.builtin.iptables:
        chain: dcos_ports
        protocol: "{{ item.proto }}"
        destination_port: "{{ item.port }}"
        in_interface: lo
        comment: "{{ item.component }}"
        jump: ACCEPT
        ip_version: both
      loop: "{{ cluster + local_only }}"
      loop_control:
        label: "{{ item.port }}/{{ item.proto }}"

    - name: "Firewall: every port of the matrix dropped from everyone else"
      ansible.builtin.iptables:
        chain: dcos_ports
        protocol: "{{ item.proto }}"
        destination_port: "{{ item.port }}"
        jump: DROP
        ip_version: both
      loop: "{{ entries }}"
      loop_control:
        label: "{{ item.port }}/{{ item.proto }}"

    - name: "Firewall: INPUT jumps to dcos_ports first"
      ansible.builtin.iptables:
        chain: INPUT
        jump: dcos_ports
        action: insert
        rule_num: 1
        ip_version: both
EOF

# --- the end state the matrix asks for -----------------------------------------------
# One line per (family, proto, port, source, target); "lo" = in on loopback,
# "any" = no source match. Every port is also dropped: the role's enforce
# drops every port of the node after the accepts (public ones too, where the
# drop is never reached), and B does the same.
"$PY" - "$MATRIX" "$SOURCES" "$T" <<'EOF'
import ipaddress, json, sys, yaml
matrix, sources, out = yaml.safe_load(open(sys.argv[1])), json.loads(sys.argv[2]), sys.argv[3]
entries = [e for e in matrix["ports"] if "master" in e["nodes"] and not e["enterprise"]]
def bounds(port):
    low, _, high = str(port).partition("-")
    return int(low), int(high or low)
lines, reserved = set(), set()
for fam, version in (("ipv4", 4), ("ipv6", 6)):
    lines.add(f"{fam} ct ESTABLISHED,RELATED - ACCEPT")
    lines.add(f"{fam} hook INPUT first -> dcos_ports")
    for e in entries:
        low, high = bounds(e["port"])
        for port in range(low, high + 1):
            if "public" in e["sources"]:
                lines.add(f"{fam} {e['proto']} {port} any ACCEPT")
            else:
                lines.add(f"{fam} {e['proto']} {port} lo ACCEPT")
                if set(e["sources"]) != {"localhost"}:
                    for s in sources:
                        net = ipaddress.ip_network(s)
                        if net.version == version:
                            lines.add(f"{fam} {e['proto']} {port} {net} ACCEPT")
            lines.add(f"{fam} {e['proto']} {port} any DROP")
for e in entries:
    low, high = bounds(e["port"])
    if not e.get("unit") or high >= 32768:
        reserved.update(range(low, high + 1))
runs = []
for p in sorted(reserved):
    if runs and runs[-1][1] + 1 == p:
        runs[-1][1] = p
    else:
        runs.append([p, p])
with open(f"{out}/expected-firewall", "w") as f:
    f.write("".join(l + "\n" for l in sorted(lines)))
with open(f"{out}/expected-reserved", "w") as f:
    f.write(",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) + "\n")
EOF
RESERVED="$(cat "$T/expected-reserved")"
N_TRIPLES=$(wc -l <"$T/expected-firewall")

# The firewall in the current sandbox as such lines (sorted, unique), plus a
# line naming anything unexpected: a rule the parser does not know, an accept
# after a drop, a rule after an unconditional return, a hook not first.
sandbox_firewall_state() {
    local family fam
    for family in iptables ip6tables; do
        fam=ipv4; [ "$family" = ip6tables ] && fam=ipv6
        in_sandbox "${family}-nft-save" -t filter \
            | sed -E 's/ -m comment --comment ("[^"]*"|[^ ]+)//' \
            | awk -v fam="$fam" -v chain="$CHAIN" '
                function expand(list,   n, i, parts, r, p) {
                    n = split(list, parts, ",")
                    for (i = 1; i <= n; i++) {
                        if (split(parts[i], r, ":") == 2) { for (p = r[1]; p <= r[2]; p++) ports[++np] = p }
                        else ports[++np] = parts[i]
                    }
                }
                $1 == "-A" && $2 == "INPUT" {
                    inputs++
                    if ($0 == "-A INPUT -j " chain) print fam " hook INPUT " (inputs == 1 ? "first" : "not-first") " -> " chain
                    else print fam " OTHER-INPUT-RULE " $0
                    next
                }
                $1 == "-A" && $2 == chain {
                    src = "any"; proto = ""; np = 0; target = ""; ct = ""; unknown = ""
                    delete ports
                    for (i = 3; i <= NF; i++) {
                        if ($i == "-s") src = $(++i)
                        else if ($i == "-i") src = $(++i)
                        else if ($i == "-p") proto = $(++i)
                        else if ($i == "-m") i++
                        else if ($i == "--dport" || $i == "--dports") expand($(++i))
                        else if ($i == "--ctstate") ct = $(++i)
                        else if ($i == "-j") target = $(++i)
                        else unknown = unknown " " $i
                    }
                    if (after_return) print fam " RULE-AFTER-RETURN " $0
                    if (unknown != "") { print fam " UNKNOWN-MATCH " $0; next }
                    if (target == "RETURN" && src == "any" && proto == "" && np == 0 && ct == "") { after_return = 1; next }
                    if (ct != "") {
                        n = split(ct, st, ","); line = ""
                        for (j = 1; j <= n; j++) seen[st[j]] = 1
                        print fam " ct " (("ESTABLISHED" in seen) ? "ESTABLISHED," : "") (("RELATED" in seen) ? "RELATED" : "") " - " target
                        delete seen
                        if (rules > 0) print fam " CT-RULE-NOT-FIRST"
                        rules++
                        next
                    }
                    rules++
                    if (target == "DROP") dropped = 1
                    if (target == "ACCEPT" && dropped) print fam " ACCEPT-AFTER-DROP " $0
                    if (np == 0) { print fam " NO-PORT " $0; next }
                    for (k = 1; k <= np; k++) print fam " " proto " " ports[k] " " src " " target
                }'
    done | sort -u
}

# Rules in the end state (both families, the hook included), into RULES.
count_rules() {
    RULES="$(in_sandbox iptables-nft-save -t filter | grep -c '^-A ') + $(in_sandbox ip6tables-nft-save -t filter | grep -c '^-A ')"
}

check_end_state() { # NAME
    sandbox_firewall_state >"$T/state-$1"
    if ! diff -u "$T/expected-firewall" "$T/state-$1" >"$T/diff-$1"; then
        head -n 40 "$T/diff-$1" >&2
        die "$1: the firewall differs from the matrix (- expected, + found)"
    fi
    local got
    got="$(in_sandbox cat "$PROC_RESERVED")"
    [ "$got" = "$RESERVED" ] || die "$1: reservation in the sandbox is '$got', expected '$RESERVED'"
    in_sandbox grep -Eq "^[[:space:]]*net[./]ipv4[./]ip_local_reserved_ports[[:space:]]*=[[:space:]]*${RESERVED}[[:space:]]*$" "$CONF" \
        || die "$1: $CONF in the sandbox does not set ip_local_reserved_ports = $RESERVED: $(in_sandbox cat "$CONF" 2>&1)"
}

# --- timed runs ---------------------------------------------------------------------
export ANSIBLE_HOME="$T/home" ANSIBLE_LOCAL_TEMP="$T/local"
ANSIBLE_ENV=(
    PATH="$T/nft-bin:$PATH"
    ANSIBLE_REMOTE_TMP="$T/remote"
    ANSIBLE_STDOUT_CALLBACK=ansible.posix.json
    ANSIBLE_NOCOLOR=1
    ANSIBLE_RETRY_FILES_ENABLED=0
)
declare -A EXTRA=(
    [baseline]=""
    [role]="-e dcos_ports_firewall_backend=iptables -e dcos_ports_firewall_persist=false"
    [operator]="-e matrix_file=${MATRIX}"
)
declare -A PLAYBOOK_OF=([baseline]="$T/baseline.yml" [role]="$PLAYBOOK" [operator]="$T/operator.yml")

# CPU time (user + system, ms) of all children this shell has waited for
# (ansible-playbook waits for its workers and they for the modules), into
# CHILD_CPU; `times` must run in this shell, not in $(...).
children_cpu_ms() {
    times >"$T/times"
    CHILD_CPU=$(awk 'NR == 2 {
        n = split($0, f, /[ ms]+/); t = 0
        for (i = 1; i <= n; i++) if (f[i] != "") { t += (i % 2 ? f[i] * 60 : f[i]) }
        printf "%.1f", t * 1000 }' "$T/times")
}

# One timed playbook run in the current sandbox: wall clock ms into MS, CPU ms into CPU.
timed_playbook() { # VARIANT OUT
    local t0 t1 c0 c1 extra
    read -r -a extra <<<"${EXTRA[$1]}"
    children_cpu_ms; c0=$CHILD_CPU
    t0=$EPOCHREALTIME
    if ! in_sandbox_step env "${ANSIBLE_ENV[@]}" ansible-playbook -i "$T/inventory.ini" \
        -e "ansible_python_interpreter=${PY}" "${extra[@]}" "${PLAYBOOK_OF[$1]}" >"$2" 2>"$2.err"; then
        tail -n 20 "$2.err" >&2
        jq -r '.. | objects | select(.failed? == true) | .msg? // empty' "$2" 2>/dev/null | head -n 5 >&2 || true
        die "$1: ansible-playbook failed"
    fi
    t1=$EPOCHREALTIME
    children_cpu_ms; c1=$CHILD_CPU
    MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }')
}

# apply: no failure, something changed; rerun: no failure, nothing changed
# (naming the tasks that did).
expect_stats() { # VARIANT OUT apply|rerun
    jq -e --arg h "$HOST" '.stats[$h] | .failures == 0 and .unreachable == 0' "$2" >/dev/null \
        || die "$1 ($3): $(jq -c .stats "$2")"
    local changed
    changed=$(jq -r --arg h "$HOST" '.stats[$h].changed' "$2")
    if [ "$3" = apply ] && [ "$changed" = 0 ]; then
        die "$1: the first run on a fresh sandbox changed nothing"
    fi
    if [ "$3" = rerun ] && [ "$changed" != 0 ]; then
        die "$1: the re-run is not idempotent, changed=$changed: $(jq -c '[.plays[].tasks[]
            | select(any(.hosts[]; .changed == true)) | .task.name]' "$2")"
    fi
}

# Tasks and task runs (loop items counted) of a run, into TASKS.
count_tasks() { # OUT
    TASKS=$(jq -r '[.plays[].tasks[] | .hosts[] | if (.results | type) == "array" and ((.results[0].ansible_loop_var? // null) != null)
        then (.results | length) else 1 end] | "\(length) (\(add))"' "$1")
}

for v in baseline role operator; do
    for f in apply rerun capply crerun; do : >"$T/$f-$v"; done
done
MAX=$((RUNS > B_RUNS ? RUNS : B_RUNS))
say "DC/OS 1.13 master: ${RUNS} runs of the role (A) and the 0-task playbook, ${B_RUNS} of the operator's playbook (B); fresh sandbox each"
for ((r = 1; r <= MAX; r++)); do
    line=""
    for v in baseline role operator; do
        if [ "$v" = operator ] && [ "$r" -gt "$B_RUNS" ]; then continue; fi
        if [ "$v" != operator ] && [ "$r" -gt "$RUNS" ]; then continue; fi
        sandbox_start
        timed_playbook "$v" "$T/out-$v-1.json"
        echo "$MS" >>"$T/apply-$v"
        echo "$CPU" >>"$T/capply-$v"
        if [ "$v" = baseline ]; then
            line+="0-task ${MS}"
            sandbox_stop
            continue
        fi
        expect_stats "$v" "$T/out-$v-1.json" apply
        line+=", $v ${MS}"
        timed_playbook "$v" "$T/out-$v-2.json"
        expect_stats "$v" "$T/out-$v-2.json" rerun
        echo "$MS" >>"$T/rerun-$v"
        echo "$CPU" >>"$T/crerun-$v"
        line+="/${MS}"
        check_end_state "$v"
        count_rules
        echo "$RULES" >"$T/rules-$v"
        count_tasks "$T/out-$v-1.json"
        echo "$TASKS" >"$T/tasks-$v"
        jq -r --arg h "$HOST" '.stats[$h].changed' "$T/out-$v-1.json" >"$T/changed-$v"
        sandbox_stop
    done
    say "  run $r/$MAX (ms; apply/re-run): $line"
done
cmp -s "$T/state-role" "$T/state-operator" || die "the two end states differ" # (both equal the expected one)

m() { median <"$T/$1"; }
BASE=$(m apply-baseline); CBASE=$(m capply-baseline)
A_APPLY=$(m apply-role); A_RERUN=$(m rerun-role); A_CAPPLY=$(m capply-role); A_CRERUN=$(m crerun-role)
B_APPLY=$(m apply-operator); B_RERUN=$(m rerun-operator); B_CAPPLY=$(m capply-operator); B_CRERUN=$(m crerun-operator)

[ "$(host_state)" = "$HOST_BEFORE" ] || die "$HOST_WHAT changed during the run"

# --- report ------------------------------------------------------------------------
report_header "dcos_ports role benchmark" \
    "ansible.posix $(collection_version ansible.posix), community.general $(collection_version community.general), $("$PY" -V), $(iptables-nft -V)"
echo "job: DC/OS 1.13 master (open source), local connection, ansible_become=false,"
echo "     cluster sources ${SOURCES}, iptables-nft; reservation ${RESERVED}"
echo "A: playbooks/dcos_ports.yml as shipped (plan, preflight, reserve, firewall;"
echo "   -e dcos_ports_firewall_backend=iptables -e dcos_ports_firewall_persist=false):"
echo "   unit_bindings, reserved_ports, open_ports"
echo "B: the same from the same matrix file with listen_ports_facts + assert, ansible.posix.sysctl,"
echo "   ansible.builtin.iptables (accepts per port x source, drops per port, IPv4 + IPv6)"
echo
if [ "$RUNS" = "$B_RUNS" ]; then
    printf '%-44s %16s %16s %9s\n' "median of ${RUNS} (ms)" "A: role" "B: operator" "ratio"
else
    printf '%-44s %16s %16s %9s\n' "median of ${RUNS} (A), ${B_RUNS} (B) (ms)" "A: role" "B: operator" "ratio"
fi
printf '%-44s %16s %16s %9s\n' "playbook, apply (fresh sandbox)" "$A_APPLY" "$B_APPLY" "$(ratio "$B_APPLY" "$A_APPLY")"
printf '%-44s %16s %16s %9s\n' "playbook, re-run (nothing to change)" "$A_RERUN" "$B_RERUN" "$(ratio "$B_RERUN" "$A_RERUN")"
printf '%-44s %16s %16s %9s\n' "  CPU time, apply (user + system)" "$A_CAPPLY" "$B_CAPPLY" "$(ratio "$B_CAPPLY" "$A_CAPPLY")"
printf '%-44s %16s %16s %9s\n' "  CPU time, re-run (user + system)" "$A_CRERUN" "$B_CRERUN" "$(ratio "$B_CRERUN" "$A_CRERUN")"
printf '%-44s %16s %16s\n' "playbook with 0 tasks" "$BASE" ""
printf '%-44s %16s %16s\n' "  CPU time (user + system)" "$CBASE" ""
printf '%-44s %16s %16s\n' "tasks (task runs, loop items counted)" "$(cat "$T/tasks-role")" "$(cat "$T/tasks-operator")"
printf '%-44s %16s %16s\n' "tasks changed on apply / re-run" "$(cat "$T/changed-role") / 0" "$(cat "$T/changed-operator") / 0"
printf '%-44s %16s %16s\n' "iptables rules, IPv4 + IPv6 (hook included)" "$(cat "$T/rules-role")" "$(cat "$T/rules-operator")"
echo
echo "ratio = B / A. Wall clock of ansible-playbook, and CPU time of it and all it ran (less"
echo "affected by other load); each variant in a fresh sandbox (network + mount namespace),"
echo "applied to an empty firewall and reservation, then re-run. Both end states checked after every"
echo "re-run: the same ${N_TRIPLES} (family, proto, port, source, target) entries as the matrix says,"
echo "accepts before drops, the INPUT hook first, the reservation in the kernel and in ${CONF}."
echo "host: firewall, reservation and ${SYSCTL_DIRS[0]} unchanged (all work ran in sandboxes)"
