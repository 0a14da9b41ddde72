#!/usr/bin/env bash
# The README's main job: reserved_ports applied through Ansible to throwaway
# systemd containers (one with Python, one without), run twice (changed, then
# ok), and the persisted value re-applied by systemd-sysctl as at boot.
# Every container it starts is removed on exit. Run via `make demo`, which
# does the set-up and builds library/ first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

[ -x library/reserved_ports ] || { echo "demo: library/reserved_ports is missing: run 'make demo'" >&2; exit 1; }

TAG="portmatrix-demo-$$"
NODES=("$TAG-python:localhost/portmatrix-node:bookworm" "$TAG-nopython:localhost/portmatrix-node-nopython:bookworm")
WORK="$(mktemp -d /tmp/portmatrix-demo.XXXXXX)"
cleanup() {
    for node in "${NODES[@]}"; do podman rm -f -t 0 "${node%%:*}" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

banner() { printf '\n=== %s\n' "$*"; }

banner "Starting two throwaway systemd containers (one has no Python at all)"
for node in "${NODES[@]}"; do
    name="${node%%:*}" image="${node#*:}"
    podman run -d --name "$name" --hostname "${name#"$TAG"-}" \
        --network none --cap-add NET_ADMIN --cap-add SYS_ADMIN --security-opt unmask=/proc/sys \
        "$image" /sbin/init >/dev/null
done
for node in "${NODES[@]}"; do
    name="${node%%:*}"
    for _ in $(seq 1 60); do
        state="$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)"
        case "$state" in running|degraded) break ;; esac
        sleep 1
    done
    printf '%-28s systemd %s, python3: %s\n' "$name" "$state" \
        "$(podman exec "$name" sh -c 'command -v python3 || echo none')"
done

{
    echo "[nodes]"
    for node in "${NODES[@]}"; do echo "${node%%:*} ansible_connection=containers.podman.podman"; done
} > "$WORK/inventory"

banner "First run: the reservation is made (changed) - with --diff"
ansible-playbook -i "$WORK/inventory" --diff playbooks/demo_reserved_ports.yml

banner "Second run: nothing to do (ok, changed=0)"
ansible-playbook -i "$WORK/inventory" playbooks/demo_reserved_ports.yml | tee "$WORK/second.log"
grep -q 'changed=0' "$WORK/second.log"

banner "Boot-time persistence: clear the runtime value, let systemd-sysctl re-apply the file"
for node in "${NODES[@]}"; do
    name="${node%%:*}"
    podman exec "$name" sh -c 'echo > /proc/sys/net/ipv4/ip_local_reserved_ports'
    before="$(podman exec "$name" cat /proc/sys/net/ipv4/ip_local_reserved_ports)"
    podman exec "$name" systemctl restart systemd-sysctl
    after="$(podman exec "$name" cat /proc/sys/net/ipv4/ip_local_reserved_ports)"
    printf '%-28s cleared: "%s"  after systemd-sysctl: "%s"\n' "$name" "$before" "$after"
    [ "$after" = "1025-2180,2182-3887,3889-5049,5052-8079,8082-8180,8182-32000" ]
done

banner "By hand, without Ansible: the same binary, arguments on stdin, check mode"
podman cp library/reserved_ports "${NODES[1]%%:*}:/usr/local/bin/reserved_ports"
echo '{"ports": [8000], "state": "absent", "_ansible_check_mode": true}' |
    podman exec -i "${NODES[1]%%:*}" reserved_ports - | python3 -m json.tool --sort-keys

banner "Demo done; removing the containers"
