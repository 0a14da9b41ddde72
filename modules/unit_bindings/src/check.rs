//! The verdicts: each expectation against the sockets found and their
//! owners. Pure functions of what was observed, so every rule is
//! unit-tested without a kernel.

use std::collections::BTreeMap;
use std::net::IpAddr;

use portmatrix_portset::{PortRange, PortSet};
use serde::Serialize;
use serde_json::Value;

use crate::options::{Bind, Expectation, Proto, State};
use crate::owners::Owner;
use crate::sockets::Socket;

/// Who holds a socket, as far as can be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Process(Owner),
    /// Inode 0: an in-kernel socket (a VXLAN device's port, nfsd).
    Kernel,
    /// No visible process holds it: another user's process seen without
    /// root, or a process in another PID namespace.
    Unknown {
        uid: u32,
    },
}

/// A socket with its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub socket: Socket,
    pub holder: Holder,
}

impl Binding {
    pub fn unit(&self) -> Option<&str> {
        match &self.holder {
            Holder::Process(owner) => owner.unit.as_deref(),
            _ => None,
        }
    }

    /// `python3 (pid 4242, unit rogue.service)`.
    pub fn describe_holder(&self) -> String {
        match &self.holder {
            Holder::Process(Owner { pid, process, unit }) => {
                let unit = unit.as_ref().map_or("no unit".to_string(), |u| format!("unit {u}"));
                match process {
                    Some(name) => format!("{name} (pid {pid}, {unit})"),
                    None => format!("a process that has ended (pid {pid}, {unit})"),
                }
            }
            Holder::Kernel => "the kernel (no process: an in-kernel socket such as a VXLAN port)".to_string(),
            Holder::Unknown { uid } => format!("a process not visible here (socket of uid {uid})"),
        }
    }

    /// One entry of `owners` in a result (the port is there for ranges).
    pub fn owner_view(&self) -> OwnerView {
        let (pid, process) = match &self.holder {
            Holder::Process(owner) => (Some(owner.pid), owner.process.clone()),
            _ => (None, None),
        };
        OwnerView {
            port: self.socket.port,
            address: self.socket.address,
            pid,
            process,
            unit: self.unit().map(str::to_string),
        }
    }

    /// One entry of `ansible_facts.port_bindings`.
    pub fn fact(&self) -> Fact {
        let view = self.owner_view();
        Fact {
            port: view.port,
            proto: self.socket.proto,
            address: view.address,
            pid: view.pid,
            process: view.process,
            unit: view.unit,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerView {
    pub port: u16,
    pub address: IpAddr,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub port: u16,
    pub proto: Proto,
    pub address: IpAddr,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub unit: Option<String>,
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
    pub owners: Vec<OwnerView>,
    pub msg: String,
}

/// Whether a socket on `proto`/`range` matters to an expectation.
pub fn concerns(expectation: &Expectation, socket: &Socket) -> bool {
    expectation.proto == socket.proto && expectation.port.contains(socket.port)
}

pub fn evaluate(expectation: &Expectation, bindings: &[Binding]) -> Verdict {
    let mut by_port: BTreeMap<u16, Vec<&Binding>> = BTreeMap::new();
    for binding in bindings.iter().filter(|b| concerns(expectation, &b.socket)) {
        by_port.entry(binding.socket.port).or_default().push(binding);
    }
    for on_port in by_port.values_mut() {
        on_port.sort_by_key(|b| b.socket.address);
    }
    let problems = match expectation.state {
        State::Listening => listening_problems(expectation, &by_port),
        State::Free => free_problems(expectation, &by_port),
    };
    let ok = problems.is_empty();
    let label = format!("{}/{}", expectation.port, expectation.proto);
    let msg = if ok {
        format!("{label}: {}", success_text(expectation, &by_port))
    } else {
        format!("{label}: {}, expected {}", problems.join("; "), expected_text(expectation))
    };
    Verdict {
        port: port_value(expectation.port),
        proto: expectation.proto,
        state: expectation.state,
        unit: expectation.unit.clone(),
        bind: expectation.bind,
        ok,
        owners: by_port.values().flatten().map(|b| b.owner_view()).collect(),
        msg,
    }
}

type ByPort<'a> = BTreeMap<u16, Vec<&'a Binding>>;

/// For a range, each problem names its port; for one port the label does.
fn at(expectation: &Expectation, port: u16, text: String) -> String {
    if expectation.port.len() == 1 { text } else { format!("{port} {text}") }
}

/// Distinct holders of some sockets, in order: `a (pid 1, ...), b (...)`.
fn holders<'a>(bindings: impl Iterator<Item = &'a &'a Binding>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for binding in bindings {
        let text = binding.describe_holder();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.join(", ")
}

fn listening_problems(expectation: &Expectation, by_port: &ByPort) -> Vec<String> {
    let unit = expectation.unit.as_deref();
    let mut problems = Vec::new();
    let held: PortSet = by_port.keys().map(|&p| PortRange::single(p).expect("a socket's port is 1-65535")).collect();
    let missing = PortSet::from_ranges([expectation.port]).difference(&held);
    if !missing.is_empty() {
        problems.push(if expectation.port.len() == 1 {
            "nothing listening".to_string()
        } else {
            format!("nothing listening on {missing}")
        });
    }
    for (&port, on_port) in by_port {
        if !on_port.iter().any(|b| b.unit() == unit) {
            problems.push(at(expectation, port, format!("held by {}", holders(on_port.iter()))));
        }
        if expectation.bind == Bind::Loopback {
            for exposed in on_port.iter().filter(|b| !b.socket.is_loopback()) {
                let text = format!("exposed on {} by {}", exposed.socket.address, exposed.describe_holder());
                problems.push(at(expectation, port, text));
            }
        }
    }
    problems
}

fn free_problems(expectation: &Expectation, by_port: &ByPort) -> Vec<String> {
    let allowed = expectation.unit.as_deref();
    let mut problems = Vec::new();
    for (&port, on_port) in by_port {
        let conflicts: Vec<&&Binding> = on_port.iter().filter(|b| allowed.is_none() || b.unit() != allowed).collect();
        if !conflicts.is_empty() {
            problems.push(at(expectation, port, format!("held by {}", holders(conflicts.into_iter()))));
        }
    }
    problems
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

fn success_text(expectation: &Expectation, by_port: &ByPort) -> String {
    let unit = expectation.unit.as_deref().unwrap_or_default();
    match (expectation.state, expectation.bind) {
        (State::Listening, Bind::Any) => format!("{unit} listens"),
        (State::Listening, Bind::Loopback) => format!("{unit} listens, on loopback only"),
        (State::Free, _) if by_port.is_empty() => "free".to_string(),
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

    fn listening(port: &str, unit: &str) -> Expectation {
        expect(port, State::Listening, Some(unit), Bind::Any)
    }

    fn held(port: u16, address: &str, pid: u32, unit: Option<&str>) -> Binding {
        Binding {
            socket: Socket { proto: Proto::Tcp, address: address.parse().unwrap(), port, inode: 1, uid: 0 },
            holder: Holder::Process(Owner { pid, process: Some("python3".into()), unit: unit.map(String::from) }),
        }
    }

    #[test]
    fn listening_by_the_right_unit_on_any_family() {
        let bindings = [held(5050, "::", 7, Some("dcos-mesos-master.service"))];
        let verdict = evaluate(&listening("5050", "dcos-mesos-master.service"), &bindings);
        assert!(verdict.ok, "{verdict:?}");
        assert_eq!(verdict.msg, "5050/tcp: dcos-mesos-master.service listens");
        assert_eq!(verdict.port, Value::from(5050));
        assert_eq!(verdict.owners[0].pid, Some(7));
    }

    #[test]
    fn the_wrong_unit_nothing_and_another_protocol_are_mismatches() {
        let bindings = [held(8080, "0.0.0.0", 4242, Some("rogue.service"))];
        let wrong = evaluate(&listening("8080", "dcos-marathon.service"), &bindings);
        assert!(!wrong.ok);
        assert_eq!(
            wrong.msg,
            "8080/tcp: held by python3 (pid 4242, unit rogue.service), expected dcos-marathon.service"
        );
        let nothing = evaluate(&listening("15055", "dcos-history.service"), &bindings);
        assert_eq!(nothing.msg, "15055/tcp: nothing listening, expected dcos-history.service");
        let udp = Expectation { proto: Proto::Udp, ..listening("8080", "rogue.service") };
        assert!(!evaluate(&udp, &bindings).ok, "a TCP socket does not satisfy a UDP expectation");
    }

    #[test]
    fn loopback_only_names_every_exposed_socket() {
        let bindings = [
            held(7070, "127.0.0.1", 10, Some("dcos-cosmos.service")),
            held(8123, "0.0.0.0", 11, Some("dcos-mesos-dns.service")),
            held(8123, "::1", 11, Some("dcos-mesos-dns.service")),
        ];
        let cosmos =
            evaluate(&expect("7070", State::Listening, Some("dcos-cosmos.service"), Bind::Loopback), &bindings);
        assert!(cosmos.ok);
        let dns =
            evaluate(&expect("8123", State::Listening, Some("dcos-mesos-dns.service"), Bind::Loopback), &bindings);
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
        let range = evaluate(&expect("10000-10100", State::Free, None, Bind::Any), &bindings);
        assert!(!range.ok);
        assert_eq!(
            range.msg,
            "10000-10100/tcp: 10005 held by python3 (pid 1, unit a.service); \
             10050 held by python3 (pid 2, no unit), expected free"
        );
        assert_eq!(range.port, Value::from("10000-10100"));
        let allowed = evaluate(&expect("10005", State::Free, Some("a.service"), Bind::Any), &bindings);
        assert!(allowed.ok);
        assert_eq!(allowed.msg, "10005/tcp: held by a.service, as allowed");
        let free = evaluate(&expect("9000", State::Free, None, Bind::Any), &bindings);
        assert_eq!((free.ok, free.msg.as_str()), (true, "9000/tcp: free"));
    }

    #[test]
    fn listening_on_a_range_needs_every_port() {
        let bindings = [held(2000, "0.0.0.0", 1, Some("a.service")), held(2002, "0.0.0.0", 1, Some("a.service"))];
        let verdict = evaluate(&listening("2000-2003", "a.service"), &bindings);
        assert_eq!(verdict.msg, "2000-2003/tcp: nothing listening on 2001,2003, expected a.service");
    }

    #[test]
    fn kernel_and_invisible_holders_are_said_so() {
        let mut kernel = held(64000, "0.0.0.0", 0, None);
        kernel.holder = Holder::Kernel;
        let mut hidden = held(64001, "0.0.0.0", 0, None);
        hidden.holder = Holder::Unknown { uid: 1000 };
        let verdict = evaluate(&expect("64000-64001", State::Free, None, Bind::Any), &[kernel, hidden]);
        assert!(verdict.msg.contains("64000 held by the kernel (no process"), "{}", verdict.msg);
        assert!(verdict.msg.contains("64001 held by a process not visible here (socket of uid 1000)"));
        assert_eq!(verdict.owners[0].pid, None);
    }
}
