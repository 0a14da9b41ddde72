#!/usr/bin/env bash
# Wire podman containers that run with `--network none` into one private test
# network, without touching the host's network namespace:
#
#   netwire.sh up NETNS PREFIXLEN NAME=ADDR...   a bridge in the named network
#       namespace NETNS (created if missing), and per container a veth pair made
#       inside NETNS whose peer goes straight into the container as eth0 with
#       ADDR/PREFIXLEN. Idempotent; a restarted container is re-wired.
#   netwire.sh down NETNS                        delete NETNS: the bridge and every
#       veth pair go with it; the containers keep running without eth0.
#
# Why not a podman network: netavark sets the host's net.ipv4.ip_forward and
# adds host firewall chains even for --internal networks (docs/test-networking.md).
# Addresses must lie in 198.18.0.0/15 (the benchmarking range the project's
# test traffic is confined to); the containers get no default route.
set -euo pipefail

die() { printf 'netwire: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 ns=$2
shift 2
case $cmd in
up)
    [ $# -ge 2 ] || usage
    plen=$1
    shift
    if ! [[ $plen =~ ^[0-9]+$ ]] || [ "$plen" -lt 15 ] || [ "$plen" -gt 30 ]; then
        die "PREFIXLEN $plen: want 15-30"
    fi
    for spec in "$@"; do
        addr=${spec#*=}
        [[ $spec == *=* && $addr =~ ^198\.1[89]\.[0-9]+\.[0-9]+$ ]] \
            || die "$spec: want NAME=ADDR with ADDR in 198.18.0.0/15"
    done
    ip netns list | grep -q "^$ns\( \|$\)" || ip netns add "$ns"
    S=(ip netns exec "$ns")
    "${S[@]}" ip link set lo up
    "${S[@]}" ip link show br0 >/dev/null 2>&1 || "${S[@]}" ip link add br0 type bridge
    "${S[@]}" ip link set br0 up
    i=0
    for spec in "$@"; do
        name=${spec%%=*} addr=${spec#*=}
        pid=$(podman inspect -f '{{.State.Pid}}' "$name") || die "$name: no such container"
        [ "$pid" -gt 0 ] || die "$name is not running"
        port=p$i
        i=$((i + 1))
        # A MAC derived from the address: after a container restart its peers'
        # neighbour caches stay right.
        # shellcheck disable=SC2086 # the four octets as four arguments, split on purpose
        mac=$(printf '02:00:%02x:%02x:%02x:%02x' ${addr//./ })
        if ! nsenter -t "$pid" -n ip link show eth0 >/dev/null 2>&1; then
            "${S[@]}" ip link del "$port" 2>/dev/null || true # the stale end of an old container
            "${S[@]}" ip link add "$port" type veth peer name eth0 address "$mac" netns "$pid"
        fi
        "${S[@]}" ip link set "$port" master br0 up
        nsenter -t "$pid" -n ip addr replace "$addr/$plen" dev eth0
        nsenter -t "$pid" -n ip link set eth0 up
    done
    ;;
down)
    ip netns del "$ns" 2>/dev/null || true
    ;;
*) usage ;;
esac
