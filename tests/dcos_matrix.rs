//! The DC/OS port data, `roles/dcos_ports/files/matrix/<version>.yml`: every file is
//! well-formed, the versions differ exactly as `dcos-ports-facts.md` section 1 says, and
//! the 1.13 file says what every row of the seed page's tables says, with the corrections
//! listed here (each with its reason; the same list is in the matrix README).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use ::portmatrix_portset::PortRange;
use serde::Deserialize;

pub(crate) const VERSIONS: &[&str] = &["1.10", "1.11", "1.12", "1.13", "2.0", "2.1", "2.2"];
/// The component of every Mesos task port range (the docs' name; those ranges have no unit).
const TASK_PORTS: &str = "Default advertised port ranges (for Mesos tasks)";
const REQUIRED_KEYS: &[&str] = &["port", "proto", "component", "unit", "sources", "nodes", "enterprise", "bind"];
const OPTIONAL_KEYS: &[&str] = &["documented_unit"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Proto {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Node {
    Master,
    Agent,
    PublicAgent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    Master,
    Agent,
    PublicAgent,
    Public,
    Localhost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Bind {
    Any,
    Loopback,
}

use Node::{Agent, Master, PublicAgent};
use Proto::{Tcp, Udp};

/// One item of `ports:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    pub(crate) port: PortRange,
    pub(crate) proto: Proto,
    pub(crate) component: String,
    /// None for Mesos task ports: any task may hold them.
    pub(crate) unit: Option<String>,
    #[serde(default)]
    pub(crate) documented_unit: Option<String>,
    pub(crate) sources: Vec<Source>,
    pub(crate) nodes: Vec<Node>,
    pub(crate) enterprise: bool,
    pub(crate) bind: Bind,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:?} ({})", self.port, self.proto, self.component)
    }
}

pub(crate) fn matrix_path(version: &str) -> PathBuf {
    portmatrix_tests::repo_root().join("roles/dcos_ports/files/matrix").join(format!("{version}.yml"))
}

pub(crate) fn load(version: &str) -> Vec<Entry> {
    let path = matrix_path(version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_matrix(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a matrix file: `ports:` and nothing else, each item with exactly the allowed
/// keys, a port written as an integer or an `"A-B"` string, valid values.
fn parse_matrix(text: &str) -> Result<Vec<Entry>, String> {
    use serde_norway::Value;
    let doc: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    let top = doc.as_mapping().ok_or("the file is not a mapping")?;
    if top.len() != 1 || top.get("ports").is_none() {
        return Err("the file must hold `ports:` and nothing else".into());
    }
    let items = top["ports"].as_sequence().ok_or("`ports` is not a list")?;
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let map = item.as_mapping().ok_or(format!("ports[{i}] is not a mapping"))?;
        let keys: BTreeSet<&str> = map.keys().filter_map(Value::as_str).collect();
        if keys.len() != map.len() {
            return Err(format!("ports[{i}]: a key is not a string"));
        }
        if let Some(key) = keys.iter().find(|k| !REQUIRED_KEYS.contains(k) && !OPTIONAL_KEYS.contains(k)) {
            return Err(format!("ports[{i}]: unknown key `{key}`"));
        }
        if let Some(key) = REQUIRED_KEYS.iter().find(|k| !keys.contains(*k)) {
            return Err(format!("ports[{i}]: missing key `{key}`"));
        }
        match &map["port"] {
            Value::Number(_) => {}
            Value::String(s) if s.contains('-') => {}
            other => return Err(format!("ports[{i}]: port {other:?} is neither an integer nor an \"A-B\" range")),
        }
        let entry: Entry = serde_norway::from_value(item.clone()).map_err(|e| format!("ports[{i}]: {e}"))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Ports that bind loopback only, from the open-source code (facts section 2); `bind:
/// loopback` exactly for these. The last three are in no docs table and so in no file.
const LOOPBACK_ONLY: &[(u16, Proto)] = &[
    (7070, Tcp),
    (9990, Tcp),
    (8101, Tcp),
    (15055, Tcp),
    (62080, Tcp),
    (61092, Tcp),
    (62020, Tcp),
    (8090, Tcp),
    (61825, Udp),
];

/// Entries that may overlap on a node, (fixed port, proto, node), with the reason.
const ALLOWED_OVERLAPS: &[(u16, Proto, Node, &str)] = &[(
    53,
    Tcp,
    PublicAgent,
    "public agents advertise 23-5050 to tasks (facts 1) while dcos-net holds 53 there, on the spartan addresses only (facts 2)",
)];

/// Every problem of one file's entries (empty when it is fine).
fn check_entries(entries: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let mut problem = |what: String| problems.push(format!("ports[{i}] {e}: {what}"));
        if e.component.trim().is_empty() {
            problem("empty component".into());
        }
        match &e.unit {
            Some(unit) => {
                if !unit.ends_with(".service") || unit.contains(['/', ' ']) {
                    problem(format!("unit `{unit}` is not a service unit name"));
                }
                if e.documented_unit.as_ref() == Some(unit) {
                    problem("documented_unit repeats unit (give it only where the docs print another name)".into());
                }
            }
            None => {
                if e.component != TASK_PORTS || e.nodes.contains(&Master) || e.documented_unit.is_some() {
                    problem(format!("only the agents' `{TASK_PORTS}` may have no unit (and no documented_unit)"));
                }
            }
        }
        let sources: BTreeSet<Source> = e.sources.iter().copied().collect();
        if e.sources.is_empty() || sources.len() != e.sources.len() {
            problem("sources empty or repeated".into());
        }
        if (sources.contains(&Source::Public) || sources.contains(&Source::Localhost)) && sources.len() != 1 {
            problem("public and localhost stand alone in sources".into());
        }
        let nodes: BTreeSet<Node> = e.nodes.iter().copied().collect();
        if e.nodes.is_empty() || nodes.len() != e.nodes.len() {
            problem("nodes empty or repeated".into());
        }
        if e.bind == Bind::Loopback && e.sources != [Source::Localhost] {
            problem("bound to loopback but reachable from other than localhost".into());
        }
        let loopback_fact = e.port.len() == 1 && LOOPBACK_ONLY.contains(&(e.port.start(), e.proto));
        if loopback_fact != (e.bind == Bind::Loopback) {
            problem(format!("bind {:?}, but facts section 2 says loopback only: {loopback_fact}", e.bind));
        }
    }
    for (i, a) in entries.iter().enumerate() {
        for b in &entries[i + 1..] {
            let overlap = a.proto == b.proto && a.port.start() <= b.port.end() && b.port.start() <= a.port.end();
            for node in a.nodes.iter().filter(|n| overlap && b.nodes.contains(n)) {
                let fixed = if a.port.len() <= b.port.len() { a } else { b };
                let allowed = ALLOWED_OVERLAPS.iter().any(|&(p, proto, n, _)| {
                    fixed.port.len() == 1 && fixed.port.start() == p && proto == a.proto && n == *node
                });
                if !allowed {
                    problems.push(format!("{a} and {b} overlap on {node:?}"));
                }
            }
        }
    }
    problems
}

#[test]
fn every_version_file_is_well_formed() {
    for version in VERSIONS {
        let problems = check_entries(&load(version));
        assert!(problems.is_empty(), "{version}.yml:\n{}", problems.join("\n"));
    }
}

#[test]
fn no_other_file_in_the_matrix_folder() {
    let dir = matrix_path("1.13").parent().unwrap().to_path_buf();
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| std::path::Path::new(name).extension().is_some_and(|e| e == "yml"))
        .collect();
    found.sort();
    let mut expected: Vec<String> = VERSIONS.iter().map(|v| format!("{v}.yml")).collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn masters_and_public_agents_serve_80_and_443_to_everyone() {
    for version in VERSIONS {
        let entries = load(version);
        for node in [Master, PublicAgent] {
            for port in [80, 443] {
                let open = entries.iter().any(|e| {
                    e.proto == Tcp && e.port.contains(port) && e.nodes.contains(&node) && e.sources == [Source::Public]
                });
                assert!(open, "{version}.yml: {port}/tcp on {node:?} is not open to everyone");
            }
        }
        let private = entries.iter().filter(|e| e.nodes.contains(&Agent));
        for e in private {
            assert!(!e.sources.contains(&Source::Public), "{version}.yml: {e} is public on private agents");
        }
    }
}

// ---- the differences between versions (facts section 1) ----

/// What a file says about one port (range) on one node type.
#[derive(Debug, Clone, PartialEq)]
struct Attrs {
    component: String,
    unit: Option<String>,
    documented_unit: Option<String>,
    sources: BTreeSet<Source>,
    enterprise: bool,
    bind: Bind,
}

type Records = BTreeMap<(PortRange, Proto, Node), Attrs>;

fn records(entries: &[Entry]) -> Records {
    let mut out = Records::new();
    for e in entries {
        for node in &e.nodes {
            let attrs = Attrs {
                component: e.component.clone(),
                unit: e.unit.clone(),
                documented_unit: e.documented_unit.clone(),
                sources: e.sources.iter().copied().collect(),
                enterprise: e.enterprise,
                bind: e.bind,
            };
            out.insert((e.port, e.proto, *node), attrs);
        }
    }
    out
}

/// A change from 1.13 to another version.
enum Edit {
    Remove(u16, Proto),
    /// Replaces what the base says about the port on these node types.
    Put {
        port: u16,
        proto: Proto,
        nodes: &'static [Node],
        attrs: fn() -> Attrs,
    },
}

const CLUSTER: &[Source] = &[Source::Master, Source::Agent, Source::PublicAgent];
const ALL_NODES: &[Node] = &[Master, Agent, PublicAgent];

fn attrs(component: &str, unit: &str, documented: Option<&str>, sources: &[Source]) -> Attrs {
    Attrs {
        component: component.into(),
        unit: Some(unit.into()),
        documented_unit: documented.map(Into::into),
        sources: sources.iter().copied().collect(),
        enterprise: false,
        bind: Bind::Any,
    }
}

const METRICS_UNITS: &str = "dcos-metrics-agent.service/dcos-metrics-master.service";

/// Facts section 1, as edits of the 1.13 file (which has the 3888/2888 edit that every
/// version shares, telegraf and fluent-bit, and 15055).
fn edits_from_1_13(version: &str) -> Vec<Edit> {
    match version {
        "1.10" | "1.11" => vec![
            Edit::Put {
                port: 61091,
                proto: Tcp,
                nodes: &[Master],
                attrs: || attrs("dcos-metrics", "dcos-metrics-master.service", Some(METRICS_UNITS), CLUSTER),
            },
            Edit::Put {
                port: 61091,
                proto: Tcp,
                nodes: &[Agent, PublicAgent],
                attrs: || attrs("dcos-metrics", "dcos-metrics-agent.service", Some(METRICS_UNITS), CLUSTER),
            },
            Edit::Remove(61092, Tcp),
        ],
        "1.12" | "1.13" | "2.0" => vec![],
        "2.1" | "2.2" => vec![
            Edit::Remove(15055, Tcp),
            Edit::Put {
                port: 2379,
                proto: Tcp,
                nodes: &[Master],
                attrs: || attrs("etcd", "dcos-etcd.service", None, CLUSTER),
            },
            Edit::Put {
                port: 2380,
                proto: Tcp,
                nodes: &[Master],
                attrs: || attrs("etcd", "dcos-etcd.service", None, &[Source::Master]),
            },
            Edit::Put {
                port: 62091,
                proto: Tcp,
                nodes: ALL_NODES,
                attrs: || attrs("Calico Felix", "dcos-calico-felix.service", Some("docs-calico.service"), CLUSTER),
            },
        ],
        other => panic!("no facts for version {other}"),
    }
}

fn apply(base: &Records, edits: &[Edit]) -> Records {
    let mut out = base.clone();
    for edit in edits {
        match *edit {
            Edit::Remove(port, proto) => out.retain(|(range, p, _), _| !(*p == proto && *range == single(port))),
            Edit::Put { port, proto, nodes, attrs } => {
                out.retain(|(range, p, n), _| !(*p == proto && *range == single(port) && nodes.contains(n)));
                for node in nodes {
                    out.insert((single(port), proto, *node), attrs());
                }
            }
        }
    }
    out
}

fn single(port: u16) -> PortRange {
    PortRange::single(port).unwrap()
}

/// How `actual` differs from `expected`, one line per (port, proto, node).
fn differences(expected: &Records, actual: &Records) -> Vec<String> {
    let keys: BTreeSet<_> = expected.keys().chain(actual.keys()).collect();
    let mut out = Vec::new();
    for key @ (range, proto, node) in keys {
        match (expected.get(key), actual.get(key)) {
            (Some(_), None) => out.push(format!("{range}/{proto:?} on {node:?}: missing")),
            (None, Some(_)) => out.push(format!("{range}/{proto:?} on {node:?}: not expected")),
            (Some(e), Some(a)) if e != a => out.push(format!("{range}/{proto:?} on {node:?}: {a:?}, expected {e:?}")),
            _ => {}
        }
    }
    out
}

#[test]
fn versions_differ_exactly_as_the_facts_say() {
    let base = records(&load("1.13"));
    for version in VERSIONS {
        let diff = differences(&apply(&base, &edits_from_1_13(version)), &records(&load(version)));
        assert!(diff.is_empty(), "{version}.yml against 1.13.yml and facts section 1:\n{}", diff.join("\n"));
    }
    // The edits are real changes: no version equals 1.13 but those the facts say do.
    for version in VERSIONS {
        let same = records(&load(version)) == base;
        assert_eq!(same, ["1.12", "1.13", "2.0"].contains(version), "{version}.yml");
    }
    assert_eq!(load("2.2"), load("2.1"), "2.2 is identical to 2.1");
    assert_eq!(load("1.10"), load("1.11"), "1.10 and 1.11 share one table");
}

#[test]
fn a_missing_version_edit_is_reported() {
    let base = records(&load("1.13"));
    let mut edits = edits_from_1_13("2.1");
    edits.remove(0); // forget that 15055 went away
    let diff = differences(&apply(&base, &edits), &records(&load("2.1")));
    assert_eq!(diff, ["15055/Tcp on Master: missing"]);
    let mut changed = records(&load("1.10"));
    for attributes in changed.values_mut() {
        attributes.enterprise = false;
    }
    let diff = differences(&apply(&base, &edits_from_1_13("1.10")), &changed);
    assert!(diff.iter().any(|d| d.starts_with("8101/Tcp on Master: ")), "{diff:?}");
}

// ---- the seed page ----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Section {
    AllNodes,
    Master,
    Agent,
}

/// One row of the seed page's tables, cells as printed (backticks and notes removed).
#[derive(Debug, Clone)]
struct Row {
    line: usize,
    section: Section,
    proto: Proto,
    port: String,
    component: String,
    unit: String,
    source: String,
    destination: String,
    enterprise: bool,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seed line {}: {}/{:?} {}", self.line, self.port, self.proto, self.component)
    }
}

/// The seed page, from the repository's copy (tests/data), so that the test needs
/// nothing outside the clone. Where the team's reference folder sits beside the
/// clone, the copy must still be that page byte for byte.
fn seed_text() -> String {
    let read = |path: &std::path::Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let root = portmatrix_tests::repo_root();
    let text = read(&root.join("tests/data/dcos-1.13-ports.md")).unwrap_or_else(|e| panic!("{e}"));
    if let Ok(reference) = read(&root.join("../shared/reference/dcos-1.13-ports.md")) {
        assert!(text == reference, "tests/data/dcos-1.13-ports.md differs from shared/reference/dcos-1.13-ports.md");
    }
    text
}

/// Every table row of the seed page, under its `## section` and `### TCP|UDP` heading.
fn parse_seed(text: &str) -> Result<Vec<Row>, String> {
    let (mut section, mut proto) = (None, None);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(title) = line.strip_prefix("## ") {
            section = match title.trim() {
                "All nodes" => Some(Section::AllNodes),
                "Master" => Some(Section::Master),
                "Agent" => Some(Section::Agent),
                _ => None,
            };
            proto = None;
        } else if let Some(title) = line.strip_prefix("### ") {
            proto = match title.trim() {
                "TCP" => Some(Tcp),
                "UDP" => Some(Udp),
                _ => None,
            };
        } else if line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.first() == Some(&"Port") || cells.iter().all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-')) {
                continue;
            }
            let (Some(section), Some(proto)) = (section, proto) else {
                return Err(format!("seed line {}: a table row outside a known section: {line}", i + 1));
            };
            let [port, component, unit, source, destination] = cells[..] else {
                return Err(format!("seed line {}: not five cells: {line}", i + 1));
            };
            let enterprise = cells.iter().any(|c| c.contains("[enterprise"));
            rows.push(Row {
                line: i + 1,
                section,
                proto,
                port: port.into(),
                component: component.into(),
                unit: unit.replace('`', ""),
                source: without_notes(source),
                destination: without_notes(destination),
                enterprise,
            });
        }
    }
    Ok(rows)
}

/// `agent/master (may change ...)` -> `agent/master`; `master [enterprise ... /]` -> `master`.
fn without_notes(cell: &str) -> String {
    let cell = cell.split("[enterprise").next().unwrap_or_default();
    cell.split(" (").next().unwrap_or_default().trim().to_string()
}

/// The rule for a Source cell. "agent" means private and public agents alike: a public
/// agent is a Mesos agent and a cluster node, and the docs have no other name for it.
fn sources_of(cell: &str) -> Option<&'static [Source]> {
    Some(match cell {
        "agent/master" => CLUSTER,
        "master" => &[Source::Master],
        "localhost" => &[Source::Localhost],
        "public IP" => &[Source::Public],
        _ => return None,
    })
}

/// The rule for a Destination cell, within the row's section: the node types where the
/// row's unit runs. `agent/extra` (61091) is read as every node: it sits under "All
/// nodes" and names a master unit (dcos-metrics-master.service).
fn nodes_of(section: Section, cell: &str) -> Option<Vec<Node>> {
    let in_section: &[Node] = match section {
        Section::AllNodes => ALL_NODES,
        Section::Master => &[Master],
        Section::Agent => &[Agent, PublicAgent],
    };
    let named: &[Node] = match cell {
        "agent/master" | "agent/extra" | "localhost" => ALL_NODES,
        "master" | "localhost(master)" => &[Master],
        "agent" => &[Agent, PublicAgent],
        _ => return None,
    };
    let nodes: Vec<Node> = in_section.iter().copied().filter(|n| named.contains(n)).collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// Which seed rows a correction applies to.
#[derive(Clone, Copy)]
enum Rows {
    Port(&'static str, Proto),
    Unit(&'static str),
}

enum Change {
    /// The row is not in the file.
    Omit,
    Sources(&'static [Source]),
    Nodes(&'static [Node]),
    Enterprise(bool),
    /// On these node types another unit (and component) serves the port, and no
    /// `documented_unit` is kept: the docs print the new name, or no table lists the node.
    Unit {
        nodes: &'static [Node],
        component: Option<&'static str>,
        unit: &'static str,
    },
}

/// Every way the 1.13 file deliberately differs from a seed row (the matrix README lists
/// the same). Facts section 1's later docs edits come first.
const SEED_CORRECTIONS: &[(Rows, Change, &str)] = &[
    (Rows::Port("3888", Tcp), Change::Sources(&[Source::Master]), "facts 1: docs edit of Dec 2019, from masters only"),
    (
        Rows::Port("61091", Tcp),
        Change::Unit { nodes: ALL_NODES, component: Some("telegraf"), unit: "dcos-telegraf.service" },
        "facts 1: telegraf serves 61091 from 1.12 on (the docs were edited to say so)",
    ),
    (
        Rows::Port("5051", Tcp),
        Change::Unit { nodes: &[PublicAgent], component: None, unit: "dcos-mesos-slave-public.service" },
        "facts 1: public agents run dcos-mesos-slave-public.service, which no table lists",
    ),
    (
        Rows::Unit("Any Mesos task"),
        Change::Nodes(&[Agent]),
        "facts 1: these are the private agents' ranges; public agents advertise 1-21,23-5050,5052-32000",
    ),
    (
        Rows::Port("62080", Tcp),
        Change::Sources(&[Source::Localhost]),
        "facts 2: dcos-net's REST API binds loopback only; no other node can reach it",
    ),
    (
        Rows::Port("9090", Tcp),
        Change::Enterprise(true),
        "facts 1: open-source Metronome serves HTTP on 9000 (in the file), not 9090/9443",
    ),
    (
        Rows::Port("9443", Tcp),
        Change::Enterprise(true),
        "facts 1: open-source Metronome serves HTTP on 9000 (in the file), not 9090/9443",
    ),
    (
        Rows::Port("Ephemeral", Tcp),
        Change::Omit,
        "pkgpanda's API has no fixed port (source and destination None): nothing to open, reserve or check",
    ),
];

/// Unit names the docs print that no node has (facts section 1), and the real one.
/// The file keeps the printed name as `documented_unit`. None: no unit at all.
const UNIT_NAME_FIXES: &[(&str, Option<&str>, &str)] = &[
    ("dcos-mesos-net.service", Some("dcos-mesos-dns.service"), "facts 1: 61053 is served by Mesos DNS"),
    ("dcos-history-service.service", Some("dcos-history.service"), "facts 1: the unit's real name"),
    ("dcos-adminrouter-agent", Some("dcos-adminrouter-agent.service"), "facts 1: the unit's full name"),
    ("Any Mesos task", None, "task ports: whichever task Mesos gives them to, no fixed unit"),
];

/// 1.13 file entries that no seed row gives: (port, proto, node or every node, reason).
const SEED_ADDITIONS: &[(&str, Proto, Option<Node>, &str)] = &[
    ("2888", Tcp, None, "facts 1: docs edit of Dec 2019, ZooKeeper master -> master"),
    ("61092", Tcp, None, "facts 1: fluent-bit from 1.12 on"),
    ("9000", Tcp, None, "facts 1: open-source Metronome's HTTP API"),
    ("1-21", Tcp, Some(PublicAgent), "facts 1: public agents' task ports"),
    ("23-5050", Tcp, Some(PublicAgent), "facts 1: public agents' task ports"),
    ("5052-32000", Tcp, Some(PublicAgent), "facts 1: public agents' task ports"),
];

fn corrections(row: &Row) -> impl Iterator<Item = &'static Change> + '_ {
    SEED_CORRECTIONS
        .iter()
        .filter(move |(rows, _, _)| match *rows {
            Rows::Port(port, proto) => row.port == port && row.proto == proto,
            Rows::Unit(unit) => row.unit == unit,
        })
        .map(|(_, change, _)| change)
}

/// Every problem between the seed's rows and the 1.13 file (empty when they agree).
fn check_seed(rows: &[Row], entries: &[Entry]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut matched = BTreeSet::new();
    for row in rows {
        let mut problem = |what: String| problems.push(format!("{row}: {what}"));
        if corrections(row).any(|c| matches!(c, Change::Omit)) {
            continue;
        }
        let Ok(range) = row.port.parse::<PortRange>() else {
            problem(format!("port `{}` is neither a port nor a range", row.port));
            continue;
        };
        let Some(mut sources) = sources_of(&row.source) else {
            problem(format!("unknown source `{}`", row.source));
            continue;
        };
        let Some(mut nodes) = nodes_of(row.section, &row.destination) else {
            problem(format!("unknown destination `{}`", row.destination));
            continue;
        };
        let (mut enterprise, mut unit_change) = (row.enterprise, None);
        for change in corrections(row) {
            match change {
                Change::Omit => {}
                Change::Sources(s) => sources = s,
                Change::Nodes(n) => nodes = n.to_vec(),
                Change::Enterprise(e) => enterprise = *e,
                Change::Unit { nodes, component, unit } => unit_change = Some((*nodes, *component, *unit)),
            }
        }
        let fix = UNIT_NAME_FIXES.iter().find(|(printed, _, _)| *printed == row.unit);
        for node in &nodes {
            let found: Vec<&Entry> =
                entries.iter().filter(|e| e.port == range && e.proto == row.proto && e.nodes.contains(node)).collect();
            let [entry] = found[..] else {
                problem(format!("{} entries for {node:?} in 1.13.yml, expected one", found.len()));
                continue;
            };
            matched.insert((range, row.proto, *node));
            let (mut component, mut unit, mut documented) = match fix {
                Some((printed, real, _)) => (row.component.as_str(), real.map(str::to_string), real.map(|_| *printed)),
                None => (row.component.as_str(), Some(row.unit.clone()), None),
            };
            if let Some((changed_nodes, new_component, new_unit)) = unit_change
                && changed_nodes.contains(node)
            {
                component = new_component.unwrap_or(component);
                (unit, documented) = (Some(new_unit.into()), None);
            }
            if entry.component != component {
                problem(format!("component `{}` on {node:?}, expected `{component}`", entry.component));
            }
            if entry.unit != unit || entry.documented_unit.as_deref() != documented {
                problem(format!(
                    "unit {:?} (documented_unit {:?}) on {node:?}, expected {unit:?} ({documented:?})",
                    entry.unit, entry.documented_unit
                ));
            }
            if entry.sources != sources {
                problem(format!("sources {:?}, expected {sources:?}", entry.sources));
            }
            if entry.enterprise != enterprise {
                problem(format!("enterprise {}, expected {enterprise}", entry.enterprise));
            }
        }
    }
    for e in entries {
        for node in &e.nodes {
            let added = SEED_ADDITIONS.iter().any(|&(port, proto, n, _)| {
                port.parse() == Ok(e.port) && proto == e.proto && n.is_none_or(|n| n == *node)
            });
            if !matched.contains(&(e.port, e.proto, *node)) && !added {
                problems.push(format!("1.13.yml: {e} on {node:?}: no seed row and not a listed addition"));
            }
        }
    }
    problems
}

#[test]
fn every_seed_row_is_in_the_1_13_file() {
    let rows = parse_seed(&seed_text()).unwrap();
    // The page's 6 + 2 + 24 + 1 + 9 rows: the parser saw every table.
    assert_eq!(rows.len(), 42, "{rows:#?}");
    let entries = load("1.13");
    let problems = check_seed(&rows, &entries);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // No correction, name fix or addition is stale.
    for (which, _, reason) in SEED_CORRECTIONS {
        let used = rows.iter().any(|row| match *which {
            Rows::Port(port, proto) => row.port == port && row.proto == proto,
            Rows::Unit(unit) => row.unit == unit,
        });
        assert!(used, "a correction matches no seed row: {reason}");
    }
    for (printed, _, reason) in UNIT_NAME_FIXES {
        assert!(rows.iter().any(|row| row.unit == *printed), "no seed row prints {printed}: {reason}");
    }
    for (port, proto, _, reason) in SEED_ADDITIONS {
        let found = entries.iter().any(|e| port.parse() == Ok(e.port) && e.proto == *proto);
        assert!(found, "addition {port} is not in 1.13.yml: {reason}");
    }
}

/// A change to a seed row, for the negative tests.
type RowEdit = fn(&mut Row);

#[test]
fn a_seed_row_that_does_not_match_is_named() {
    let rows = parse_seed(&seed_text()).unwrap();
    let entries = load("1.13");
    let with = |edit: RowEdit| {
        let mut rows = rows.clone();
        let row = rows.iter_mut().find(|r| r.port == "8080").unwrap();
        edit(row);
        check_seed(&rows, &entries)
    };
    let cases: [(RowEdit, &str); 6] = [
        (|r| r.component = "Chronos".into(), "8080/Tcp Chronos: component `Marathon` on Master, expected `Chronos`"),
        (|r| r.unit = "marathon.service".into(), "8080/Tcp Marathon: unit Some(\"dcos-marathon.service\")"),
        (|r| r.source = "master".into(), "8080/Tcp Marathon: sources [Master, Agent, PublicAgent], expected [Master]"),
        (|r| r.source = "the moon".into(), "8080/Tcp Marathon: unknown source `the moon`"),
        (|r| r.enterprise = true, "8080/Tcp Marathon: enterprise false, expected true"),
        (|r| r.port = "8081".into(), "8081/Tcp Marathon: 0 entries for Master in 1.13.yml, expected one"),
    ];
    for (edit, message) in cases {
        let problems = with(edit);
        assert!(problems.iter().any(|p| p.contains(message)), "expected `{message}` in {problems:#?}");
    }
    // A port the file has but no row gives.
    let mut extra = entries.clone();
    extra.push(Entry { port: single(12345), ..entries[0].clone() });
    let problems = check_seed(&rows, &extra);
    let expected = ["Master", "Agent", "PublicAgent"]
        .map(|n| format!("1.13.yml: 12345/Tcp (DC/OS Net) on {n}: no seed row and not a listed addition"));
    assert_eq!(problems, expected);
    // A table the parser does not know is an error, not silence.
    let err =
        parse_seed("## Somewhere\n### TCP\n| Port | a | b | c | d |\n|---|\n| 1 | a | b | c | d |\n").unwrap_err();
    assert!(err.contains("seed line 5: a table row outside a known section"), "{err}");
}

#[test]
fn a_bad_matrix_file_is_refused_with_the_item_named() {
    let good = "ports:\n  - {port: 80, proto: tcp, component: x, unit: x.service, sources: [public], nodes: [master], enterprise: false, bind: any}\n";
    assert!(parse_matrix(good).is_ok());
    let cases = [
        ("port: 80,", "port: 80, colour: red,", "ports[0]: unknown key `colour`"),
        ("bind: any", "", "ports[0]: missing key `bind`"),
        ("unit: x.service,", "", "ports[0]: missing key `unit`"),
        ("proto: tcp", "proto: sctp", "ports[0]: unknown variant `sctp`"),
        ("port: 80", "port: 70000", "ports[0]: \"70000\" is not a valid port"),
        ("port: 80", "port: \"5-3\"", "ports[0]: range \"5-3\" is reversed"),
        ("port: 80", "port: \"80\"", "neither an integer nor an \"A-B\" range"),
        ("nodes: [master]", "nodes: [outsider]", "ports[0]: unknown variant `outsider`"),
        ("enterprise: false", "enterprise: maybe", "ports[0]: invalid type"),
        ("ports:", "portz:", "the file must hold `ports:` and nothing else"),
    ];
    for (from, to, message) in cases {
        let err = parse_matrix(&good.replace(from, to)).unwrap_err();
        assert!(err.contains(message), "{from} -> {to}: `{err}` lacks `{message}`");
    }
}

#[test]
fn a_bad_entry_is_reported() {
    let entries = load("1.13");
    let base = |port: u16| entries.iter().find(|e| e.port == single(port) && e.proto == Tcp).unwrap().clone();
    let cases: [(Entry, &str); 7] = [
        (
            Entry { sources: vec![Source::Master], ..base(7070) },
            "bound to loopback but reachable from other than localhost",
        ),
        (Entry { bind: Bind::Any, ..base(7070) }, "facts section 2 says loopback only: true"),
        (Entry { bind: Bind::Loopback, sources: vec![Source::Localhost], ..base(8080) }, "loopback only: false"),
        (Entry { documented_unit: Some("dcos-marathon.service".into()), ..base(8080) }, "documented_unit repeats unit"),
        (Entry { unit: None, ..base(8080) }, "may have no unit"),
        (Entry { sources: vec![Source::Public, Source::Master], ..base(8080) }, "public and localhost stand alone"),
        (Entry { nodes: vec![Master, Master], ..base(8080) }, "nodes empty or repeated"),
    ];
    for (entry, message) in cases {
        let problems = check_entries(&[entry]);
        assert!(problems.iter().any(|p| p.contains(message)), "expected `{message}` in {problems:?}");
    }
    // Overlaps: the same port twice on a node, and a task range over a fixed port.
    let mut twice = entries.clone();
    twice.push(Entry { unit: Some("rogue.service".into()), ..base(8080) });
    assert!(
        check_entries(&twice)
            .iter()
            .any(|p| p.contains("8080/Tcp (Marathon) and 8080/Tcp (Marathon) overlap on Master"))
    );
    let mut over = entries.clone();
    over.push(Entry { port: single(5000), nodes: vec![Agent], ..base(5051) });
    let problems = check_entries(&over);
    assert!(problems.iter().any(|p| p.contains("3889-5049/Tcp") && p.contains("overlap on Agent")), "{problems:?}");
}
