#!/usr/bin/env python3
"""The demo's per-node table: for every port of the DC/OS matrix on each node,
which unit listens, whether it answers from another cluster node (the first
other node given: an agent for the master, the master for agents) and from
outside the cluster, and whether the kernel reserves it; each row checked
against what the matrix says (a master-only port is closed to the agent).

  demo_report.py [--save FILE | --before FILE] VERSION OUTSIDER=ADDR CONTAINER:NODE_TYPE=ADDR...

Runs on the controller; looks into the containers with `podman exec`: the
unit_bindings binary by hand (facts=true) for listeners, tests/cluster/nodetool.py
for connections (from a peer node and from OUTSIDER) and the reservation.
Exit status 1 when any row differs from the matrix.

--save FILE: only probe the connections, and keep them in FILE (before a reboot).
--before FILE: the table shows the connections kept in FILE, and in the column
"after reboot" those probed now, each checked against the matrix too ("same"
when both probes answer as before).
"""
import json
import subprocess
import sys
from pathlib import Path

import yaml  # PyYAML, a dependency of ansible-core in the project's virtualenv

ROOT = Path(__file__).resolve().parent.parent
NODETOOL = "/usr/local/bin/nodetool.py"


def podman_exec(container, argv, stdin=None):
    done = subprocess.run(["podman", "exec", "-i", container, *argv], input=stdin,
                          capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        sys.exit("demo_report: %s: %s failed: %s" % (container, " ".join(argv), done.stderr.strip()))
    return done.stdout


def bounds(port):
    low, _, high = str(port).partition("-")
    return int(low), int(high or low)


def reserved_ports(container):
    text = podman_exec(container, ["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"])
    have = set()
    for item in filter(None, text.strip().split(",")):
        low, high = bounds(item)
        have.update(range(low, high + 1))
    return have


def listeners(container):
    """(proto, port) -> [(unit, address)], from unit_bindings run by hand."""
    out = podman_exec(container, ["/usr/local/bin/unit_bindings", "-"],
                      stdin=json.dumps({"expect": [], "facts": True}))
    held = {}
    for b in json.loads(out)["ansible_facts"]["port_bindings"]:
        held.setdefault((b["proto"], b["port"]), []).append((b["unit"] or "?", b["address"]))
    return held


def listening(entry, sockets):
    """yes, no, WRONG (another unit) or EXPOSED (a loopback-only service on
    another address)."""
    if not sockets:
        return "no"
    if entry["unit"] is not None and entry["unit"] not in {unit for unit, _ in sockets}:
        return "WRONG"
    if entry["bind"] == "loopback" and not all(a.startswith("127.") or a == "::1" for _, a in sockets):
        return "EXPOSED"
    return "yes"


def probe(container, targets):
    if not targets:
        return {}
    return json.loads(podman_exec(container, [NODETOOL, "probe", "-t", "1", *targets]))


def rows_of(matrix, node_type):
    """The matrix entries of a node type; a task range is shown by its first port
    (where the demo's stand-in task listens)."""
    for e in matrix["ports"]:
        if node_type in e["nodes"] and not e["enterprise"]:
            low, high = bounds(e["port"])
            yield e, low, ("%d (of %s)" % (low, e["port"]) if low != high else str(low))


def expectation(entry, peer_type):
    """(from the peer, from outside) as the matrix allows it."""
    sources = set(entry["sources"])
    if "public" in sources:
        return True, True
    return peer_type in sources, False


def main(argv):
    mode, kept = None, None
    if argv[:1] in (["--save"], ["--before"]) and len(argv) > 1:
        mode, path, argv = argv[0], Path(argv[1]), argv[2:]
        kept = json.loads(path.read_text()) if mode == "--before" else {}
    if len(argv) < 3:
        sys.exit(__doc__)
    version, outsider = argv[0], argv[1].split("=")[0]
    nodes = []
    for spec in argv[2:]:
        name_type, _, addr = spec.partition("=")
        name, _, node_type = name_type.partition(":")
        nodes.append((name, node_type, addr))
    matrix = yaml.safe_load((ROOT / "roles/dcos_ports/files/matrix" / ("%s.yml" % version)).read_text())

    bad = 0
    for name, node_type, addr in nodes:
        peer, peer_type = next((n, t) for n, t, _ in nodes if n != name)
        rows = list(rows_of(matrix, node_type))
        targets = ["%s:%s:%d" % (e["proto"], addr, low) for e, low, _ in rows]
        from_peer, from_outside = probe(peer, targets), probe(outsider, targets)
        if mode == "--save":
            kept[name] = {"peer": from_peer, "outside": from_outside}
            continue
        now = None
        if mode == "--before":
            now = (from_peer, from_outside)
            from_peer, from_outside = kept[name]["peer"], kept[name]["outside"]
        held, reserved = listeners(name), reserved_ports(name)

        print("\n%s (%s, %s) - DC/OS %s; cluster probe from %s, outside probe from %s"
              % (name, node_type, addr, version, peer, outsider))
        header = ("port", "proto", "unit", "listening", "from cluster", "from outside", "after reboot", "reserved", "")
        line = "%-20s %-5s %-32s %-9s %-12s %-12s %-14s %-8s %s"
        if now is None:
            header, line = header[:6] + header[7:], line.replace("%-14s ", "")
        print(line % header)
        for (e, low, shown), target in zip(rows, targets):
            unit = e["unit"] or "(Mesos task)"
            state = listening(e, held.get((e["proto"], low), []))
            cluster, outside = from_peer[target], from_outside[target]
            lo, hi = bounds(e["port"])
            is_reserved = all(p in reserved for p in range(lo, hi + 1))
            want_cluster, want_outside = expectation(e, peer_type)
            must_reserve = e["unit"] is None or hi >= 32768
            answers = [(cluster, outside)] + ([(now[0][target], now[1][target])] if now else [])
            ok = (state == "yes"
                  and all((c == "open") == want_cluster and (o == "open") == want_outside
                          and o in ("open", "blocked") for c, o in answers)
                  and (not must_reserve or is_reserved))
            bad += not ok
            columns = [shown, e["proto"], unit, state, cluster, outside]
            if now:
                after = answers[1]
                columns.append("same" if after == answers[0] else "%s/%s" % after)
            columns += ["yes" if is_reserved else "-", "ok" if ok else "<- differs from the matrix"]
            print(line % tuple(columns))
    if mode == "--save":
        path.write_text(json.dumps(kept))
        print("probed %d ports on %d nodes, from a peer and from %s" % (
            sum(len(v["peer"]) for v in kept.values()), len(kept), outsider))
        return 0
    print("\n%s" % ("every row as the matrix says" if not bad else "%d rows differ from the matrix" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
