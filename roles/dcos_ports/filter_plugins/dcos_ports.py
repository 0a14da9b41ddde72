# The dcos_ports role's arithmetic, in one place: which matrix entries concern a
# node, and what preflight, reserve, firewall and verify ask of the modules.
# Runs on the controller (Ansible filters); the modules on the node get only
# the finished option lists. Bad input raises AnsibleFilterError naming the
# role variable that holds it.

import ipaddress

from ansible.errors import AnsibleFilterError

NODE_TYPES = ("master", "agent", "public_agent")
# The matrix's sources that are cluster nodes: the node types.
CLUSTER_ROLES = set(NODE_TYPES)
# Linux's default ip_local_port_range starts here; reserved DC/OS ports at or
# above it stay out of a widened ephemeral range.
EPHEMERAL_FLOOR = 32768


def _port_bounds(port):
    """An entry's `port` (int or "A-B") as (low, high)."""
    if isinstance(port, int):
        return port, port
    low, _, high = str(port).partition("-")
    return int(low), int(high or low)


def _port_spelling(low, high):
    return low if low == high else "%d-%d" % (low, high)


def _subtract(low, high, holes):
    """[low, high] without the sorted single ports in holes, as spellings."""
    pieces, start = [], low
    for hole in holes:
        if start <= hole <= high:
            if start < hole:
                pieces.append(_port_spelling(start, hole - 1))
            start = hole + 1
    if start <= high:
        pieces.append(_port_spelling(start, high))
    return pieces


def _services(entries):
    return [e for e in entries if e.get("unit")]


def _task_ranges(entries):
    return [e for e in entries if not e.get("unit")]


def _task_pieces(entries):
    """Each Mesos task range of the node without the ports a DC/OS unit serves
    there (public agents' 23-5050 holds dcos-net's 53/tcp): (entry, piece)."""
    held = {}
    for e in _services(entries):
        low, high = _port_bounds(e["port"])
        held.setdefault(e["proto"], set()).update(range(low, high + 1))
    for e in _task_ranges(entries):
        low, high = _port_bounds(e["port"])
        holes = sorted(p for p in held.get(e["proto"], ()) if low <= p <= high)
        for piece in _subtract(low, high, holes):
            yield e, piece


def node_type(group_names, group_map, explicit=None):
    """The node type: `explicit` (dcos_ports_node_type) if set, else the one
    group of group_map (dcos_ports_groups) the host is in."""
    if explicit:
        if explicit not in NODE_TYPES:
            raise AnsibleFilterError(
                "dcos_ports_node_type: %r is not one of %s" % (explicit, ", ".join(NODE_TYPES)))
        return explicit
    found = [t for t in NODE_TYPES if group_map.get(t) in group_names]
    if len(found) == 1:
        return found[0]
    wanted = ", ".join("%s (%s)" % (group_map.get(t), t) for t in NODE_TYPES)
    if not found:
        raise AnsibleFilterError(
            "dcos_ports_node_type: the host is in none of the groups %s; "
            "add it to one or set dcos_ports_node_type" % wanted)
    raise AnsibleFilterError(
        "dcos_ports_node_type: the host is in several node-type groups (%s); "
        "a node has one type: set dcos_ports_node_type" % ", ".join(group_map[t] for t in found))


def _address_of(host, vars_):
    """A cluster host's address: dcos_ports_address, else ansible_host when it
    is an IP address, else the gathered default IPv4 address."""
    given = vars_.get("dcos_ports_address")
    if given:
        try:
            return str(ipaddress.ip_address(str(given)))
        except ValueError:
            raise AnsibleFilterError("dcos_ports_address: %r (host %s) is not an IP address" % (given, host))
    candidates = [vars_.get("ansible_host"),
                  (vars_.get("ansible_default_ipv4") or {}).get("address")]
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(str(candidate)))
        except ValueError:
            continue
    raise AnsibleFilterError(
        "dcos_ports_cluster_sources: cannot tell the address of host %s (its ansible_host is not an "
        "IP address and no facts were gathered); set dcos_ports_address for it, or set "
        "dcos_ports_cluster_sources" % host)


def cluster_addresses(hostvars, groups, group_map, node_types=NODE_TYPES):
    """Default of dcos_ports_cluster_sources (and, with node_types ["master"],
    of dcos_ports_master_sources): the address of every host of those node
    types (in their groups, or typed by dcos_ports_node_type), sorted and
    without repeats."""
    hosts = {h for node in node_types for h in groups.get(group_map.get(node), [])}
    hosts.update(h for h in groups.get("all", []) if hostvars[h].get("dcos_ports_node_type") in node_types)
    addresses = {_address_of(host, hostvars[host]) for host in sorted(hosts)}
    # IPv4 first: addresses of different versions do not compare.
    return sorted(addresses, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))


def _validated_sources(sources, variable):
    if isinstance(sources, str) or not sources:
        raise AnsibleFilterError(
            "%s: must be a non-empty list of addresses or CIDRs, got %r" % (variable, sources))
    for source in sources:
        try:
            ipaddress.ip_network(str(source), strict=True)
        except ValueError as error:
            raise AnsibleFilterError("%s: %r is not an address or CIDR (%s)" % (variable, source, error))
    return [str(s) for s in sources]


def node_entries(matrix, node, enterprise):
    """The matrix entries (files/matrix/<version>.yml) that concern this node."""
    if not isinstance(matrix, dict) or not isinstance(matrix.get("ports"), list):
        raise AnsibleFilterError("dcos_ports_version: the matrix file has no `ports:` list")
    return [e for e in matrix["ports"]
            if node in e["nodes"] and (enterprise or not e["enterprise"])]


def preflight(entries, task_ports=True):
    """unit_bindings `expect` before an install: every port free, except for
    the unit that will serve it (so a re-run after the install passes); with
    task_ports, the Mesos task ranges free too (no unit may hold them)."""
    expect = [{"port": e["port"], "proto": e["proto"], "state": "free", "unit": e["unit"]}
              for e in _services(entries)]
    if task_ports:
        expect += [{"port": piece, "proto": e["proto"], "state": "free"} for e, piece in _task_pieces(entries)]
    return expect


def verify(entries):
    """unit_bindings `expect` after an install: each unit listens on its
    ports, loopback-only services on loopback only. Task ports are not
    checked: tasks come and go."""
    return [{"port": e["port"], "proto": e["proto"], "unit": e["unit"], "bind": e["bind"]}
            for e in _services(entries)]


def reservation(entries):
    """reserved_ports `ports`: the Mesos task ranges and every DC/OS port
    at or above the default ephemeral floor."""
    ports = [e["port"] for e in _task_ranges(entries)]
    ports += [e["port"] for e in _services(entries) if _port_bounds(e["port"])[1] >= EPHEMERAL_FLOOR]
    return ports


def _source_kind(sources):
    if "public" in sources:
        return "public"
    if set(sources) == {"localhost"}:
        return "localhost"
    if set(sources) == {"master"}:
        return "masters"
    if set(sources) <= CLUSTER_ROLES:
        return "cluster"
    raise AnsibleFilterError("dcos_ports_version: the matrix mixes sources %r in one entry" % (sources,))


def firewall_rules(entries, cluster_sources, master_sources):
    """open_ports `rules`: per protocol, public ports for everyone, cluster
    ports for the cluster, master-only ports (ZooKeeper's quorum, say) for
    the masters, each with the node's own loopback; loopback-only ports for
    loopback. Task ranges leave out the ports a unit serves, so a public task
    range never widens, say, 53/tcp."""
    # Validated only when the node has ports of that kind: an inventory
    # without masters is fine for agents.
    sources_of = {
        "public": lambda: ["any"],
        "cluster": lambda: _validated_sources(cluster_sources, "dcos_ports_cluster_sources") + ["loopback"],
        "masters": lambda: _validated_sources(master_sources, "dcos_ports_master_sources") + ["loopback"],
        "localhost": lambda: ["loopback"],
    }
    comment_of = {"public": "DC/OS public", "cluster": "DC/OS cluster", "masters": "DC/OS masters",
                  "localhost": "DC/OS local only"}
    grouped = {}
    for e in _services(entries):
        grouped.setdefault((e["proto"], _source_kind(e["sources"])), []).append(e["port"])
    for e, piece in _task_pieces(entries):
        grouped.setdefault((e["proto"], _source_kind(e["sources"])), []).append(piece)
    order = {"tcp": 0, "udp": 1, "public": 0, "cluster": 1, "masters": 2, "localhost": 3}
    return [{"ports": ports, "proto": proto, "sources": sources_of[kind](), "comment": comment_of[kind]}
            for (proto, kind), ports in sorted(grouped.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]]))]


class FilterModule(object):
    def filters(self):
        return {
            "dcos_ports_node_type": node_type,
            "dcos_ports_cluster_addresses": cluster_addresses,
            "dcos_ports_node_entries": node_entries,
            "dcos_ports_preflight": preflight,
            "dcos_ports_verify": verify,
            "dcos_ports_reservation": reservation,
            "dcos_ports_firewall_rules": firewall_rules,
        }
