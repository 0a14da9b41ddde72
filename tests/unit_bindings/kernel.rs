//! `unit_bindings` against a real kernel: listeners (python3) inside a private
//! network namespace (support/sandbox.rs), each in a cgroup named like a
//! systemd unit (support/listeners.rs), in the cgroup v2 hierarchy or in the
//! v1 name=systemd one. The shipped binary runs in the same namespace.

use portmatrix_tests::listeners::{Hierarchy, Listener, UnitCgroup};
use portmatrix_tests::module::ModuleRun;
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

fn check(sandbox: &Sandbox, args: &Value) -> ModuleRun {
    sandbox.run_module("unit_bindings", args)
}

fn lines(run: &ModuleRun) -> Vec<String> {
    run.msg().lines().map(String::from).collect()
}

fn oks(run: &ModuleRun) -> Vec<bool> {
    run.json["results"].as_array().unwrap().iter().map(|r| r["ok"].as_bool().unwrap()).collect()
}

#[test]
fn listening_and_free_on_tcp_udp_v4_v6_and_dual_stack() {
    let sandbox = Sandbox::new();
    let master = UnitCgroup::new(Hierarchy::V2, "dcos-mesos-master.service");
    let exhibitor = UnitCgroup::new(Hierarchy::V2, "dcos-exhibitor.service");
    let net = UnitCgroup::new(Hierarchy::V1Systemd, "dcos-net.service");
    let rogue = UnitCgroup::new(Hierarchy::V2, "rogue.service");
    let l_master = Listener::start(&sandbox, Some(&master), &["tcp:0.0.0.0:5050"]);
    let _l_exhibitor = Listener::start(&sandbox, Some(&exhibitor), &["tcp6only:[::]:8181"]);
    let l_net = Listener::start(&sandbox, Some(&net), &["tcp:[::]:62080", "udp:0.0.0.0:64000", "udp:[::]:61053"]);
    let l_rogue = Listener::start(&sandbox, Some(&rogue), &["tcp:0.0.0.0:8080"]);
    let l_nounit = Listener::start(&sandbox, None, &["tcp:127.0.0.1:9000"]);

    let expect = json!([
        {"port": 5050, "unit": "dcos-mesos-master.service"},
        {"port": 8181, "unit": "dcos-exhibitor"},
        {"port": 62080, "unit": "dcos-net.service"},
        {"port": 64000, "proto": "udp", "unit": "dcos-net.service"},
        {"port": 61053, "proto": "udp", "unit": "dcos-net.service"},
        {"port": 8080, "unit": "dcos-marathon.service"},
        {"port": 8080, "state": "free"},
        {"port": 9000, "state": "free"},
        {"port": 5050, "state": "free", "unit": "dcos-mesos-master.service"},
        {"port": 5050, "proto": "udp", "unit": "dcos-mesos-master.service"},
        {"port": 2181, "state": "free"},
    ]);
    let run = check(&sandbox, &json!({"expect": expect, "fail_on_mismatch": false}));
    run.assert_ok();
    assert!(!run.changed());
    assert_eq!(oks(&run), [true, true, true, true, true, false, false, false, true, false, true], "{}", run.json);
    assert_eq!(run.json["mismatches"], 4);
    let (rogue_pid, nounit_pid) = (l_rogue.pid, l_nounit.pid);
    assert_eq!(
        lines(&run),
        [
            format!("8080/tcp: held by python3 (pid {rogue_pid}, unit rogue.service), expected dcos-marathon.service"),
            format!("8080/tcp: held by python3 (pid {rogue_pid}, unit rogue.service), expected free"),
            format!("9000/tcp: held by python3 (pid {nounit_pid}, no unit), expected free"),
            "5050/udp: nothing listening, expected dcos-mesos-master.service".to_string(),
        ]
    );
    let results = &run.json["results"];
    assert_eq!(
        results[0]["owners"],
        json!([{"port": 5050, "address": "0.0.0.0", "pid": null, "process": null, "unit": "dcos-mesos-master.service", "delegated_unit": null, "socket_unit": null, "activates": [], "forwarder": null}]),
        "the unit from the kernel's cgroup id, nothing needing the process ({})",
        l_master.pid
    );
    assert_eq!(results[1]["unit"], "dcos-exhibitor.service");
    assert_eq!(results[1]["owners"][0]["address"], "::");
    // The v1 name=systemd hierarchy names the unit as well as the v2 one.
    assert_eq!(results[2]["owners"][0]["unit"], "dcos-net.service");
    assert_eq!(results[2]["owners"][0]["pid"], l_net.pid);
    assert_eq!(results[4]["owners"][0]["address"], "::");
    assert_eq!(results[8]["msg"], "5050/tcp: held by dcos-mesos-master.service, as allowed");
    assert_eq!(results[10]["msg"], "2181/tcp: free");
    assert!(run.json["processes_read"].as_u64().unwrap() > 0, "owners were looked for");

    // Check mode changes nothing about a module that only reads.
    let checked = check(&sandbox, &json!({"expect": expect, "fail_on_mismatch": false, "_ansible_check_mode": true}));
    assert_eq!(checked.json["results"], run.json["results"]);

    // No socket on the ports in question: no process is read at all.
    let idle = check(
        &sandbox,
        &json!({"expect": [{"port": 2181, "state": "free"}, {"port": 5050, "proto": "udp", "state": "free"}]}),
    );
    idle.assert_ok();
    assert_eq!(idle.json["processes_read"], 0);

    // The same with fail_on_mismatch left at true: a failed task, same verdicts.
    let failing = check(&sandbox, &json!({"expect": expect}));
    failing.assert_failed_with("8080/tcp: held by python3");
    assert_eq!(failing.json["mismatches"], 4);
    assert_eq!(failing.json["results"], run.json["results"]);
}

#[test]
fn a_dual_stack_socket_counts_for_ipv4_and_a_v6_only_one_does_not() {
    let sandbox = Sandbox::new();
    let unit = UnitCgroup::new(Hierarchy::V2, "dcos-net.service");
    let _dual = Listener::start(&sandbox, Some(&unit), &["tcp:[::]:62501"]);
    let _v6only = Listener::start(&sandbox, Some(&unit), &["tcp6only:[::]:62502"]);
    // What the kernel does: the dual-stack socket accepts IPv4, the other refuses it.
    let probe = "import socket,sys\nfor p in (62501, 62502):\n try:\n  socket.create_connection(('127.0.0.1', p), 2); print(p, 'accepts')\n except OSError: print(p, 'refuses')";
    assert_eq!(
        sandbox.command("python3").args(["-c", probe]).output().unwrap().stdout,
        b"62501 accepts\n62502 refuses\n"
    );
    let run = check(
        &sandbox,
        &json!({"expect": [{"port": 62501, "unit": "dcos-net.service"}, {"port": 62501, "state": "free"}]}),
    );
    run.assert_failed_with("62501/tcp: held by python3");
    assert_eq!(oks(&run), [true, false]);
}

#[test]
fn ranges_name_each_conflicting_port() {
    let sandbox = Sandbox::new();
    let a = UnitCgroup::new(Hierarchy::V2, "marathon-lb.service");
    let b = UnitCgroup::new(Hierarchy::V2, "other.service");
    let l_a = Listener::start(&sandbox, Some(&a), &["tcp:0.0.0.0:10005", "tcp:0.0.0.0:10007"]);
    let l_b = Listener::start(&sandbox, Some(&b), &["tcp:[::]:10050"]);
    let run = check(
        &sandbox,
        &json!({"fail_on_mismatch": false, "expect": [
            {"port": "10000-10100", "state": "free"},
            {"port": "10000-10100", "state": "free", "unit": "marathon-lb.service"},
            {"port": "10005-10008", "unit": "marathon-lb.service"},
            {"port": "10200-10300", "state": "free"},
            {"port": "10005-10100", "proto": "udp", "state": "free"},
        ]}),
    );
    run.assert_ok();
    let (pa, pb) = (l_a.pid, l_b.pid);
    assert_eq!(
        lines(&run),
        [
            format!(
                "10000-10100/tcp: 10005 held by python3 (pid {pa}, unit marathon-lb.service); \
                 10007 held by python3 (pid {pa}, unit marathon-lb.service); \
                 10050 held by python3 (pid {pb}, unit other.service), expected free"
            ),
            format!(
                "10000-10100/tcp: 10050 held by python3 (pid {pb}, unit other.service), \
                 expected free (or held by marathon-lb.service)"
            ),
            "10005-10008/tcp: nothing listening on 10006,10008, expected marathon-lb.service".to_string(),
        ]
    );
    assert_eq!(oks(&run), [false, false, false, true, true]);
    assert_eq!(run.json["results"][0]["port"], "10000-10100");
    let owner_ports: Vec<&Value> =
        run.json["results"][0]["owners"].as_array().unwrap().iter().map(|o| &o["port"]).collect();
    assert_eq!(owner_ports, [10005, 10007, 10050]);
}

#[test]
fn loopback_only_services_are_caught_when_exposed() {
    let sandbox = Sandbox::new();
    let cosmos = UnitCgroup::new(Hierarchy::V2, "dcos-cosmos.service");
    let dns = UnitCgroup::new(Hierarchy::V2, "dcos-mesos-dns.service");
    let bouncer = UnitCgroup::new(Hierarchy::V1Systemd, "dcos-bouncer.service");
    let _l_cosmos = Listener::start(&sandbox, Some(&cosmos), &["tcp:127.0.0.1:7070", "tcp:[::1]:7070"]);
    let l_dns = Listener::start(&sandbox, Some(&dns), &["tcp:0.0.0.0:8123"]);
    let l_bouncer = Listener::start(&sandbox, Some(&bouncer), &["tcp:127.0.0.1:8101", "tcp6only:[::]:8101"]);
    let run = check(
        &sandbox,
        &json!({"fail_on_mismatch": false, "expect": [
            {"port": 7070, "unit": "dcos-cosmos.service", "bind": "loopback"},
            {"port": 8123, "unit": "dcos-mesos-dns.service", "bind": "loopback"},
            {"port": 8101, "unit": "dcos-bouncer.service", "bind": "loopback"},
            {"port": 8123, "unit": "dcos-mesos-dns.service"},
        ]}),
    );
    run.assert_ok();
    assert_eq!(oks(&run), [true, false, false, true]);
    assert_eq!(run.json["results"][0]["msg"], "7070/tcp: dcos-cosmos.service listens, on loopback only");
    assert_eq!(run.json["results"][0]["owners"].as_array().unwrap().len(), 2);
    assert_eq!(
        lines(&run),
        [
            format!(
                "8123/tcp: exposed on 0.0.0.0 by python3 (pid {}, unit dcos-mesos-dns.service), \
                 expected dcos-mesos-dns.service on loopback only",
                l_dns.pid
            ),
            format!(
                "8101/tcp: exposed on :: by python3 (pid {}, unit dcos-bouncer.service), \
                 expected dcos-bouncer.service on loopback only",
                l_bouncer.pid
            ),
        ]
    );
}

#[test]
fn timeout_waits_for_a_listener_that_comes_late() {
    let sandbox = Sandbox::new();
    let unit = UnitCgroup::new(Hierarchy::V2, "dcos-marathon.service");
    let expect = |port: u16| json!([{"port": port, "unit": "dcos-marathon.service"}]);

    // Opens its socket 1 s from now; a single check (timeout 0) misses it.
    let _early = Listener::start_after(&sandbox, Some(&unit), 1.0, &["tcp:0.0.0.0:8080"]);
    let once = check(&sandbox, &json!({"expect": expect(8080), "timeout": 0}));
    once.assert_failed_with("8080/tcp: nothing listening, expected dcos-marathon.service");

    // The same situation with timeout 5: found once it listens.
    let _late = Listener::start_after(&sandbox, Some(&unit), 1.0, &["tcp:0.0.0.0:8443"]);
    let waited = check(&sandbox, &json!({"expect": expect(8443), "timeout": 5}));
    waited.assert_ok();
    assert_eq!(waited.msg(), "all 1 expectations hold");
    assert_eq!(waited.json["results"][0]["owners"][0]["unit"], "dcos-marathon.service");
}

#[test]
fn a_port_used_only_by_outbound_or_time_wait_connections_is_free() {
    let sandbox = Sandbox::new();
    let unit = UnitCgroup::new(Hierarchy::V2, "client.service");
    // 8080: the local end of an open connection to 127.0.0.1:9999;
    // 8081: the local end of a connection this side closed (TIME_WAIT).
    let _client = Listener::start(&sandbox, Some(&unit), &["out:8080:9999", "timewait:8081:9999"]);
    let states = sandbox.sh("ss -tanH '( sport = :8080 or sport = :8081 )' | awk '{print $1, $4}' | sort");
    assert_eq!(states, "ESTAB 127.0.0.1:8080\nTIME-WAIT 127.0.0.1:8081\n", "the sockets are as intended");
    let run = check(
        &sandbox,
        &json!({"fail_on_mismatch": false, "expect": [
            {"port": 8080, "state": "free"},
            {"port": 8081, "state": "free"},
            {"port": 9999, "state": "free"},
        ]}),
    );
    assert_eq!(oks(&run), [true, true, false], "only the listening end on 9999 holds a port: {}", run.json);
}

#[test]
fn facts_list_every_listening_and_bound_socket_with_its_owner() {
    let sandbox = Sandbox::new();
    let net = UnitCgroup::new(Hierarchy::V2, "dcos-net.service");
    let _l_net = Listener::start(&sandbox, Some(&net), &["udp:0.0.0.0:53", "tcp:[::]:62080"]);
    let l_free = Listener::start(&sandbox, None, &["tcp:127.0.0.1:9000", "out:40000:9001"]);
    let run = check(&sandbox, &json!({"expect": [], "facts": true}));
    run.assert_ok();
    // A socket whose cgroup (the kernel's id) names a unit needs no process
    // looked for; one in no unit gets its process.
    let fact = |port: u16, proto: &str, address: &str, pid: Option<u32>, unit: Value| json!({"port": port, "proto": proto, "address": address, "pid": pid, "process": pid.map(|_| "python3"), "unit": unit, "delegated_unit": null, "socket_unit": null, "activates": [], "forwarder": null});
    assert_eq!(
        run.json["ansible_facts"]["port_bindings"],
        json!([
            fact(9000, "tcp", "127.0.0.1", Some(l_free.pid), Value::Null),
            fact(9001, "tcp", "127.0.0.1", Some(l_free.pid), Value::Null),
            fact(62080, "tcp", "::", None, "dcos-net.service".into()),
            fact(53, "udp", "0.0.0.0", None, "dcos-net.service".into()),
        ]),
        "listening and bound sockets only (not the outbound 40000), sorted by protocol and port"
    );
    assert_eq!(run.msg(), "4 sockets hold ports");
    // Without facts=true there are none.
    let plain = check(&sandbox, &json!({"expect": [{"port": 53, "proto": "udp", "unit": "dcos-net"}]}));
    plain.assert_ok();
    assert!(plain.json.get("ansible_facts").is_none());
}

/// Without root: the unit of a socket made in a unit's cgroup v2 still
/// comes from the kernel (`sock_diag` needs no privilege); the owner of one
/// the kernel names no unit for (here the v1 name=systemd hierarchy) is in
/// another user's open files, unknown, and the warning says become.
#[test]
fn without_root_units_come_from_the_kernel_and_other_owners_are_unknown() {
    let sandbox = Sandbox::new();
    let marathon = UnitCgroup::new(Hierarchy::V2, "dcos-marathon.service");
    let mesos = UnitCgroup::new(Hierarchy::V1Systemd, "dcos-mesos-master.service");
    let _l_marathon = Listener::start(&sandbox, Some(&marathon), &["tcp:0.0.0.0:8080"]);
    let _l_mesos = Listener::start(&sandbox, Some(&mesos), &["tcp:0.0.0.0:5050"]);
    let args = json!({"expect": [
        {"port": 8080, "unit": "dcos-marathon.service"},
        {"port": 5050, "unit": "dcos-mesos-master.service"},
    ]})
    .to_string();
    let binary = portmatrix_tests::module_binary("unit_bindings");
    let script = format!("echo '{args}' | setpriv --reuid=65534 --regid=65534 --clear-groups {} -", binary.display());
    let mut command = sandbox.command("sh");
    command.args(["-c", &script]);
    let run = portmatrix_tests::module::run(command);
    run.assert_failed_with(
        "5050/tcp: held by a process not visible here (socket of uid 0), expected dcos-mesos-master.service",
    );
    assert_eq!(run.json["results"][0]["ok"], true, "8080 from the kernel: {}", run.json);
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("the owners of the sockets on 5050/tcp are unknown"), "{}", warnings[0]);
    assert!(warnings[0].contains("become: true"), "{}", warnings[0]);
    assert!(warnings[1].starts_with("could not read the host's DNAT rules"), "{}", warnings[1]);
    assert!(warnings[1].contains("become: true") && warnings[1].contains("more tools failed"), "{}", warnings[1]);
}

/// A process in a system unit's delegated subtree (here a user's manager,
/// `user@1000.service`, whose `app.slice/dcos-marathon.service` its user may
/// make at will) is that system unit's: a system-unit expectation never
/// matches it, and the inner unit is reported beside it.
#[test]
fn a_unit_named_inside_a_delegated_subtree_is_not_the_system_unit() {
    let sandbox = Sandbox::new();
    let squatter = UnitCgroup::new(Hierarchy::V2, "user-1000.slice/user@1000.service/app.slice/dcos-marathon.service");
    let marathon = UnitCgroup::new(Hierarchy::V2, "dcos-marathon.service");
    let l_squatter = Listener::start(&sandbox, Some(&squatter), &["tcp:0.0.0.0:8443"]);
    let _l_marathon = Listener::start(&sandbox, Some(&marathon), &["tcp:0.0.0.0:8080"]);
    let run = check(
        &sandbox,
        &json!({"fail_on_mismatch": false, "facts": true, "expect": [
            {"port": 8443, "unit": "dcos-marathon"},
            {"port": 8080, "unit": "dcos-marathon"},
            {"port": 8443, "state": "free", "unit": "dcos-marathon"},
        ]}),
    );
    run.assert_ok();
    assert_eq!(oks(&run), [false, true, false]);
    let held = format!(
        "held by python3 (pid {}, unit user@1000.service, delegated unit dcos-marathon.service)",
        l_squatter.pid
    );
    assert_eq!(
        lines(&run),
        [
            format!("8443/tcp: {held}, expected dcos-marathon.service"),
            format!("8443/tcp: {held}, expected free (or held by dcos-marathon.service)"),
        ]
    );
    let facts = run.json["ansible_facts"]["port_bindings"].as_array().unwrap();
    let fact = facts.iter().find(|f| f["port"] == 8443).unwrap();
    assert_eq!(fact["unit"], "user@1000.service");
    assert_eq!(fact["delegated_unit"], "dcos-marathon.service");
}

/// A process may call itself anything (its comm: 15 bytes): a newline
/// never splits `msg`, whose lines are one mismatch each, and bytes that
/// are not UTF-8 still name the live process.
#[test]
fn process_names_are_shown_escaped_on_one_line() {
    let sandbox = Sandbox::new();
    let rogue = UnitCgroup::new(Hierarchy::V2, "rogue.service");
    // "evil\nname" and "\xff\xfeweird".
    let l_newline = Listener::start(&sandbox, Some(&rogue), &["comm:6576696c0a6e616d65", "tcp:0.0.0.0:9443"]);
    let l_bytes = Listener::start(&sandbox, Some(&rogue), &["comm:fffe7765697264", "tcp:0.0.0.0:9444"]);
    let run = check(
        &sandbox,
        &json!({"fail_on_mismatch": false, "expect": [
            {"port": 9443, "unit": "dcos-marathon"},
            {"port": 9444, "state": "free"},
        ]}),
    );
    run.assert_ok();
    assert_eq!(
        lines(&run),
        [
            format!(
                "9443/tcp: held by evil\\nname (pid {}, unit rogue.service), expected dcos-marathon.service",
                l_newline.pid
            ),
            format!("9444/tcp: held by \\xff\\xfeweird (pid {}, unit rogue.service), expected free", l_bytes.pid),
        ]
    );
    assert_eq!(run.json["results"][0]["owners"][0]["process"], "evil\nname", "the fact is the name itself");
}

/// A STAND-IN for Docker's userland proxy (a listener named `docker-proxy`,
/// with its command line, in `docker.service`): the port is reported as
/// held by Docker's forwarder for the container it names, not by a unit of
/// the service inside.
#[test]
fn a_container_runtimes_port_forwarder_is_named_with_its_container() {
    let sandbox = Sandbox::new();
    let docker = UnitCgroup::new(Hierarchy::V2, "docker.service");
    let proxy = Listener::start(
        &sandbox,
        Some(&docker),
        &[
            "comm:646f636b65722d70726f7879",
            "-proto",
            "tcp",
            "-host-port",
            "8081",
            "-container-ip",
            "172.17.0.2",
            "-container-port",
            "80",
            "tcp:0.0.0.0:8081",
        ],
    );
    let run = check(&sandbox, &json!({"fail_on_mismatch": false, "expect": [{"port": 8081, "unit": "myapp"}]}));
    run.assert_ok();
    assert_eq!(
        lines(&run),
        [format!(
            "8081/tcp: held by docker-proxy (pid {}, unit docker.service: Docker's port forwarder for the container at \
             172.17.0.2:80), expected myapp.service",
            proxy.pid
        )]
    );
    assert_eq!(
        run.json["results"][0]["owners"][0]["forwarder"],
        json!({"runtime": "Docker", "container": "172.17.0.2:80"})
    );
}

/// A port that is the original destination of a DNAT rule has no socket at
/// all: Docker without its userland proxy (iptables nat, IPv4 and IPv6) and
/// netavark or CNI port mapping (nftables `dnat`) send its traffic to a
/// container. A
/// preflight `free` on it fails, naming the rule; other ports stay free.
#[test]
fn a_port_a_dnat_rule_takes_is_not_free() {
    let sandbox = Sandbox::new();
    sandbox.sh("iptables -t nat -A PREROUTING -p tcp -m tcp --dport 8088 -j DNAT --to-destination 10.0.0.2:80 \
         && nft add table ip nv && nft add chain ip nv pre '{ type nat hook prerouting priority dstnat; }' \
         && nft add rule ip nv pre udp dport 8089 dnat to 10.0.0.3:53 \
         && ip6tables -t nat -A PREROUTING -p tcp -m tcp --dport 8090 -j DNAT --to-destination [fd00::2]:80");
    let run = check(
        &sandbox,
        &json!({"fail_on_mismatch": false, "expect": [
            {"port": 8088, "state": "free"},
            {"port": 8089, "proto": "udp", "state": "free"},
            {"port": 8089, "state": "free"},
            {"port": "8000-8100", "state": "free"},
            {"port": 8090, "state": "free"},
        ]}),
    );
    run.assert_ok();
    assert_eq!(oks(&run), [false, false, true, false, false]);
    let lines = lines(&run);
    assert!(
        lines[0].starts_with("8088/tcp: taken by the DNAT rule `iptables nat PREROUTING: -A PREROUTING -p tcp -m tcp --dport 8088 -j DNAT --to-destination 10.0.0.2:80`"),
        "{lines:?}"
    );
    assert!(
        lines[1]
            .starts_with("8089/udp: taken by the DNAT rule `nftables ip nv pre: udp dport 8089 dnat to 10.0.0.3:53`"),
        "{lines:?}"
    );
    assert!(lines[2].starts_with("8000-8100/tcp: 8088 taken by the DNAT rule"), "{lines:?}");
    assert_eq!(run.json["results"][0]["dnat"].as_array().map(Vec::len), Some(1));
    assert!(
        lines[3].starts_with("8090/tcp: taken by the DNAT rule `ip6tables nat PREROUTING: -A PREROUTING"),
        "{lines:?}"
    );
}
