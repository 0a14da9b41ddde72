//! `unit_bindings` through ansible-playbook on a real systemd container, with
//! stand-in services under real DC/OS unit names (unit files in
//! /etc/systemd/system running a small python3 listener), next to DC/OS's
//! own installer port check on the same node.

use portmatrix_tests::container::{Node, NodeImage, run_playbook};
use serde_json::Value;

/// The stand-in listener: opens the sockets named on its command line
/// (`tcp:ADDR:PORT`, `udp:ADDR:PORT`) and sleeps.
const STANDIN: &str = r#"import socket, sys, time
keep = []
for spec in sys.argv[1:]:
    kind, addr, port = spec.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    if kind == "tcp":
        s.listen(16)
    keep.append(s)
while True:
    time.sleep(3600)
"#;

/// Unit name and the sockets its stand-in holds.
const UNITS: &[(&str, &str)] = &[
    ("dcos-mesos-master.service", "tcp:0.0.0.0:5050"),
    // Cosmos binds loopback only, as it should.
    ("dcos-cosmos.service", "tcp:127.0.0.1:7070"),
    // Something that is not Marathon holds Marathon's port.
    ("rogue-webapp.service", "tcp:0.0.0.0:8080"),
    // Mesos DNS HTTP on all addresses (the docs say localhost).
    ("dcos-mesos-dns.service", "tcp:0.0.0.0:8123 udp:0.0.0.0:61053"),
    ("dcos-exhibitor.service", "tcp:0.0.0.0:2181"),
];

/// DC/OS's installer port check, verbatim: `check_service` and the
/// `print_status` it calls, from the `dcos_install.sh` template in
/// dcos/dcos `gen/build_deploy/bash.py` (colours left empty, as when stdout is
/// not a terminal).
const DCOS_CHECK: &str = r#"
declare -i OVERALL_RC=0
RED=""; BOLD=""; NORMAL=""
function print_status() {
    CODE_TO_TEST=$1
    EXTRA_TEXT=${2:-}
    if [[ $CODE_TO_TEST == 0 ]]; then
        echo -e "${BOLD}PASS $EXTRA_TEXT${NORMAL}"
    else
        echo -e "${RED}FAIL $EXTRA_TEXT${NORMAL}"
    fi
}
function check_service() {
  PORT=$1
  NAME=$2
  echo -e -n "Checking if port $PORT (required by $NAME) is in use: "
  RC=0
  cat /proc/net/{udp*,tcp*} | cut -d: -f3 | cut -d' ' -f1 | grep -q $(printf "%04x" $PORT) && RC=1
  print_status $RC
  (( OVERALL_RC += $RC ))
}
for service in "2181 zookeeper" "5050 mesos-master" "7070 cosmos" "8080 marathon" "8123 mesos-dns"; do
    check_service $service
done
"#;

const PLAYBOOK: &str = r"
- hosts: all
  gather_facts: false
  tasks:
    - name: wait for the stand-in units
      unit_bindings:
        timeout: 30
        expect:
          - {port: 5050, unit: dcos-mesos-master.service}
          - {port: 7070, unit: dcos-cosmos.service}
          - {port: 8080, unit: rogue-webapp.service}
          - {port: 8123, unit: dcos-mesos-dns.service}
          - {port: 61053, proto: udp, unit: dcos-mesos-dns.service}
          - {port: 2181, unit: dcos-exhibitor.service}

    - name: verify the master
      unit_bindings:
        fail_on_mismatch: false
        facts: true
        expect:
          - {port: 5050, unit: dcos-mesos-master.service}
          - {port: 7070, unit: dcos-cosmos.service, bind: loopback}
          - {port: 8080, unit: dcos-marathon.service}
          - {port: 8123, unit: dcos-mesos-dns.service, bind: loopback}
          - {port: 61053, proto: udp, unit: dcos-mesos-dns.service}
          - {port: 15055, unit: dcos-history.service, bind: loopback}

    - name: preflight
      unit_bindings:
        fail_on_mismatch: false
        expect:
          - {port: 8080, state: free}
          - {port: 2181, state: free}
          - {port: 5050, state: free, unit: dcos-mesos-master.service}
          - {port: 9990, state: free}
          - {port: 61053, proto: udp, state: free}

    - name: preflight that fails the task
      unit_bindings:
        expect:
          - {port: 8080, state: free}
      ignore_errors: true
";

fn install_standins(node: &Node) {
    node.exec_ok(&["sh", "-c", &format!("cat > /usr/local/bin/standin-listen <<'EOF'\n{STANDIN}EOF")]);
    for (unit, sockets) in UNITS {
        let unit_file = format!(
            "[Unit]\nDescription=stand-in for {unit}\n\n[Service]\nExecStart=/usr/bin/python3 /usr/local/bin/standin-listen {sockets}\n"
        );
        node.exec_ok(&["sh", "-c", &format!("cat > /etc/systemd/system/{unit} <<'EOF'\n{unit_file}EOF")]);
    }
    node.exec_ok(&["systemctl", "daemon-reload"]);
    let names: Vec<&str> = UNITS.iter().map(|(unit, _)| *unit).collect();
    node.exec_ok(&[&["systemctl", "start"][..], &names].concat());
}

fn main_pid(node: &Node, unit: &str) -> u64 {
    node.exec_ok(&["systemctl", "show", "--property=MainPID", "--value", unit]).trim().parse().unwrap()
}

fn verdicts(result: &Value) -> Vec<(Value, bool)> {
    result["results"].as_array().unwrap().iter().map(|r| (r["port"].clone(), r["ok"].as_bool().unwrap())).collect()
}

#[test]
fn dcos_stand_ins_through_ansible_and_the_installer_check_beside_it() {
    let node = Node::start(NodeImage::Python);
    install_standins(&node);

    let run = run_playbook(&node, PLAYBOOK, &[]);
    assert!(run.success(), "{}", run.diagnostics());
    let waited = run.task_result(&node, "wait for the stand-in units");
    assert_eq!(waited["msg"], "all 6 expectations hold", "{waited}");

    let rogue = main_pid(&node, "rogue-webapp.service");
    let dns = main_pid(&node, "dcos-mesos-dns.service");
    let verify = run.task_result(&node, "verify the master");
    assert_eq!(verify["changed"], false);
    assert_ne!(verify["failed"], true);
    assert_eq!(
        verdicts(&verify),
        [
            (5050.into(), true),
            (7070.into(), true),
            (8080.into(), false),
            (8123.into(), false),
            (61053.into(), true),
            (15055.into(), false)
        ]
    );
    assert_eq!(verify["mismatches"], 3);
    assert_eq!(
        verify["msg"].as_str().unwrap().lines().collect::<Vec<_>>(),
        [
            format!(
                "8080/tcp: held by python3 (pid {rogue}, unit rogue-webapp.service), expected dcos-marathon.service"
            ),
            format!(
                "8123/tcp: exposed on 0.0.0.0 by python3 (pid {dns}, unit dcos-mesos-dns.service), \
                 expected dcos-mesos-dns.service on loopback only"
            ),
            "15055/tcp: nothing listening, expected dcos-history.service on loopback only".to_string(),
        ]
    );
    // A socket that holds: its unit from the kernel's cgroup id, no process
    // looked for (the mismatches above name theirs).
    let master = &verify["results"][0]["owners"][0];
    assert_eq!(master["unit"], "dcos-mesos-master.service");
    assert_eq!(master["pid"], Value::Null);
    assert!(main_pid(&node, "dcos-mesos-master.service") > 0);
    // Every listening/bound socket of the node, each with its unit.
    let facts = verify["ansible_facts"]["port_bindings"].as_array().unwrap();
    let listed: Vec<(u64, &str, &str)> = facts
        .iter()
        .map(|f| (f["port"].as_u64().unwrap(), f["proto"].as_str().unwrap(), f["unit"].as_str().unwrap_or("-")))
        .collect();
    for expected in [
        (2181, "tcp", "dcos-exhibitor.service"),
        (5050, "tcp", "dcos-mesos-master.service"),
        (7070, "tcp", "dcos-cosmos.service"),
        (8080, "tcp", "rogue-webapp.service"),
        (8123, "tcp", "dcos-mesos-dns.service"),
        (61053, "udp", "dcos-mesos-dns.service"),
    ] {
        assert!(listed.contains(&expected), "{expected:?} missing from the facts: {listed:?}");
    }

    let preflight = run.task_result(&node, "preflight");
    assert_eq!(
        verdicts(&preflight),
        [(8080.into(), false), (2181.into(), false), (5050.into(), true), (9990.into(), true), (61053.into(), false)]
    );
    let failed = run.task_result(&node, "preflight that fails the task");
    assert_eq!(failed["failed"], true);
    assert_eq!(
        failed["msg"],
        format!("8080/tcp: held by python3 (pid {rogue}, unit rogue-webapp.service), expected free")
    );
    assert_eq!(run.stats(&node)["failures"], 0);
    assert_eq!(run.stats(&node)["ignored"], 1, "only the task meant to fail failed (ignore_errors)");
    assert_eq!(run.stats(&node)["changed"], 0);

    // DC/OS's own check on the same node: it greps for lower-case hex while
    // the kernel prints upper case, so only ports whose hex has no letter
    // (2181 = 0885) are seen; 5050 (13BA), 7070 (1B9E), 8080 (1F90) and
    // 8123 (1FBB) are called free although they are taken.
    let dcos = node.exec_ok(&["bash", "-c", DCOS_CHECK]);
    assert_eq!(
        dcos.lines().collect::<Vec<_>>(),
        [
            "Checking if port 2181 (required by zookeeper) is in use: FAIL ",
            "Checking if port 5050 (required by mesos-master) is in use: PASS ",
            "Checking if port 7070 (required by cosmos) is in use: PASS ",
            "Checking if port 8080 (required by marathon) is in use: PASS ",
            "Checking if port 8123 (required by mesos-dns) is in use: PASS ",
        ],
        "DC/OS's check calls 8080 free while unit_bindings reports it held (above)"
    );
}

/// A socket unit, its service (which takes the listening socket from
/// systemd as fd 3 and holds it), and a check of both states.
const SOCKET_UNIT: &str = "[Socket]\nListenStream=9090\n";
const SOCKET_SERVICE: &str = "[Service]\nExecStart=/usr/bin/python3 -c \"import socket, time; s = socket.socket(fileno=3); c, _ = s.accept(); time.sleep(3600)\"\n";
const SOCKET_PLAYBOOK: &str = r"
- hosts: all
  gather_facts: false
  tasks:
    - name: check the socket-activated port
      unit_bindings:
        fail_on_mismatch: false
        facts: true
        expect:
          - {port: 9090, state: free, unit: cockpit-like}
          - {port: 9090, unit: cockpit-like.socket}
          - {port: 9090, unit: cockpit-like}
          - {port: 9090, unit: dcos-net}
";

/// Socket activation under real systemd: until the service starts, systemd
/// (PID 1) alone holds the listening socket, for the `.socket` unit; after,
/// the service holds it too. Both times, the socket unit and the service it
/// activates match, and another unit does not.
#[test]
fn a_socket_activated_port_is_its_socket_units_and_its_services() {
    let node = Node::start(NodeImage::Python);
    node.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "printf '{SOCKET_UNIT}' > /etc/systemd/system/cockpit-like.socket && cat > /etc/systemd/system/cockpit-like.service <<'EOF'\n{SOCKET_SERVICE}EOF\nsystemctl daemon-reload && systemctl start cockpit-like.socket"
        ),
    ]);
    let check = |when: &str| {
        let run = run_playbook(&node, SOCKET_PLAYBOOK, &[]);
        assert!(run.success(), "{when}: {}", run.diagnostics());
        run.task_result(&node, "check the socket-activated port")
    };
    let idle = check("idle");
    let oks: Vec<bool> = verdicts(&idle).into_iter().map(|(_, ok)| ok).collect();
    assert_eq!(oks, [true, true, true, false], "{idle}");
    assert_eq!(
        idle["results"][3]["msg"],
        "9090/tcp: held by systemd (pid 1, unit cockpit-like.socket, activates cockpit-like.service), expected dcos-net.service"
    );
    assert!(!node.sh("systemctl is-active --quiet cockpit-like.service").success(), "the check activated nothing");

    // A connection starts the service, which then holds the socket too.
    node.exec_ok(&["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', 9090)).close()"]);
    assert!(node.wait_until("systemctl is-active --quiet cockpit-like.service", std::time::Duration::from_secs(20)));
    let started = check("started");
    let oks: Vec<bool> = verdicts(&started).into_iter().map(|(_, ok)| ok).collect();
    assert_eq!(oks, [true, true, true, false], "{started}");
    let pid = main_pid(&node, "cockpit-like.service");
    assert_eq!(
        started["results"][3]["msg"],
        format!(
            "9090/tcp: held by python3 (pid {pid}, unit cockpit-like.service, from cockpit-like.socket), expected dcos-net.service"
        )
    );
    let facts = started["ansible_facts"]["port_bindings"].as_array().unwrap();
    let fact = facts.iter().find(|f| f["port"] == 9090).unwrap();
    assert_eq!(fact["socket_unit"], "cockpit-like.socket", "{fact}");
    assert_eq!(fact["activates"], serde_json::json!(["cockpit-like.service"]), "{fact}");
}
