//! The `dcos_ports` role through real `ansible-playbook` runs.
//!
//! - The plan: one run on localhost (local connection, `debug` only, no module) prints
//!   what the role's filters ask of the modules for every version, node type and edition.
//!   Each plan is checked here, independently of the Python, against the typed matrix of
//!   `dcos_matrix.rs`: the firewall accepts every port from exactly the sources of its
//!   entry (no port widened, nothing else opened), preflight expects every service port
//!   free but for its unit and every task port free, verify expects every unit listening,
//!   the reservation is the task ranges plus the DC/OS ports from 32768 up, and the
//!   Enterprise entries count only with `dcos_ports_enterprise`.
//! - Bad input: `playbooks/dcos_ports.yml` fails with a message that names the variable
//!   to fix, and leaves the firewall and the reservation as they were.
//! - A good run on a master: reserves and opens, changes nothing the second time, and
//!   `--tags verify` names the units that do not listen.
//!
//! Every run that can reach a module starts `ansible-playbook` inside a [`Sandbox`], so
//! every process it forks (the local connection runs the modules as its children) is in
//! the sandbox's network and mount namespaces: the host's firewall, sysctls and
//! /etc/sysctl.d are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use portmatrix_portset::{PortRange, PortSet};
use portmatrix_tests::container::{PlaybookRun, run_to_end, with_test_settings};
use portmatrix_tests::sandbox::{RESERVED, Sandbox};
use portmatrix_tests::{repo_root, venv_tool};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::dcos_matrix::{Bind, Entry, Node, Proto, Source, VERSIONS, load, matrix_path};

/// The cluster sources the plans are computed with.
const CLUSTER: &str = "198.18.0.0/24";
/// The master sources the plans are computed with.
const MASTERS: &str = "198.18.0.1/32";
/// Linux's default ephemeral floor: DC/OS ports from here up are reserved.
const EPHEMERAL_FLOOR: u16 = 32768;
/// The role's default sysctl.d file.
const SYSCTL_FILE: &str = "/etc/sysctl.d/90-dcos-ports.conf";
/// Inventory variables of a host that Ansible reaches with the local connection (the
/// tests run as root: no become).
const LOCAL: &str = "ansible_connection=local ansible_become=false";

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("portmatrix-dcos-role-").tempdir().expect("a temporary directory")
}

/// The virtualenv's ansible-playbook, inside `sandbox` when given, with the test
/// settings (container.rs) and Ansible's temp files in `dir`. Paths must be absolute:
/// nsenter starts in the namespace's root directory.
fn ansible_playbook(sandbox: Option<&Sandbox>, dir: &Path) -> Command {
    let program = venv_tool("ansible-playbook");
    let mut command = match sandbox {
        Some(sandbox) => sandbox.command(program),
        None => Command::new(program),
    };
    // The local connection's "remote" temp files too.
    with_test_settings(&mut command, dir).env("ANSIBLE_REMOTE_TEMP", dir.join("remote-tmp"));
    command
}

/// Every task result of a run, on every host.
fn results(run: &PlaybookRun) -> Vec<Value> {
    let json = run.json();
    let tasks =
        json["plays"].as_array().into_iter().flatten().flat_map(|p| p["tasks"].as_array().into_iter().flatten());
    tasks.flat_map(|t| t["hosts"].as_object().into_iter().flatten().map(|(_, r)| r.clone())).collect()
}

// ---- the plan ----

const PLAN_PLAYBOOK: &str = r#"
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: plan
      ansible.builtin.debug:
        msg:
          preflight: "{{ entries | dcos_ports_preflight }}"
          verify: "{{ entries | dcos_ports_verify }}"
          reservation: "{{ entries | dcos_ports_reservation }}"
          firewall: "{{ entries | dcos_ports_firewall_rules(cluster, masters) }}"
      vars:
        entries: >-
          {{ lookup('ansible.builtin.file', matrix_dir ~ '/' ~ item.0 ~ '.yml') | from_yaml
             | dcos_ports_node_entries(item.1, item.2) }}
      loop: "{{ versions | product(nodes, [false, true]) | list }}"
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Listening,
    Free,
}

/// A `unit_bindings` `expect` item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    port: PortRange,
    proto: Proto,
    /// None: the module's default, listening.
    state: Option<State>,
    unit: Option<String>,
    bind: Option<Bind>,
}

/// An `open_ports` `rules` item (its comment is not checked).
#[derive(Debug, Deserialize)]
struct Rule {
    ports: Vec<PortRange>,
    proto: Proto,
    sources: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plan {
    preflight: Vec<Expect>,
    verify: Vec<Expect>,
    reservation: Vec<PortRange>,
    firewall: Vec<Rule>,
}

/// Port sets by some key, for comparing plans with expectations.
type Ports<K> = BTreeMap<K, PortSet>;

fn add<K: Ord>(map: &mut Ports<K>, key: K, ports: &PortSet) {
    let slot = map.entry(key).or_default();
    *slot = slot.union(ports);
}

/// Panics, naming the ports that are missing or extra, unless both hold the same ports.
fn assert_same_ports<K: Ord + std::fmt::Debug>(at: &str, what: &str, mut actual: Ports<K>, mut expected: Ports<K>) {
    actual.retain(|_, ports| !ports.is_empty());
    expected.retain(|_, ports| !ports.is_empty());
    let keys: BTreeSet<&K> = actual.keys().chain(expected.keys()).collect();
    let empty = PortSet::new();
    let differences: Vec<String> = keys
        .into_iter()
        .filter_map(|key| {
            let (a, e) = (actual.get(key).unwrap_or(&empty), expected.get(key).unwrap_or(&empty));
            (a != e).then(|| format!("{key:?}: extra [{}], missing [{}]", a.difference(e), e.difference(a)))
        })
        .collect();
    assert!(differences.is_empty(), "{at}: {what}:\n{}", differences.join("\n"));
}

fn ports<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> PortSet {
    PortSet::from_ranges(entries.into_iter().map(|e| e.port))
}

fn services(entries: &[Entry]) -> impl Iterator<Item = &Entry> {
    entries.iter().filter(|e| e.unit.is_some())
}

fn task_ranges(entries: &[Entry]) -> impl Iterator<Item = &Entry> {
    entries.iter().filter(|e| e.unit.is_none())
}

/// The ports of a task range that no unit of the node serves on its protocol.
fn free_task_ports(entries: &[Entry], range: &Entry) -> PortSet {
    PortSet::from(range.port).difference(&ports(services(entries).filter(|s| s.proto == range.proto)))
}

/// The `open_ports` sources that may reach an entry's ports.
fn allowed_sources(entry: &Entry) -> Vec<&'static str> {
    if entry.sources.contains(&Source::Public) {
        return vec!["any"];
    }
    if entry.sources == [Source::Localhost] {
        return vec!["loopback"];
    }
    if entry.sources == [Source::Master] {
        return vec![MASTERS, "loopback"];
    }
    let cluster = entry.sources.iter().all(|s| matches!(s, Source::Master | Source::Agent | Source::PublicAgent));
    assert!(cluster, "{entry}: sources {:?} mix kinds", entry.sources);
    vec![CLUSTER, "loopback"]
}

fn check_firewall(at: &str, node: Node, entries: &[Entry], rules: &[Rule]) {
    let mut actual = Ports::new();
    for rule in rules {
        let ports = PortSet::from_ranges(rule.ports.iter().copied());
        for source in &rule.sources {
            add(&mut actual, (rule.proto, source.clone()), &ports);
        }
    }
    let mut expected = Ports::new();
    let accepted = services(entries)
        .map(|e| (e, PortSet::from(e.port)))
        .chain(task_ranges(entries).map(|e| (e, free_task_ports(entries, e))));
    for (entry, ports) in accepted {
        for source in allowed_sources(entry) {
            add(&mut expected, (entry.proto, source.to_string()), &ports);
        }
    }
    // Public agents' public task range 23-5050 holds dcos-net's 53/tcp: cluster only.
    if node == Node::PublicAgent {
        let from = |source: &str| actual.get(&(Proto::Tcp, source.to_string())).is_some_and(|p| p.contains(53));
        assert!(!from("any") && from(CLUSTER), "{at}: 53/tcp widened or closed: {rules:?}");
    }
    assert_same_ports(at, "firewall: ports accepted by (proto, source)", actual, expected);
}

fn check_preflight(at: &str, entries: &[Entry], expect: &[Expect]) {
    assert!(expect.iter().all(|x| x.state == Some(State::Free) && x.bind.is_none()), "{at}: preflight {expect:?}");
    let mut held: Vec<_> =
        expect.iter().filter(|x| x.unit.is_some()).map(|x| (x.port, x.proto, x.unit.clone())).collect();
    let mut wanted: Vec<_> = services(entries).map(|e| (e.port, e.proto, e.unit.clone())).collect();
    held.sort();
    wanted.sort();
    assert_eq!(held, wanted, "{at}: preflight's service expectations");
    let (mut actual, mut expected) = (Ports::new(), Ports::new());
    let mut counted: BTreeMap<Proto, u32> = BTreeMap::new();
    for x in expect.iter().filter(|x| x.unit.is_none()) {
        add(&mut actual, x.proto, &PortSet::from(x.port));
        *counted.entry(x.proto).or_default() += x.port.len();
    }
    for range in task_ranges(entries) {
        add(&mut expected, range.proto, &free_task_ports(entries, range));
    }
    let distinct: BTreeMap<Proto, u32> = actual.iter().map(|(proto, p)| (*proto, p.len())).collect();
    assert_eq!(counted, distinct, "{at}: preflight's task pieces overlap");
    assert_same_ports(at, "preflight: task ports expected free", actual, expected);
}

fn check_verify(at: &str, entries: &[Entry], expect: &[Expect]) {
    let listening = |x: &Expect| x.state.is_none_or(|s| s == State::Listening);
    assert!(expect.iter().all(listening), "{at}: verify {expect:?}");
    let mut actual: Vec<_> = expect.iter().map(|x| (x.port, x.proto, x.unit.clone(), x.bind)).collect();
    let mut wanted: Vec<_> = services(entries).map(|e| (e.port, e.proto, e.unit.clone(), Some(e.bind))).collect();
    actual.sort();
    wanted.sort();
    assert_eq!(actual, wanted, "{at}: verify: one listening expectation per service entry, none for task ranges");
}

fn check_reservation(at: &str, entries: &[Entry], reservation: &[PortRange]) {
    let high = PortSet::from(PortRange::new(EPHEMERAL_FLOOR, u16::MAX).unwrap());
    let expected = ports(task_ranges(entries)).union(&ports(services(entries)).intersection(&high));
    let actual = PortSet::from_ranges(reservation.iter().copied());
    assert_same_ports(at, "reservation", Ports::from([((), actual)]), Ports::from([((), expected)]));
}

#[test]
fn the_plan_of_every_version_node_type_and_edition_matches_the_matrix() {
    let dir = temp_dir();
    let playbook = dir.path().join("plan.yml");
    std::fs::write(&playbook, PLAN_PLAYBOOK).unwrap();
    let vars = json!({
        "versions": VERSIONS,
        "nodes": ["master", "agent", "public_agent"],
        "matrix_dir": matrix_path(VERSIONS[0]).parent().unwrap(),
        "cluster": [CLUSTER],
        "masters": [MASTERS],
    });
    let run = run_to_end(
        ansible_playbook(None, dir.path())
            .env("ANSIBLE_FILTER_PLUGINS", repo_root().join("roles/dcos_ports/filter_plugins"))
            .args(["-i", "localhost,", "-e", &vars.to_string()])
            .arg(&playbook),
    );
    assert!(run.success(), "{}", run.diagnostics());
    let [task] = &results(&run)[..] else { panic!("one task result expected:\n{}", run.diagnostics()) };
    let items = task["results"].as_array().expect("a loop's results");
    assert_eq!(items.len(), VERSIONS.len() * 3 * 2, "{}", run.diagnostics());
    let mut seen = BTreeSet::new();
    let mut enterprise_only = 0;
    for item in items {
        let (version, node, enterprise): (String, Node, bool) = serde_json::from_value(item["item"].clone()).unwrap();
        let at = format!("{version} {node:?} enterprise={enterprise}");
        let plan: Plan =
            serde_json::from_value(item["msg"].clone()).unwrap_or_else(|e| panic!("{at}: {e}: {}", item["msg"]));
        let entries: Vec<Entry> =
            load(&version).into_iter().filter(|e| e.nodes.contains(&node) && (enterprise || !e.enterprise)).collect();
        enterprise_only += entries.iter().filter(|e| e.enterprise).count();
        check_firewall(&at, node, &entries, &plan.firewall);
        check_preflight(&at, &entries, &plan.preflight);
        check_verify(&at, &entries, &plan.verify);
        check_reservation(&at, &entries, &plan.reservation);
        assert!(seen.insert((version, node, enterprise)), "{at} twice");
    }
    // The editions differ: Enterprise entries were among the checked ones.
    assert!(enterprise_only > 0, "no Enterprise entry on any node type");
}

// ---- runs of playbooks/dcos_ports.yml in a sandbox ----

/// An inventory with one master, `node1`, at 127.0.0.1, with `vars` on its line.
fn master(vars: &str) -> String {
    format!("[masters]\nnode1 ansible_host=127.0.0.1 {LOCAL} {vars}\n")
}

/// `playbooks/dcos_ports.yml` on every host of `inventory` (also those in no node-type
/// group), run inside `sandbox`.
fn role_run(sandbox: &Sandbox, dir: &Path, inventory: &str, args: &[&str]) -> PlaybookRun {
    let path = dir.join("inventory.ini");
    std::fs::write(&path, inventory).unwrap();
    run_to_end(
        ansible_playbook(Some(sandbox), dir)
            .arg("-i")
            .arg(&path)
            .arg(repo_root().join("playbooks/dcos_ports.yml"))
            .args(["-e", "dcos_ports_hosts=all"])
            .args(args),
    )
}

/// The messages of the failed tasks.
fn failures(run: &PlaybookRun) -> String {
    let failed = results(run).into_iter().filter(|r| r["failed"] == true);
    failed.map(|r| r["msg"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join("\n")
}

fn changed(run: &PlaybookRun) -> u64 {
    run.json()["stats"]["node1"]["changed"].as_u64().unwrap_or_else(|| panic!("no stats:\n{}", run.diagnostics()))
}

/// The sandbox's firewall (without iptables-save's dated comments), reservation and
/// sysctl.d files.
fn kernel_state(sandbox: &Sandbox) -> String {
    sandbox.sh(&format!(
        "nft list ruleset; iptables-save | sed '/^#/d'; ip6tables-save | sed '/^#/d'; \
         cat {RESERVED}; ls -A /etc/sysctl.d"
    ))
}

/// The role, given bad input in a fresh sandbox, fails with a message holding every
/// one of `expected`, and leaves the firewall and the reservation as they were.
fn assert_refused(inventory: &str, extra_vars: &Value, expected: &[&str]) {
    let sandbox = Sandbox::new();
    let dir = temp_dir();
    let before = kernel_state(&sandbox);
    let run = role_run(&sandbox, dir.path(), inventory, &["-e", &extra_vars.to_string()]);
    assert!(!run.success() && !run.timed_out, "the bad input was accepted:\n{}", run.diagnostics());
    let message = failures(&run);
    for word in expected {
        assert!(message.contains(word), "`{word}` is not in the failure:\n{message}\n{}", run.diagnostics());
    }
    let after = kernel_state(&sandbox);
    assert_eq!(after, before, "the refused run changed the firewall or the reservation; its failure:\n{message}");
}

#[test]
fn an_unknown_version_is_refused() {
    assert_refused(&master(""), &json!({"dcos_ports_version": "1.9"}), &["dcos_ports_version", "1.9"]);
}

#[test]
fn a_host_in_no_node_type_group_is_refused() {
    let inventory = format!("[others]\nnode1 ansible_host=127.0.0.1 {LOCAL}\n");
    assert_refused(&inventory, &json!({}), &["dcos_ports_node_type", "none of the groups"]);
}

#[test]
fn a_host_in_two_node_type_groups_is_refused() {
    let inventory = master("") + "[agents]\nnode1\n";
    assert_refused(&inventory, &json!({}), &["dcos_ports_node_type", "several"]);
}

#[test]
fn a_cluster_source_that_is_no_address_is_refused() {
    assert_refused(
        &master(""),
        &json!({"dcos_ports_cluster_sources": ["10.0.0.300"]}),
        &["dcos_ports_cluster_sources", "10.0.0.300"],
    );
}

#[test]
fn a_master_source_that_is_no_address_is_refused() {
    assert_refused(
        &master(""),
        &json!({"dcos_ports_master_sources": ["master1"]}),
        &["dcos_ports_master_sources", "master1"],
    );
}

#[test]
fn a_host_known_only_by_name_is_refused() {
    let inventory = format!("[masters]\nmaster-by-name ansible_host=dcos-master.example.invalid {LOCAL}\n");
    assert_refused(&inventory, &json!({}), &["master-by-name", "dcos_ports_address"]);
}

#[test]
fn a_master_run_checks_reserves_opens_is_idempotent_and_verify_names_the_units() {
    let host_file = Path::new(SYSCTL_FILE);
    assert!(!host_file.exists(), "{SYSCTL_FILE} exists on this machine: the test could not tell who wrote it");
    let sandbox = Sandbox::new();
    let dir = temp_dir();
    let inventory = master("");
    let version = ["-e", r#"{"dcos_ports_version": "1.13"}"#];
    assert!(!kernel_state(&sandbox).contains("dcos_ports"), "a fresh sandbox has the role's firewall");

    // Check mode (with diff) says what would change and changes nothing.
    let before = kernel_state(&sandbox);
    let check = role_run(&sandbox, dir.path(), &inventory, &[&version[..], &["--check", "--diff"]].concat());
    assert!(check.success() && changed(&check) > 0, "check mode:\n{}", check.diagnostics());
    assert_eq!(kernel_state(&sandbox), before, "check mode changed the sandbox");

    let first = role_run(&sandbox, dir.path(), &inventory, &version);
    assert!(first.success() && changed(&first) > 0, "first run:\n{}", first.diagnostics());
    let second = role_run(&sandbox, dir.path(), &inventory, &version);
    assert!(second.success() && changed(&second) == 0, "second run:\n{}", second.diagnostics());

    let reserved = PortSet::parse_list(&sandbox.reserved()).unwrap();
    assert!(reserved.contains(61053), "reservation {reserved}");
    let persisted = sandbox.read_optional(SYSCTL_FILE).unwrap_or_default();
    assert!(persisted.contains("61053"), "{SYSCTL_FILE} in the sandbox: {persisted:?}");
    assert!(kernel_state(&sandbox).contains("dcos_ports"), "no dcos_ports chain or table in the sandbox");

    let verify = role_run(&sandbox, dir.path(), &inventory, &[&version[..], &["--tags", "verify"]].concat());
    assert!(!verify.success(), "verify passed with nothing listening:\n{}", verify.diagnostics());
    let message = failures(&verify);
    assert!(message.contains("dcos-mesos-master.service"), "verify's failure: {message}");

    drop(sandbox);
    assert!(!host_file.exists(), "{SYSCTL_FILE} was written on this machine, not in the sandbox");
}

#[test]
fn the_default_cluster_and_master_sources_are_those_hosts_addresses() {
    // A master by ansible_host, an agent by dcos_ports_address (IPv6), a public agent
    // typed by the variable alone, and an outsider that is no cluster node.
    let inventory = format!(
        "[masters]\nnode1 ansible_host=127.0.0.1 dcos_ports_address=198.18.0.1 {LOCAL}\n\
         [agents]\nagent1 ansible_host=198.18.0.2 dcos_ports_address=2001:db8::2\n\
         [others]\npublic1 ansible_host=198.18.0.3 dcos_ports_node_type=public_agent\n\
         outsider1 ansible_host=198.18.0.9\n"
    );
    let sandbox = Sandbox::new();
    let dir = temp_dir();
    let run = role_run(&sandbox, dir.path(), &inventory, &["--limit", "node1", "--tags", "firewall", "--check"]);
    assert!(run.success(), "firewall in check mode:\n{}", run.diagnostics());
    let firewall = results(&run).into_iter().find(|r| r.get("backend").is_some()).expect("the open_ports result");
    let cluster_rule = firewall["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|rule| rule["comment"] == "DC/OS cluster")
        .unwrap_or_else(|| panic!("no cluster rule in {firewall}"));
    assert_eq!(
        cluster_rule["sources"],
        json!(["loopback", "198.18.0.1/32", "198.18.0.3/32", "2001:db8::2/128"]),
        "the cluster's sources"
    );
    let masters_rule = firewall["rules"].as_array().unwrap().iter().find(|rule| rule["comment"] == "DC/OS masters");
    assert_eq!(
        masters_rule.unwrap_or_else(|| panic!("no masters rule in {firewall}"))["sources"],
        json!(["loopback", "198.18.0.1/32"]),
        "the masters' sources"
    );
}
