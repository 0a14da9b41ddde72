#!/usr/bin/env bash
# The README's main job: the DC/OS 1.13 port matrix applied by
# playbooks/dcos_ports.yml to a throwaway four-container cluster (master,
# private agent, public agent, and an outsider that is not a cluster node), the
# way an operator would: before the install (preflight, reserve, firewall), then
# "install" DC/OS (stand-in services under the real unit names), then verify;
# then it reboots every node (nothing of Ansible in between) and ends with a
# per-node table, before and after the reboot, checked against the matrix.
#
# The containers run with --network none and are wired to a bridge in a private
# network namespace (scripts/netwire.sh); the host's firewall and sysctls are
# never touched. Every container and the namespace are removed on exit.
# Run via `make demo`, which does the set-up and builds library/ first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

for module in reserved_ports open_ports unit_bindings; do
    [ -x "library/$module" ] || { echo "demo: library/$module is missing: run 'make demo'" >&2; exit 1; }
done

VERSION="1.13"
TAG="pm-demo-$$"
NETNS="$TAG"
IMAGE=localhost/portmatrix-node:bookworm
# container suffix, inventory group, node type, address
NODES=(
    "master   masters       master        198.18.20.1"
    "agent    agents        agent         198.18.20.2"
    "public   agents_public public_agent  198.18.20.3"
    "outsider outsiders     -             198.18.20.4"
)
WORK="$(mktemp -d /tmp/portmatrix-demo.XXXXXX)"
cleanup() {
    bash scripts/netwire.sh down "$NETNS" || true
    for node in "${NODES[@]}"; do
        read -r suffix _ <<<"$node"
        podman rm -f -t 0 "$TAG-$suffix" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

banner() { printf '\n=== %s\n' "$*"; }

banner "Starting four throwaway systemd containers, wired into 198.18.20.0/24 (a private bridge)"
wiring=()
for node in "${NODES[@]}"; do
    read -r suffix _ _ addr <<<"$node"
    podman run -d --name "$TAG-$suffix" --hostname "$suffix" \
        --network none --cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt unmask=/proc/sys \
        "$IMAGE" /sbin/init >/dev/null
    wiring+=("$TAG-$suffix=$addr")
done
for node in "${NODES[@]}"; do
    read -r suffix _ _ addr <<<"$node"
    for _ in $(seq 1 60); do
        state="$(podman exec "$TAG-$suffix" systemctl is-system-running 2>/dev/null || true)"
        case "$state" in running | degraded) break ;; esac
        sleep 1
    done
    printf '%-22s %-15s systemd %s\n' "$TAG-$suffix" "$addr" "$state"
done
bash scripts/netwire.sh up "$NETNS" 24 "${wiring[@]}"

{
    for group in masters agents agents_public outsiders; do
        echo "[$group]"
        for node in "${NODES[@]}"; do
            read -r suffix g _ addr <<<"$node"
            if [ "$g" = "$group" ]; then echo "$TAG-$suffix dcos_ports_address=$addr"; fi
        done
    done
    echo "[all:vars]"
    echo "ansible_connection=containers.podman.podman"
    echo "ansible_become=false"
    echo "test_switch_netns=$NETNS"
    echo "dcos_ports_version=\"$VERSION\""
} >"$WORK/inventory"

banner "Before the install: ansible-playbook playbooks/dcos_ports.yml (preflight, reserve, firewall)"
ansible-playbook -i "$WORK/inventory" playbooks/dcos_ports.yml

banner "Again: nothing to do (changed=0)"
ansible-playbook -i "$WORK/inventory" playbooks/dcos_ports.yml | tee "$WORK/second.log" | grep -A8 '^PLAY RECAP'
if grep -E 'changed=[1-9]' "$WORK/second.log" >/dev/null; then
    echo "demo: the second run changed something" >&2
    exit 1
fi

banner "\"Installing\" DC/OS: stand-in services under the real unit names, on their ports"
ansible-playbook -i "$WORK/inventory" tests/cluster/standins.yml | grep -A8 '^PLAY RECAP'

banner "After the install: ansible-playbook playbooks/dcos_ports.yml --tags verify"
ansible-playbook -i "$WORK/inventory" playbooks/dcos_ports.yml --tags verify | grep -A8 '^PLAY RECAP'

banner "A Mesos task on each agent (on the first port of every task range)"
ansible-playbook -i "$WORK/inventory" tests/cluster/tasks.yml | grep -A8 '^PLAY RECAP'

report_args=("$VERSION" "$TAG-outsider=198.18.20.4")
for node in "${NODES[@]}"; do
    read -r suffix _ type addr <<<"$node"
    [ "$type" = - ] && continue
    podman cp library/unit_bindings "$TAG-$suffix:/usr/local/bin/unit_bindings"
    report_args+=("$TAG-$suffix:$type=$addr")
done
banner "Who can connect now: every port of the matrix, from another cluster node and from the outsider"
python3 scripts/demo_report.py --save "$WORK/before-reboot.json" "${report_args[@]}"

banner "A reboot of every node (podman restart: a real boot), nothing of Ansible in between"
ansible-playbook -i "$WORK/inventory" tests/cluster/reboot.yml | grep -A8 '^PLAY RECAP'
echo "the Mesos tasks started again, as Mesos would:"
ansible-playbook -i "$WORK/inventory" tests/cluster/tasks.yml | grep -A8 '^PLAY RECAP'

banner "Per node: who listens, who can connect (before and after the reboot), what is reserved"
python3 scripts/demo_report.py --before "$WORK/before-reboot.json" "${report_args[@]}"

banner "Demo done; removing the containers and the private network"
