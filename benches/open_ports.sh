#!/usr/bin/env bash
# Benchmark: open_ports (static Rust binary module) against
# ansible.builtin.iptables (Python) for the same job, and open_ports alone on
# a large matrix. A benchmark, not a test: it prints figures and never judges
# them. It fails only when something is broken (a task fails, a rule is
# missing, a re-run is not idempotent), so a broken module cannot produce
# figures.
#
#   1. the DC/OS 1.13 master matrix (every TCP and UDP port of the "All nodes"
#      and "Master" tables; cluster sources a /16 plus three master /32s,
#      master-only ports from the /32s, localhost ports on loopback, 80/443
#      from anywhere) through ansible-playbook (local connection): one
#      open_ports task against one ansible.builtin.iptables task looping over
#      the same rules, one rule per item; apply (fresh firewall) and re-run
#      (nothing to do): the task's duration as Ansible records it, and the
#      playbook's wall clock, median of BENCH_RUNS runs
#   2. open_ports alone (hyperfine on the binary with an args file): apply and
#      re-apply of 1,000 ports x 1,000 sources, with nftables, iptables-nft and
#      iptables-legacy
#
# Everything that touches the firewall runs in a sandbox: a private network
# namespace (its own, empty nftables and iptables) plus a private mount
# namespace, entered with nsenter; iptables-legacy is picked through a PATH of
# symlinks, never through the machine's alternatives. Ansible's home and temp
# dirs live in a mktemp dir. Sandboxes and the temp dir are removed on exit,
# also on failure or Ctrl-C, and the host's firewall (nft list ruleset, the
# legacy tables it has) is checked to be unchanged.
#
# Usage (root): bash benches/open_ports.sh   (after make library)
#   BENCH_RUNS=3     playbook runs per variant (the median is reported)
set -euo pipefail
export LC_ALL=C.UTF-8 # "." as decimal point (EPOCHREALTIME, awk, printf); Ansible wants UTF-8

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh disable=SC1091
. "${REPO}/scripts/env.sh"
# shellcheck source=benches/lib.sh
. "${REPO}/benches/lib.sh"

RUNS="${BENCH_RUNS:-3}"
BIN="${REPO}/library/open_ports"
PY="${REPO}/.venv/bin/python"


[ "$(id -u)" = 0 ] || die "must run as root (network and mount namespaces)"
need_positive BENCH_RUNS "$RUNS"
need_commands unshare nsenter nft iptables-nft iptables-legacy hyperfine jq ansible-playbook
[ -x "$BIN" ] || die "$BIN missing: run 'make library'"

# --- the host's firewall, checked again on exit (read only: no table is loaded) ---
host_state() { host_firewall_state; }
HOST_WHAT="the host firewall"
bench_begin

sandbox_prepare() {
    [ -z "$(in_sandbox nft list ruleset)" ] || die "a fresh sandbox should have an empty ruleset"
}

# iptables-legacy for the module, through its PATH (as alternatives would).
mkdir -p "$T/home" "$T/local" "$T/remote"
iptables_variant_bin legacy "$T/legacy-bin"
LEGACY_PATH="$T/legacy-bin:/usr/bin:/bin"

# --- 1. the DC/OS master matrix ----------------------------------------------------
CLUSTER=198.18.0.0/16
MASTERS=(198.19.0.11 198.19.0.12 198.19.0.13)
TCP_ANY=(80 443)
TCP_CLUSTER=(53 61003 61091 61420 62080 62501 2181 3888 5050 8080 8181 8443 9090 9443 61053 61430)
TCP_MASTERS=(8201 15101 15201 26257)
TCP_LOCAL=(7070 8101 8123 8200 8888 9990 15055)
UDP_CLUSTER=(53 64000 61053)
CLUSTER_SOURCES=("$CLUSTER" "${MASTERS[@]}")

join() { local IFS=", "; echo "$*"; }
list() { local out="" x; for x in "$@"; do out+="${out:+, }\"$x\""; done; echo "[$out]"; }

write_open_ports() { # FILE BACKEND
    cat >"$1" <<EOF
- hosts: localhost
  gather_facts: false
  tasks:
    - name: DC/OS master ports
      open_ports:
        backend: $2
        # The sandbox has no systemd, and ansible.builtin.iptables persists nothing.
        persist: false
        rules:
          - ports: [$(join "${TCP_ANY[@]}")]
            comment: Admin Router
          - ports: [$(join "${TCP_CLUSTER[@]}")]
            sources: $(list "${CLUSTER_SOURCES[@]}")
          - ports: [$(join "${TCP_MASTERS[@]}")]
            sources: $(list "${MASTERS[@]}")
          - ports: [$(join "${TCP_LOCAL[@]}")]
            sources: [loopback]
          - ports: [$(join "${UDP_CLUSTER[@]}")]
            proto: udp
            sources: $(list "${CLUSTER_SOURCES[@]}")
EOF
}

# The same accepts, one ansible.builtin.iptables item each, as a user would
# write them (IPv4 only: ansible.builtin.iptables does one family per task).
ITEMS=()
item() { ITEMS+=("        - {proto: $1, port: \"$2\", $3}"); }
for p in "${TCP_ANY[@]}"; do item tcp "$p" "comment: Admin Router"; done
for s in "${CLUSTER_SOURCES[@]}"; do for p in "${TCP_CLUSTER[@]}"; do item tcp "$p" "source: $s"; done; done
for s in "${MASTERS[@]}"; do for p in "${TCP_MASTERS[@]}"; do item tcp "$p" "source: $s"; done; done
for p in "${TCP_LOCAL[@]}"; do item tcp "$p" "iface: lo"; done
for s in "${CLUSTER_SOURCES[@]}"; do for p in "${UDP_CLUSTER[@]}"; do item udp "$p" "source: $s"; done; done
NITEMS=${#ITEMS[@]}
{
    cat <<'EOF'
- hosts: localhost
  gather_facts: false
  tasks:
    - name: DC/OS master ports
      ansible.builtin.iptables:
        chain: INPUT
        protocol: "{{ item.proto }}"
        destination_port: "{{ item.port }}"
        source: "{{ item.source | default(omit) }}"
        in_interface: "{{ item.iface | default(omit) }}"
        comment: "{{ item.comment | default(omit) }}"
        jump: ACCEPT
      loop:
EOF
    printf '%s\n' "${ITEMS[@]}"
} >"$T/builtin.yml"
write_open_ports "$T/op-iptables.yml" iptables
write_open_ports "$T/op-nftables.yml" nftables
printf -- '- hosts: localhost\n  gather_facts: false\n  tasks: []\n' >"$T/baseline.yml"

export ANSIBLE_HOME="$T/home" ANSIBLE_LOCAL_TEMP="$T/local"
ANSIBLE_ENV=(
    ANSIBLE_REMOTE_TMP="$T/remote"
    ANSIBLE_STDOUT_CALLBACK=ansible.posix.json
    ANSIBLE_NOCOLOR=1
    ANSIBLE_RETRY_FILES_ENABLED=0
)

# One timed playbook run in the current sandbox; wall-clock ms into MS.
timed_playbook() { # PLAYBOOK OUT
    local t0 t1
    t0=$EPOCHREALTIME
    if ! in_sandbox_step env "${ANSIBLE_ENV[@]}" ansible-playbook -i localhost, -c local \
        -e "ansible_python_interpreter=${PY}" "$1" >"$2" 2>"$2.err"; then
        tail -n 20 "$2.err" >&2
        jq -r '.. | objects | select(.failed? == true) | .msg? // empty' "$2" 2>/dev/null | head -n 5 >&2 || true
        die "$1: ansible-playbook failed"
    fi
    t1=$EPOCHREALTIME
    MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    # The task's own duration as Ansible records it (start and end, UTC).
    TASK_MS=$(jq -r '[.plays[0].tasks[0].task.duration // empty | .start, .end
        | split("T")[1] | rtrimstr("Z") | split(":") | map(tonumber) | .[0] * 3600 + .[1] * 60 + .[2]]
        | if length == 2 then (.[1] - .[0]) * 1000 else "-" end' "$2")
    [ "$TASK_MS" = "-" ] || TASK_MS=$(awk -v t="$TASK_MS" 'BEGIN { printf "%.1f", t }')
}

expect_changed() { # OUT N
    jq -e --argjson n "$2" '.stats.localhost | .changed == $n and .failures == 0' "$1" >/dev/null \
        || die "$1: expected $2 changed task(s): $(jq -c .stats "$1")"
}

check_iptables_rules() { # WHAT
    local saved
    saved="$(in_sandbox iptables-save -t filter)"
    case "$1" in
        builtin)
            [ "$(grep -c '^-A INPUT ' <<<"$saved")" = "$NITEMS" ] \
                || die "builtin: expected $NITEMS INPUT rules, got: $(grep -c '^-A INPUT ' <<<"$saved")"
            ;;
        open_ports)
            grep -qx -- '-A INPUT -m comment --comment "portmatrix open_ports open_ports" -j open_ports' <<<"$saved" \
                || die "open_ports: no hook"
            grep -qx -- "-A open_ports -s ${MASTERS[2]}/32 -p tcp -m multiport --dports $(join "${TCP_MASTERS[@]}" | tr -d ' ') -j ACCEPT" <<<"$saved" \
                || die "open_ports: master-only rule missing: $saved"
            ;;
    esac
}

say "1/2 DC/OS master matrix: ${RUNS} runs each (fresh sandbox), ${NITEMS} rules for ansible.builtin.iptables"
for v in baseline op-iptables op-nftables builtin; do
    for f in apply rerun pb-apply pb-rerun; do : >"$T/$f-$v"; done
done
for ((r = 1; r <= RUNS; r++)); do
    line=""
    for v in baseline op-iptables op-nftables builtin; do
        sandbox_start
        timed_playbook "$T/$v.yml" "$T/out-$v-1.json"
        echo "$MS" >>"$T/pb-apply-$v"
        if [ "$v" = baseline ]; then
            line+="0-task playbook ${MS}"
            sandbox_stop
            continue
        fi
        echo "$TASK_MS" >>"$T/apply-$v"
        line+=", $v ${TASK_MS}"
        expect_changed "$T/out-$v-1.json" 1
        timed_playbook "$T/$v.yml" "$T/out-$v-2.json"
        expect_changed "$T/out-$v-2.json" 0
        echo "$TASK_MS" >>"$T/rerun-$v"
        echo "$MS" >>"$T/pb-rerun-$v"
        line+="/${TASK_MS}"
        case "$v" in
            builtin) check_iptables_rules builtin ;;
            op-iptables) check_iptables_rules open_ports ;;
            op-nftables) in_sandbox nft list table inet open_ports | grep 'ip saddr @r3_v4 tcp dport @r3_ports accept' >/dev/null \
                || die "open_ports (nftables): master-only rule missing" ;;
        esac
        sandbox_stop
    done
    say "  run $r/$RUNS (ms; task apply/re-run): $line"
done
m() { median <"$T/$1"; }
A_OPI=$(m apply-op-iptables); R_OPI=$(m rerun-op-iptables)
A_OPN=$(m apply-op-nftables); R_OPN=$(m rerun-op-nftables)
A_BI=$(m apply-builtin); R_BI=$(m rerun-builtin)
PA_OPI=$(m pb-apply-op-iptables); PA_OPN=$(m pb-apply-op-nftables); PA_BI=$(m pb-apply-builtin)
PR_OPI=$(m pb-rerun-op-iptables); PR_OPN=$(m pb-rerun-op-nftables); PR_BI=$(m pb-rerun-builtin)
BASE=$(m pb-apply-baseline)

# --- 2. 1,000 ports x 1,000 sources, the module alone --------------------------------
say "2/2 1,000 ports x 1,000 sources: open_ports alone, apply and re-apply (hyperfine)"
"$PY" - "$T" <<'EOF'
import json, sys
ports = [20000 + 2 * i for i in range(1000)]                               # no two adjacent
sources = ["198.18.%d.%d" % (i // 128, 2 * (i % 128) + 1) for i in range(1000)]  # no two adjacent
for backend in ("nftables", "iptables"):
    with open(f"{sys.argv[1]}/big-{backend}.json", "w") as f:
        json.dump({"backend": backend, "persist": False, "rules": [{"ports": ports, "sources": sources}]}, f)
    with open(f"{sys.argv[1]}/absent-{backend}.json", "w") as f:
        json.dump({"backend": backend, "state": "absent"}, f)
EOF
big() { # VARIANT RUNS -> apply and re-apply medians (ms) into BIG_A, BIG_R
    local variant=$1 runs=$2 backend=iptables path=/usr/sbin:/usr/bin:/bin
    case "$variant" in
        nftables) backend=nftables ;;
        iptables-legacy) path="$LEGACY_PATH" ;;
    esac
    local args="$T/big-$backend.json" absent="$T/absent-$backend.json"
    sandbox_start
    in_sandbox env PATH="$path" "$BIN" "$args" >"$T/big-once.json"
    jq -e --arg v "$variant" '.changed == true and .backend == $v' "$T/big-once.json" >/dev/null \
        || die "$variant: first apply: $(head -c 600 "$T/big-once.json")"
    in_sandbox env PATH="$path" "$BIN" "$args" >"$T/big-again.json"
    jq -e '.changed == false and (.failed // false) == false and (.warnings | length) == 0' "$T/big-again.json" >/dev/null \
        || die "$variant: re-apply is not an idempotent success: $(head -c 600 "$T/big-again.json")"
    local count
    if [ "$backend" = nftables ]; then
        count=$(in_sandbox nft -j list set inet open_ports r1_v4 | jq '.nftables[1].set.elem | length')
        [ "$count" = 1000 ] || die "$variant: $count sources in the set, expected 1000"
        count=$(in_sandbox nft -j list set inet open_ports r1_ports | jq '.nftables[1].set.elem | length')
        [ "$count" = 1000 ] || die "$variant: $count ports in the set, expected 1000"
    else
        count=$(in_sandbox env PATH="$path" iptables-save -t filter | grep -c '^-A open_ports -s ')
        [ "$count" = 67000 ] || die "$variant: $count source rules, expected 67000 (1000 sources x 67 multiport chunks)"
    fi
    in_sandbox_step env PATH="$path" hyperfine -N --style basic --runs "$runs" \
        --prepare "$BIN $absent" --export-json "$T/hf-apply.json" -n "apply $variant" "$BIN $args" >&2
    in_sandbox_step env PATH="$path" hyperfine -N --style basic --warmup 1 --runs "$runs" \
        --export-json "$T/hf-reapply.json" -n "re-apply $variant" "$BIN $args" >&2
    sandbox_stop
    BIG_A=$(awk -v s="$(jq -r '.results[0].median' "$T/hf-apply.json")" 'BEGIN { printf "%.1f", s * 1000 }')
    BIG_R=$(awk -v s="$(jq -r '.results[0].median' "$T/hf-reapply.json")" 'BEGIN { printf "%.1f", s * 1000 }')
}
big nftables 20; BN_A=$BIG_A; BN_R=$BIG_R
big iptables-nft 3; BI_A=$BIG_A; BI_R=$BIG_R
big iptables-legacy 5; BL_A=$BIG_A; BL_R=$BIG_R

[ "$(host_state)" = "$HOST_BEFORE" ] || die "$HOST_WHAT changed during the run"

# --- report ------------------------------------------------------------------------
report_header "open_ports benchmark" \
    "$("$PY" -V), $(nft --version | cut -d' ' -f1-2), $(iptables-nft -V), $(hyperfine --version)"
echo
echo "1. DC/OS 1.13 master matrix: ${#TCP_ANY[@]} + ${#TCP_CLUSTER[@]} + ${#TCP_MASTERS[@]} + ${#TCP_LOCAL[@]} TCP and ${#UDP_CLUSTER[@]} UDP ports, sources ${CLUSTER} + ${#MASTERS[@]} /32s"
echo "   one open_ports task (5 rules) vs one ansible.builtin.iptables task looping over ${NITEMS} rules"
echo
printf '%-34s %14s %14s %14s %8s\n' "median of ${RUNS} (ms)" "open_ports" "open_ports" "builtin" "ratio"
printf '%-34s %14s %14s %14s %8s\n' "" "iptables-nft" "nftables" "iptables" ""
printf '%-34s %14s %14s %14s %8s\n' "task, apply (empty firewall)" "$A_OPI" "$A_OPN" "$A_BI" "$(ratio "$A_BI" "$A_OPI")"
printf '%-34s %14s %14s %14s %8s\n' "task, re-run (nothing to change)" "$R_OPI" "$R_OPN" "$R_BI" "$(ratio "$R_BI" "$R_OPI")"
printf '%-34s %14s %14s %14s %8s\n' "playbook, apply" "$PA_OPI" "$PA_OPN" "$PA_BI" "$(ratio "$PA_BI" "$PA_OPI")"
printf '%-34s %14s %14s %14s %8s\n' "playbook, re-run" "$PR_OPI" "$PR_OPN" "$PR_BI" "$(ratio "$PR_BI" "$PR_OPI")"
printf '%-34s %14s\n' "playbook with 0 tasks" "$BASE"
echo
echo "2. open_ports alone, 1,000 ports x 1,000 sources (hyperfine median, ms)"
echo
printf '%-34s %14s %14s %14s\n' "" "nftables" "iptables-nft" "iptables-leg."
printf '%-34s %14s %14s %14s\n' "apply (after state=absent)" "$BN_A" "$BI_A" "$BL_A"
printf '%-34s %14s %14s %14s\n' "re-apply (nothing to change)" "$BN_R" "$BI_R" "$BL_R"
echo
echo "ratio = ansible.builtin.iptables / open_ports (iptables-nft). Task = the task's duration as"
echo "Ansible records it (ansible.posix.json callback); playbook = wall clock of ansible-playbook."
echo "Local connection, each variant in a fresh network namespace; every apply reports"
echo "1 changed task and every re-run 0. open_ports also writes the IPv6 chain"
echo "(ip6tables); ansible.builtin.iptables only IPv4. In part 2 iptables holds 67,000 rules per"
echo "apply (1,000 sources x 67 multiport matches of 15 ports), nftables two sets of 1,000 elements."
echo "host: firewall unchanged (all work ran in sandboxes)"
