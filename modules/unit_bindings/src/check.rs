//! The verdicts: each expectation against the sockets found and their
//! owners. Pure functions of what was observed, so every rule is
//! unit-tested without a kernel.
//!
//! What a verdict keeps is bounded whatever the input, so that memory and
//! the result grow with expectations plus sockets, never with their
//! product: an expectation finds the sockets of its range by binary search
//! in the sorted bindings, lists the first [`OWNERS_PER_RESULT`] (and all
//! results together at most [`OWNERS_IN_ALL_RESULTS`]), names the first
//! [`PROBLEMS_PER_VERDICT`] problems and [`HOLDERS_PER_PORT`] holders of a
//! port, and counts the rest.

use std::net::IpAddr;

use portmatrix_portset::{PortRange, PortSet};
use serde::Serialize;
use serde_json::Value;

use crate::forwarders::Forwarder;
use crate::options::{Bind, Expectation, Proto, State};
use crate::owners::Owner;
use crate::sockets::Socket;
use crate::units::{Units, shown_name};

/// Who holds a socket, as far as can be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Process(Owner),
    /// A process of this unit, as the kernel's cgroup id of the socket says
    /// ([`crate::cgroups`]); the process itself was not looked for, nothing
    /// needing it.
    Cgroup {
        units: Units,
        uid: u32,
    },
    /// Inode 0: an in-kernel socket (a VXLAN device's port, nfsd).
    Kernel,
    /// No visible process holds it: another user's process seen without
    /// root, or a process in another PID namespace.
    Unknown {
        uid: u32,
    },
}

impl Holder {
    /// `python3 (pid 4242, unit rogue.service)`, names escaped
    /// ([`shown_name`]): one line whatever a process calls itself.
    pub fn describe(&self) -> String {
        self.describe_with(None, "")
    }

    /// The description, with the unit given (if any) in place of the
    /// process's, and `extra` (`, from demo.socket`) inside the brackets.
    fn describe_with(&self, unit: Option<&str>, extra: &str) -> String {
        match self {
            Holder::Process(Owner { pid, process, unit: own, delegated_unit, forwarder }) => {
                let mut unit =
                    unit.or(own.as_deref()).map_or("no unit".to_string(), |u| format!("unit {}", shown_name(u)));
                if let Some(inner) = delegated_unit {
                    unit = format!("{unit}, delegated unit {}", shown_name(inner));
                }
                // The container's own service is not a unit of this host.
                if let Some(forwarder) = forwarder {
                    unit = format!("{unit}: {}", shown_name(&forwarder.describe()));
                }
                match process {
                    Some(name) => format!("{} (pid {pid}, {unit}{extra})", shown_name(name)),
                    None => format!("a process that has ended (pid {pid}, {unit}{extra})"),
                }
            }
            Holder::Cgroup { units, uid } => {
                let unit = unit.or(units.unit.as_deref()).unwrap_or_default();
                let mut text = format!("a process of unit {} (socket of uid {uid}", shown_name(unit));
                if let Some(inner) = &units.delegated {
                    text = format!("{text}, delegated unit {}", shown_name(inner));
                }
                format!("{text}{extra})")
            }
            Holder::Kernel => "the kernel (no process: an in-kernel socket such as a VXLAN port)".to_string(),
            Holder::Unknown { uid } => format!("a process not visible here (socket of uid {uid})"),
        }
    }
}

/// A socket with its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub socket: Socket,
    pub holder: Holder,
    /// The `.socket` unit this socket is of, when the system manager holds
    /// it for that unit or a service it activates does ([`crate::socket_units`]).
    pub activation: Option<Activation>,
}

/// A socket of a `.socket` unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub socket_unit: String,
    /// The units that socket unit activates.
    pub activates: Vec<String>,
    /// The system manager (PID 1) holds it, not (only) the service.
    pub by_manager: bool,
}

impl Binding {
    /// The unit that holds the socket: the `.socket` unit when the system
    /// manager holds it for one, else the holder's unit.
    pub fn unit(&self) -> Option<&str> {
        if let Some(activation) = self.activation.as_ref().filter(|a| a.by_manager) {
            return Some(&activation.socket_unit);
        }
        match &self.holder {
            Holder::Process(owner) => owner.unit.as_deref(),
            Holder::Cgroup { units, .. } => units.unit.as_deref(),
            _ => None,
        }
    }

    /// Whether `unit` holds the socket: its holder's unit, its `.socket`
    /// unit, or (while the manager holds it) a unit that socket activates.
    pub fn held_by(&self, unit: Option<&str>) -> bool {
        let Some(unit) = unit else { return self.unit().is_none() };
        self.unit() == Some(unit)
            || self
                .activation
                .as_ref()
                .is_some_and(|a| a.socket_unit == unit || (a.by_manager && a.activates.iter().any(|name| name == unit)))
    }

    /// `python3 (pid 4242, unit rogue.service)`; for a socket unit's,
    /// `systemd (pid 1, unit demo.socket, activates demo.service)` or
    /// `python3 (pid 7, unit demo.service, from demo.socket)`.
    pub fn describe_holder(&self) -> String {
        match &self.activation {
            None => self.holder.describe(),
            Some(a) if a.by_manager && a.activates.is_empty() => self.holder.describe_with(Some(&a.socket_unit), ""),
            Some(a) if a.by_manager => {
                self.holder.describe_with(Some(&a.socket_unit), &format!(", activates {}", a.activates.join(", ")))
            }
            Some(a) => self.holder.describe_with(None, &format!(", from {}", a.socket_unit)),
        }
    }

    /// One entry of `owners` in a result (the port is there for ranges).
    pub fn owner_view(&self) -> OwnerView {
        let (pid, process, delegated_unit, forwarder) = match &self.holder {
            Holder::Process(owner) => {
                (Some(owner.pid), owner.process.clone(), owner.delegated_unit.clone(), owner.forwarder.clone())
            }
            Holder::Cgroup { units, .. } => (None, None, units.delegated.clone(), None),
            _ => (None, None, None, None),
        };
        OwnerView {
            port: self.socket.port,
            address: self.socket.address,
            pid,
            process,
            unit: self.unit().map(str::to_string),
            delegated_unit,
            socket_unit: self.activation.as_ref().map(|a| a.socket_unit.clone()),
            activates: self.activation.as_ref().map(|a| a.activates.clone()).unwrap_or_default(),
            forwarder,
        }
    }

    /// One entry of `ansible_facts.port_bindings`.
    pub fn fact(&self) -> Fact {
        Fact { proto: self.socket.proto, owner: self.owner_view() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerView {
    pub port: u16,
    pub address: IpAddr,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub unit: Option<String>,
    pub delegated_unit: Option<String>,
    /// The `.socket` unit the socket is of, if any.
    pub socket_unit: Option<String>,
    /// What that socket unit activates (empty when none).
    pub activates: Vec<String>,
    /// The container runtime whose port forwarder holds the socket, and the
    /// container, when known.
    pub forwarder: Option<Forwarder>,
}

/// One entry of `ansible_facts.port_bindings`: an owner of a result, with
/// its socket's protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub proto: Proto,
    #[serde(flatten)]
    pub owner: OwnerView,
}

/// One expectation's result, as returned in `results`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// As given: a number for one port, "A-B" for a range.
    pub port: Value,
    pub proto: Proto,
    pub state: State,
    pub unit: Option<String>,
    pub bind: Bind,
    pub ok: bool,
    /// The first sockets on the port(s), by port and address: at most
    /// [`OWNERS_PER_RESULT`], fewer once [`OWNERS_IN_ALL_RESULTS`] are listed.
    pub owners: Vec<OwnerView>,
    /// How many sockets are on the port(s) in all, listed or not.
    pub owners_total: usize,
    /// The DNAT rules that take the port(s) (`PLACE: RULE`), the first
    /// [`PROBLEMS_PER_VERDICT`].
    pub dnat: Vec<String>,
    pub msg: String,
}

/// A result lists at most this many of its sockets in `owners`...
pub const OWNERS_PER_RESULT: usize = 20;
/// ...and all results together at most this many (the first results in
/// order list theirs; later ones still count them in `owners_total`).
pub const OWNERS_IN_ALL_RESULTS: usize = 10_000;
/// A mismatch names at most this many problems (conflicting ports, exposed
/// sockets) and counts the rest.
pub const PROBLEMS_PER_VERDICT: usize = 5;
/// A port's problem names at most this many distinct holders.
pub const HOLDERS_PER_PORT: usize = 3;
/// "nothing listening on ..." names at most this many ranges of ports.
pub const MISSING_RANGES_NAMED: usize = 5;

/// Every socket seen, with its holder, sorted by protocol, port and address,
/// so that each expectation finds the sockets of its range by binary search
/// instead of going through all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    sorted: Vec<Binding>,
    /// The host's DNAT rules: each takes its ports without a socket.
    dnat: Vec<Dnat>,
}

/// A DNAT rule of the host (portmatrix-netfilter's reader): the original
/// destination ports it takes go to a container or a task, never to a
/// socket here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    pub proto: Proto,
    /// `None`: every port.
    pub ports: Option<PortSet>,
    /// `iptables nat DOCKER`, `nftables ip nat prerouting`.
    pub place: String,
    /// The rule as its tool lists it.
    pub rule: String,
}

impl Bindings {
    pub fn new(mut bindings: Vec<Binding>) -> Self {
        bindings.sort_by_key(|b| (b.socket.proto, b.socket.port, b.socket.address));
        Bindings { sorted: bindings, dnat: Vec::new() }
    }

    /// The same, with the host's DNAT rules.
    #[must_use]
    pub fn with_dnat(mut self, dnat: Vec<Dnat>) -> Self {
        self.dnat = dnat;
        self
    }

    /// All of them, by protocol, port and address.
    pub fn all(&self) -> &[Binding] {
        &self.sorted
    }

    /// The sockets on `proto` in `range`, by port and address.
    pub fn within(&self, proto: Proto, range: PortRange) -> &[Binding] {
        let key = |b: &Binding| (b.socket.proto, b.socket.port);
        let first = self.sorted.partition_point(|b| key(b) < (proto, range.start()));
        let past = self.sorted.partition_point(|b| key(b) <= (proto, range.end()));
        &self.sorted[first..past.max(first)]
    }
}

/// Every expectation's verdict, in order, with at most
/// [`OWNERS_IN_ALL_RESULTS`] owners listed in all.
pub fn evaluate_all(expect: &[Expectation], bindings: &Bindings) -> Vec<Verdict> {
    let mut unlisted = OWNERS_IN_ALL_RESULTS;
    expect
        .iter()
        .map(|expectation| {
            let verdict = evaluate(expectation, bindings, unlisted.min(OWNERS_PER_RESULT));
            unlisted -= verdict.owners.len();
            verdict
        })
        .collect()
}

/// One expectation's verdict, listing at most `list` owners. The work is in
/// the sockets of its range; what it keeps is bounded by the caps above.
pub fn evaluate(expectation: &Expectation, bindings: &Bindings, list: usize) -> Verdict {
    let sockets = bindings.within(expectation.proto, expectation.port);
    let mut problems = match expectation.state {
        State::Listening => listening_problems(expectation, sockets),
        State::Free => free_problems(expectation, sockets),
    };
    let dnat = dnat_problems(expectation, &bindings.dnat, &mut problems);
    let ok = problems.is_empty();
    let label = format!("{}/{}", expectation.port, expectation.proto);
    let msg = if ok {
        format!("{label}: {}", success_text(expectation, sockets.is_empty()))
    } else {
        format!("{label}: {}, expected {}", problems.text(), expected_text(expectation))
    };
    Verdict {
        port: port_value(expectation.port),
        proto: expectation.proto,
        state: expectation.state,
        unit: expectation.unit.clone(),
        bind: expectation.bind,
        ok,
        owners: sockets.iter().take(list).map(Binding::owner_view).collect(),
        owners_total: sockets.len(),
        dnat,
        msg,
    }
}

/// The sockets of each port, in order (`sockets` sorted by port).
fn by_port(sockets: &[Binding]) -> impl Iterator<Item = (u16, &[Binding])> {
    sockets.chunk_by(|a, b| a.socket.port == b.socket.port).map(|on_port| (on_port[0].socket.port, on_port))
}

/// A mismatch's problems: the first few in words, the rest counted.
struct Problems {
    named: Vec<String>,
    more: usize,
    /// What the rest are, for "and 195 more ports held".
    kind: &'static str,
}

impl Problems {
    fn new(kind: &'static str) -> Self {
        Problems { named: Vec::new(), more: 0, kind }
    }

    /// Adds a problem; its text is made only if it will be named.
    fn add(&mut self, text: impl FnOnce() -> String) {
        if self.named.len() < PROBLEMS_PER_VERDICT {
            self.named.push(text());
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.named.is_empty()
    }

    fn text(&self) -> String {
        let named = self.named.join("; ");
        if self.more == 0 { named } else { format!("{named}; and {} more {}", self.more, self.kind) }
    }
}

/// For a range, each problem names its port; for one port the label does.
fn at(expectation: &Expectation, port: u16, text: &str) -> String {
    if expectation.port.len() == 1 { text.to_string() } else { format!("{port} {text}") }
}

/// Distinct holders of some sockets, in order, the first few named:
/// `a (pid 1, ...), b (...)`, then `and 7 more sockets` held by others.
fn holders<'a>(bindings: impl Iterator<Item = &'a Binding>) -> String {
    let mut named: Vec<String> = Vec::new();
    let mut others = 0;
    for binding in bindings {
        let holder = binding.describe_holder();
        if named.contains(&holder) {
            continue;
        }
        if named.len() < HOLDERS_PER_PORT {
            named.push(holder);
        } else {
            others += 1;
        }
    }
    let text = named.join(", ");
    if others == 0 { text } else { format!("{text} and {others} more sockets") }
}

/// "nothing listening on 2001,2003": the first few ranges, the rest counted.
fn nothing_listening(missing: &PortSet) -> String {
    let named = PortSet::from_ranges(missing.ranges().iter().take(MISSING_RANGES_NAMED).copied());
    let more = missing.len() - named.len();
    if more == 0 {
        format!("nothing listening on {named}")
    } else {
        format!("nothing listening on {named} and {more} more ports")
    }
}

fn listening_problems(expectation: &Expectation, sockets: &[Binding]) -> Problems {
    let unit = expectation.unit.as_deref();
    let mut problems = Problems::new("problems");
    let held: PortSet =
        by_port(sockets).map(|(port, _)| PortRange::single(port).expect("a socket's port is 1-65535")).collect();
    let missing = PortSet::from(expectation.port).difference(&held);
    if !missing.is_empty() {
        problems.add(|| {
            if expectation.port.len() == 1 { "nothing listening".to_string() } else { nothing_listening(&missing) }
        });
    }
    for (port, on_port) in by_port(sockets) {
        if on_port.iter().any(|b| b.held_by(unit)) {
            // Another unit on the same port (SO_REUSEPORT, or an IPv6-only
            // socket beside an IPv4 one) takes some of its connections.
            let others =
                |b: &&Binding| !b.held_by(unit) && matches!(b.holder, Holder::Process(_) | Holder::Cgroup { .. });
            if on_port.iter().any(|b| others(&b)) {
                problems
                    .add(|| at(expectation, port, &format!("also held by {}", holders(on_port.iter().filter(others)))));
            }
        } else {
            problems.add(|| at(expectation, port, &format!("held by {}", holders(on_port.iter()))));
        }
        if expectation.bind == Bind::Loopback {
            for exposed in on_port.iter().filter(|b| !b.socket.is_loopback()) {
                problems.add(|| {
                    let text = format!("exposed on {} by {}", exposed.socket.address, exposed.describe_holder());
                    at(expectation, port, &text)
                });
            }
        }
    }
    problems
}

fn free_problems(expectation: &Expectation, sockets: &[Binding]) -> Problems {
    let allowed = expectation.unit.as_deref();
    let mut problems = Problems::new("ports held");
    for (port, on_port) in by_port(sockets) {
        let conflicting = |b: &&Binding| allowed.is_none() || !b.held_by(allowed);
        if on_port.iter().any(|b| conflicting(&b)) {
            problems.add(|| at(expectation, port, &format!("held by {}", holders(on_port.iter().filter(conflicting)))));
        }
    }
    problems
}

/// A DNAT rule on the expectation's ports takes them, whatever listens: its
/// traffic goes to a container or a task (Docker without its userland
/// proxy, CNI port mapping, netavark) and never to a socket here. Returns
/// the rules named.
fn dnat_problems(expectation: &Expectation, dnat: &[Dnat], problems: &mut Problems) -> Vec<String> {
    let range = PortSet::from(expectation.port);
    let mut named = Vec::new();
    for rule in dnat.iter().filter(|r| r.proto == expectation.proto) {
        let taken = rule.ports.as_ref().map_or_else(|| range.clone(), |ports| ports.intersection(&range));
        if taken.is_empty() {
            continue;
        }
        let what = format!("{}: {}", rule.place, shown_name(&rule.rule));
        problems.add(|| {
            let ports = if expectation.port.len() == 1 { String::new() } else { format!("{taken} ") };
            format!("{ports}taken by the DNAT rule `{what}`, which sends its traffic elsewhere, to no socket here")
        });
        if named.len() < PROBLEMS_PER_VERDICT {
            named.push(what);
        }
    }
    named
}

fn expected_text(expectation: &Expectation) -> String {
    let unit = expectation.unit.as_deref().unwrap_or_default();
    match (expectation.state, expectation.bind) {
        (State::Listening, Bind::Any) => unit.to_string(),
        (State::Listening, Bind::Loopback) => format!("{unit} on loopback only"),
        (State::Free, _) if unit.is_empty() => "free".to_string(),
        (State::Free, _) => format!("free (or held by {unit})"),
    }
}

fn success_text(expectation: &Expectation, no_socket: bool) -> String {
    let unit = expectation.unit.as_deref().unwrap_or_default();
    match (expectation.state, expectation.bind) {
        (State::Listening, Bind::Any) => format!("{unit} listens"),
        (State::Listening, Bind::Loopback) => format!("{unit} listens, on loopback only"),
        (State::Free, _) if no_socket => "free".to_string(),
        (State::Free, _) => format!("held by {unit}, as allowed"),
    }
}

fn port_value(range: PortRange) -> Value {
    if range.len() == 1 { Value::from(range.start()) } else { Value::from(range.to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(port: &str, state: State, unit: Option<&str>, bind: Bind) -> Expectation {
        Expectation { port: port.parse().unwrap(), proto: Proto::Tcp, state, unit: unit.map(String::from), bind }
    }

    /// One verdict, with the per-result cap on owners.
    fn eval(expectation: &Expectation, bindings: &[Binding]) -> Verdict {
        evaluate(expectation, &Bindings::new(bindings.to_vec()), OWNERS_PER_RESULT)
    }

    fn listening(port: &str, unit: &str) -> Expectation {
        expect(port, State::Listening, Some(unit), Bind::Any)
    }

    fn held(port: u16, address: &str, pid: u32, unit: Option<&str>) -> Binding {
        Binding {
            socket: Socket {
                proto: Proto::Tcp,
                address: address.parse().unwrap(),
                port,
                inode: 1,
                uid: 0,
                cgroup_id: None,
            },
            holder: Holder::Process(Owner {
                pid,
                process: Some("python3".into()),
                unit: unit.map(String::from),
                delegated_unit: None,
                forwarder: None,
            }),
            activation: None,
        }
    }

    #[test]
    fn a_socket_units_socket_is_held_by_it_and_while_the_manager_holds_it_by_what_it_activates() {
        let activation = |by_manager| {
            Some(Activation {
                socket_unit: "cockpit.socket".into(),
                activates: vec!["cockpit.service".into()],
                by_manager,
            })
        };
        let idle = Binding { activation: activation(true), ..held(9090, "::", 1, Some("init.scope")) };
        let started = Binding { activation: activation(false), ..held(9090, "::", 77, Some("cockpit.service")) };
        for (binding, unit) in [(&idle, "cockpit.socket"), (&idle, "cockpit.service"), (&started, "cockpit.socket")] {
            assert!(eval(&listening("9090", unit), std::slice::from_ref(binding)).ok, "{unit}");
            assert!(
                eval(&expect("9090", State::Free, Some(unit), Bind::Any), std::slice::from_ref(binding)).ok,
                "{unit}"
            );
        }
        assert!(eval(&listening("9090", "cockpit.service"), std::slice::from_ref(&started)).ok);
        let other = eval(&listening("9090", "dcos-net.service"), &[idle]);
        assert_eq!(
            other.msg,
            "9090/tcp: held by python3 (pid 1, unit cockpit.socket, activates cockpit.service), expected dcos-net.service"
        );
        assert_eq!(other.owners[0].unit.as_deref(), Some("cockpit.socket"));
        let other = eval(&expect("9090", State::Free, None, Bind::Any), &[started]);
        assert_eq!(
            other.msg,
            "9090/tcp: held by python3 (pid 77, unit cockpit.service, from cockpit.socket), expected free"
        );
    }

    #[test]
    fn a_port_a_dnat_rule_takes_is_taken_without_a_socket() {
        let dnat = |ports: Option<&str>| Dnat {
            proto: Proto::Tcp,
            ports: ports.map(|p| p.parse().unwrap()),
            place: "iptables nat DOCKER".into(),
            rule: "-A DOCKER -p tcp --dport 8088 -j DNAT --to-destination 172.17.0.2:80".into(),
        };
        let bindings = Bindings::new(Vec::new()).with_dnat(vec![dnat(Some("8088"))]);
        let free = evaluate(&expect("8088", State::Free, None, Bind::Any), &bindings, 20);
        assert!(!free.ok);
        assert_eq!(
            free.msg,
            "8088/tcp: taken by the DNAT rule `iptables nat DOCKER: -A DOCKER -p tcp --dport 8088 -j DNAT \
             --to-destination 172.17.0.2:80`, which sends its traffic elsewhere, to no socket here, expected free"
        );
        assert_eq!(free.dnat.len(), 1);
        let range = evaluate(&expect("8000-9000", State::Free, None, Bind::Any), &bindings, 20);
        assert!(range.msg.starts_with("8000-9000/tcp: 8088 taken by the DNAT rule"), "{}", range.msg);
        assert!(evaluate(&expect("8089", State::Free, None, Bind::Any), &bindings, 20).ok);
        let udp = Expectation { proto: Proto::Udp, ..expect("8088", State::Free, None, Bind::Any) };
        assert!(evaluate(&udp, &bindings, 20).ok, "a TCP rule takes no UDP port");
        let every = Bindings::new(Vec::new()).with_dnat(vec![dnat(None)]);
        assert!(!evaluate(&expect("22", State::Free, None, Bind::Any), &every, 20).ok, "a rule of every port");
    }

    #[test]
    fn another_unit_on_the_same_port_is_a_problem_for_listening() {
        let bindings =
            [held(7401, "0.0.0.0", 10, Some("svc-a.service")), held(7401, "0.0.0.0", 11, Some("svc-b.service"))];
        let shared = eval(&listening("7401", "svc-a.service"), &bindings);
        assert!(!shared.ok);
        assert_eq!(shared.msg, "7401/tcp: also held by python3 (pid 11, unit svc-b.service), expected svc-a.service");
        let same_unit = [held(7401, "0.0.0.0", 10, Some("svc-a.service")), held(7401, "::", 12, Some("svc-a.service"))];
        assert!(eval(&listening("7401", "svc-a.service"), &same_unit).ok, "one unit on both families");
    }

    #[test]
    fn listening_by_the_right_unit_on_any_family() {
        let bindings = [held(5050, "::", 7, Some("dcos-mesos-master.service"))];
        let verdict = eval(&listening("5050", "dcos-mesos-master.service"), &bindings);
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(verdict.msg, "5050/tcp: dcos-mesos-master.service listens");
        assert_eq!(verdict.port, Value::from(5050));
        assert_eq!(verdict.owners[0].pid, Some(7));
    }

    #[test]
    fn the_wrong_unit_nothing_and_another_protocol_are_mismatches() {
        let bindings = [held(8080, "0.0.0.0", 4242, Some("rogue.service"))];
        let wrong = eval(&listening("8080", "dcos-marathon.service"), &bindings);
        assert!(!wrong.ok);
        assert_eq!(
            wrong.msg,
            "8080/tcp: held by python3 (pid 4242, unit rogue.service), expected dcos-marathon.service"
        );
        let nothing = eval(&listening("15055", "dcos-history.service"), &bindings);
        assert_eq!(nothing.msg, "15055/tcp: nothing listening, expected dcos-history.service");
        let udp = Expectation { proto: Proto::Udp, ..listening("8080", "rogue.service") };
        assert!(!eval(&udp, &bindings).ok, "a TCP socket does not satisfy a UDP expectation");
    }

    #[test]
    fn loopback_only_names_every_exposed_socket() {
        let bindings = [
            held(7070, "127.0.0.1", 10, Some("dcos-cosmos.service")),
            held(8123, "0.0.0.0", 11, Some("dcos-mesos-dns.service")),
            held(8123, "::1", 11, Some("dcos-mesos-dns.service")),
        ];
        let cosmos = eval(&expect("7070", State::Listening, Some("dcos-cosmos.service"), Bind::Loopback), &bindings);
        assert!(cosmos.ok);
        let dns = eval(&expect("8123", State::Listening, Some("dcos-mesos-dns.service"), Bind::Loopback), &bindings);
        assert!(!dns.ok);
        assert_eq!(
            dns.msg,
            "8123/tcp: exposed on 0.0.0.0 by python3 (pid 11, unit dcos-mesos-dns.service), \
             expected dcos-mesos-dns.service on loopback only"
        );
        assert_eq!(dns.owners.len(), 2);
    }

    #[test]
    fn free_allows_the_named_unit_and_names_each_conflicting_port_of_a_range() {
        let bindings = [held(10005, "0.0.0.0", 1, Some("a.service")), held(10050, "::", 2, None)];
        let range = eval(&expect("10000-10100", State::Free, None, Bind::Any), &bindings);
        assert!(!range.ok);
        assert_eq!(
            range.msg,
            "10000-10100/tcp: 10005 held by python3 (pid 1, unit a.service); \
             10050 held by python3 (pid 2, no unit), expected free"
        );
        assert_eq!(range.port, Value::from("10000-10100"));
        let allowed = eval(&expect("10005", State::Free, Some("a.service"), Bind::Any), &bindings);
        assert!(allowed.ok);
        assert_eq!(allowed.msg, "10005/tcp: held by a.service, as allowed");
        let free = eval(&expect("9000", State::Free, None, Bind::Any), &bindings);
        assert_eq!((free.ok, free.msg.as_str()), (true, "9000/tcp: free"));
    }

    #[test]
    fn listening_on_a_range_needs_every_port() {
        let bindings = [held(2000, "0.0.0.0", 1, Some("a.service")), held(2002, "0.0.0.0", 1, Some("a.service"))];
        let verdict = eval(&listening("2000-2003", "a.service"), &bindings);
        assert_eq!(verdict.msg, "2000-2003/tcp: nothing listening on 2001,2003, expected a.service");
    }

    #[test]
    fn kernel_and_invisible_holders_are_said_so() {
        let mut kernel = held(64000, "0.0.0.0", 0, None);
        kernel.holder = Holder::Kernel;
        let mut hidden = held(64001, "0.0.0.0", 0, None);
        hidden.holder = Holder::Unknown { uid: 1000 };
        let verdict = eval(&expect("64000-64001", State::Free, None, Bind::Any), &[kernel, hidden]);
        assert!(verdict.msg.contains("64000 held by the kernel (no process"), "{}", verdict.msg);
        assert!(verdict.msg.contains("64001 held by a process not visible here (socket of uid 1000)"));
        assert_eq!(verdict.owners[0].pid, None);
    }

    /// `count` sockets, one per port from `first` up, in one process.
    fn many(first: u16, count: u16, unit: Option<&str>) -> Vec<Binding> {
        (first..first + count).map(|port| held(port, "0.0.0.0", 42, unit)).collect()
    }

    #[test]
    fn bindings_are_sorted_and_a_range_sees_only_its_own_sockets() {
        let mut udp = held(2001, "0.0.0.0", 3, None);
        udp.socket.proto = Proto::Udp;
        let bindings = Bindings::new(vec![
            held(2002, "::", 1, None),
            udp,
            held(2000, "0.0.0.0", 2, None),
            held(2002, "0.0.0.0", 1, None),
        ]);
        let ports =
            |slice: &[Binding]| slice.iter().map(|b| (b.socket.port, b.socket.address.to_string())).collect::<Vec<_>>();
        assert_eq!(
            ports(bindings.within(Proto::Tcp, "2000-2002".parse().unwrap())),
            [(2000, "0.0.0.0".into()), (2002, "0.0.0.0".into()), (2002, "::".into())]
        );
        assert_eq!(ports(bindings.within(Proto::Tcp, "2001".parse().unwrap())), []);
        assert_eq!(ports(bindings.within(Proto::Udp, "1-65535".parse().unwrap())), [(2001, "0.0.0.0".into())]);
        assert_eq!(ports(bindings.within(Proto::Tcp, "2003-65535".parse().unwrap())), []);
    }

    #[test]
    fn a_range_lists_its_lowest_owners_counts_all_and_names_a_few_conflicts() {
        let bindings = many(20000, 200, None);
        let verdict = eval(&expect("20000-20199", State::Free, None, Bind::Any), &bindings);
        assert!(!verdict.ok);
        assert_eq!(verdict.owners_total, 200);
        assert_eq!(verdict.owners.len(), OWNERS_PER_RESULT);
        let listed: Vec<u16> = verdict.owners.iter().map(|o| o.port).collect();
        assert_eq!(listed, (20000..20020).collect::<Vec<_>>(), "the lowest ports first");
        let holder = "python3 (pid 42, no unit)";
        assert_eq!(
            verdict.msg,
            format!(
                "20000-20199/tcp: 20000 held by {holder}; 20001 held by {holder}; 20002 held by {holder}; \
                 20003 held by {holder}; 20004 held by {holder}; and 195 more ports held, expected free"
            )
        );
        // Sockets of the allowed unit are neither conflicts nor counted as such.
        let mut mixed = many(20000, 200, Some("a.service"));
        mixed[150] = held(20150, "0.0.0.0", 7, Some("b.service"));
        let allowed = eval(&expect("20000-20199", State::Free, Some("a.service"), Bind::Any), &mixed);
        assert_eq!(
            allowed.msg,
            "20000-20199/tcp: 20150 held by python3 (pid 7, unit b.service), expected free (or held by a.service)"
        );
        assert_eq!((allowed.owners.len(), allowed.owners_total), (20, 200));
    }

    #[test]
    fn a_port_names_a_few_holders_and_counts_the_other_sockets() {
        let bindings: Vec<Binding> =
            (1..=6).map(|pid| held(8080, &format!("127.0.0.{pid}"), pid, Some("worker.service"))).collect();
        let verdict = eval(&expect("8080", State::Free, None, Bind::Any), &bindings);
        assert_eq!(
            verdict.msg,
            "8080/tcp: held by python3 (pid 1, unit worker.service), python3 (pid 2, unit worker.service), \
             python3 (pid 3, unit worker.service) and 3 more sockets, expected free"
        );
        // One process on many addresses is one holder.
        let one: Vec<Binding> = (1..=6).map(|n| held(8080, &format!("127.0.0.{n}"), 9, None)).collect();
        let verdict = eval(&expect("8080", State::Free, None, Bind::Any), &one);
        assert_eq!(verdict.msg, "8080/tcp: held by python3 (pid 9, no unit), expected free");
    }

    #[test]
    fn listening_names_a_few_missing_ranges_and_a_few_exposed_sockets() {
        // Every other port of 3000-3099 held: 50 single-port gaps.
        let bindings: Vec<Binding> =
            (3000..3100).step_by(2).map(|p| held(p, "127.0.0.1", 5, Some("a.service"))).collect();
        let verdict = eval(&listening("3000-3099", "a.service"), &bindings);
        assert_eq!(
            verdict.msg,
            "3000-3099/tcp: nothing listening on 3001,3003,3005,3007,3009 and 45 more ports, expected a.service"
        );
        assert_eq!((verdict.owners.len(), verdict.owners_total), (20, 50));
        let exposed = many(4000, 30, Some("a.service"));
        let verdict = eval(&expect("4000-4029", State::Listening, Some("a.service"), Bind::Loopback), &exposed);
        let by = "python3 (pid 42, unit a.service)";
        assert_eq!(
            verdict.msg,
            format!(
                "4000-4029/tcp: 4000 exposed on 0.0.0.0 by {by}; 4001 exposed on 0.0.0.0 by {by}; \
                 4002 exposed on 0.0.0.0 by {by}; 4003 exposed on 0.0.0.0 by {by}; \
                 4004 exposed on 0.0.0.0 by {by}; and 25 more problems, expected a.service on loopback only"
            )
        );
    }

    #[test]
    fn all_results_together_list_a_bounded_number_of_owners_and_count_every_one() {
        let bindings = Bindings::new(many(20000, 200, None));
        let range = expect("20000-20199", State::Free, None, Bind::Any);
        let fill = OWNERS_IN_ALL_RESULTS / OWNERS_PER_RESULT;
        let verdicts = evaluate_all(&vec![range; fill + 3], &bindings);
        assert!(verdicts[..fill].iter().all(|v| v.owners.len() == OWNERS_PER_RESULT));
        assert!(verdicts[fill..].iter().all(|v| v.owners.is_empty()), "the budget is spent");
        assert!(verdicts.iter().all(|v| v.owners_total == 200 && !v.ok));
        assert_eq!(verdicts.iter().map(|v| v.owners.len()).sum::<usize>(), OWNERS_IN_ALL_RESULTS);
        assert_eq!(verdicts[fill + 2].msg, verdicts[0].msg, "the verdict does not depend on the budget");
    }
}
