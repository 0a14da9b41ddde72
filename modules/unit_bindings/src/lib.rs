//! `unit_bindings`: checks which systemd unit holds which port. Before an
//! install, that ports are free; after it, that the right unit listens and
//! that loopback-only services are not exposed. Never changes anything.

pub mod cgroups;
pub mod check;
pub mod forwarders;
pub mod options;
pub mod owners;
pub mod socket_units;
pub mod sockets;
pub mod units;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use portmatrix_ansible::{Failure, Invocation, Response};
use portmatrix_host::tools::Tools;
use portmatrix_portset::PortSet;
use serde_json::json;

use cgroups::CgroupIndex;
use check::{Activation, Binding, Bindings, Dnat, Holder, Verdict};
use options::{Proto, Request};
use owners::Procfs;
use sockets::SocketError;

pub use options::SPEC;

/// Where the module looks for socket owners: the real /proc, or a
/// stand-in. (Sockets always come from the kernel, for the network
/// namespace the module runs in.)
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub procfs: Procfs,
}

/// How often a check with a timeout looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The task's `msg` names at most this many mismatches (each result has its
/// own) and counts the rest.
pub const MISMATCHES_IN_MSG: usize = 50;

/// The warning about owners that cannot be seen names at most this many ports.
pub const HIDDEN_PORTS_NAMED: usize = 10;

/// What was seen at one moment.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The sockets some expectation concerns (every socket with facts=true).
    pub bindings: Bindings,
    /// Processes whose open files were read to find owners (0 when no
    /// socket needed one).
    pub processes_read: usize,
    /// Processes whose open files could not be read.
    pub unreadable: usize,
    /// What could not be found out (said in the result's warnings).
    pub warnings: Vec<String>,
}

/// Reads the sockets, then the owners of those that matter (none at all
/// when no socket concerns any expectation and no facts are asked for).
pub fn observe(request: &Request, procfs: &Procfs) -> Result<Observation, SocketError> {
    let mut sockets = sockets::read_sockets()?;
    if !request.facts {
        // The ports in question, per protocol: one lookup per socket,
        // however many expectations there are.
        let ports = |proto| PortSet::from_ranges(request.expect.iter().filter(|e| e.proto == proto).map(|e| e.port));
        let (tcp, udp) = (ports(Proto::Tcp), ports(Proto::Udp));
        sockets.retain(|socket| match socket.proto {
            Proto::Tcp => tcp.contains(socket.port),
            Proto::Udp => udp.contains(socket.port),
        });
    }
    // First the kernel's word: the unit of the cgroup each socket was made
    // in. Where it names none (no cgroup v2 id, a process in no unit, PID
    // 1's init.scope under socket activation), the holder is looked for.
    let ids: HashSet<u64> = sockets.iter().filter_map(|s| s.cgroup_id).collect();
    let index = CgroupIndex::build(&ids);
    let roots = procfs.manager_roots();
    let mut bindings: Vec<Binding> = sockets
        .into_iter()
        .map(|socket| {
            let holder = match socket.inode {
                0 => Holder::Kernel,
                _ => match kernel_units(&socket, &index, &roots) {
                    Some(units) => Holder::Cgroup { units, uid: socket.uid },
                    None => Holder::Unknown { uid: socket.uid },
                },
            };
            Binding { socket, holder, activation: None }
        })
        .collect();
    let tools = Tools::new(std::env::var_os("PATH"), TOOL_TIMEOUT);
    let mut dnat_warnings = Vec::new();
    let dnat = if request.expect.is_empty() { Vec::new() } else { dnat_rules(request, &tools, &mut dnat_warnings) };
    // Then the processes, only where a pid is still needed: sockets with no
    // unit from the kernel, and those of expectations that fail (their
    // message names the process, and a forwarder is known by its name).
    let mut needed: HashSet<u64> =
        bindings.iter().filter(|b| matches!(b.holder, Holder::Unknown { .. })).map(|b| b.socket.inode).collect();
    let from_kernel = Bindings::new(bindings.clone()).with_dnat(dnat.clone());
    for (expectation, verdict) in request.expect.iter().zip(check::evaluate_all(&request.expect, &from_kernel)) {
        if !verdict.ok {
            needed.extend(from_kernel.within(expectation.proto, expectation.port).iter().map(|b| b.socket.inode));
        }
    }
    needed.remove(&0);
    // Their holders are most likely in the unit the socket was made in (not
    // PID 1's init.scope: under socket activation the service holds it too,
    // and is the answer).
    let preferred: HashSet<u32> = bindings
        .iter()
        .filter(|b| needed.contains(&b.socket.inode) && matches!(b.holder, Holder::Cgroup { .. }))
        .filter_map(|b| b.socket.cgroup_id)
        .collect::<HashSet<u64>>()
        .into_iter()
        .flat_map(|id| index.procs(id))
        .collect();
    let scan = procfs.find_owners_preferring(&needed, &preferred);
    for binding in &mut bindings {
        if needed.contains(&binding.socket.inode) {
            binding.holder = match scan.owners.get(&binding.socket.inode) {
                Some(owner) => Holder::Process(owner.clone()),
                None => Holder::Unknown { uid: binding.socket.uid },
            };
        }
    }
    let mut warnings = Vec::new();
    // The manager is asked only when its answer can matter: a socket it
    // holds, an expectation naming a socket unit, or all facts.
    let names_socket_unit = request.expect.iter().any(|e| e.unit.as_deref().is_some_and(|u| u.ends_with(".socket")));
    if bindings.iter().any(held_by_manager) || (!bindings.is_empty() && (names_socket_unit || request.facts)) {
        match socket_units::read(&tools) {
            Ok(units) => attribute(&mut bindings, &units),
            Err(e) if bindings.iter().any(held_by_manager) => warnings.push(format!(
                "systemd (pid 1) holds sockets, but its socket units could not be read, so those sockets are \
                 not attributed to them: {e}"
            )),
            Err(_) => {}
        }
    }
    warnings.extend(dnat_warnings);
    Ok(Observation {
        bindings: Bindings::new(bindings).with_dnat(dnat),
        processes_read: scan.processes_read,
        unreadable: scan.unreadable,
        warnings,
    })
}

/// The units of the cgroup a socket was made in, when that names a unit
/// other than PID 1's `init.scope` (which holds sockets for socket units:
/// their holder decides).
fn kernel_units(socket: &sockets::Socket, index: &CgroupIndex, roots: &units::Roots) -> Option<units::Units> {
    let path = index.path(socket.cgroup_id?)?;
    let units = units::units_in_path(path, &roots.v2);
    (units.unit.is_some() && units.unit.as_deref() != Some("init.scope")).then_some(units)
}

/// How long each tool the module asks (systemctl, the DNAT listers) may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// The host's DNAT rules that take a port some expectation is about (the
/// rest cannot matter); what could not be read is said in `warnings`.
fn dnat_rules(request: &Request, tools: &Tools, warnings: &mut Vec<String>) -> Vec<Dnat> {
    let (rules, unread) = portmatrix_netfilter::dnat::read(tools);
    // One warning, however many tools failed (without root, all do).
    if let Some(first) = unread.first() {
        let more =
            if unread.len() > 1 { format!(" (and {} more tools failed)", unread.len() - 1) } else { String::new() };
        warnings.push(format!(
            "could not read the host's DNAT rules, so ports they take without a socket are not seen (they need \
             root: run the task with become: true): {first}{more}"
        ));
    }
    let wanted = |proto| PortSet::from_ranges(request.expect.iter().filter(|e| e.proto == proto).map(|e| e.port));
    let (tcp, udp) = (wanted(Proto::Tcp), wanted(Proto::Udp));
    let mut out = Vec::new();
    for rule in rules {
        for &proto in &rule.protos {
            let wanted = if proto == Proto::Tcp { &tcp } else { &udp };
            if rule.ports.as_ref().is_none_or(|ports| !ports.intersection(wanted).is_empty()) && !wanted.is_empty() {
                out.push(Dnat { proto, ports: rule.ports.clone(), place: rule.place.clone(), rule: rule.rule.clone() });
            }
        }
    }
    out
}

/// Held by the system manager: PID 1, in its `init.scope`.
fn held_by_manager(binding: &Binding) -> bool {
    matches!(&binding.holder, Holder::Process(owner) if owner.pid == 1 && owner.unit.as_deref() == Some("init.scope"))
}

/// Ties each socket to the socket unit listening on its address, when the
/// manager holds it or a unit that socket unit activates does (anyone else
/// on that address is not the socket unit's).
fn attribute(bindings: &mut [Binding], units: &[socket_units::SocketUnit]) {
    for binding in bindings {
        let socket = &binding.socket;
        let Some(unit) =
            units.iter().find(|u| u.proto == socket.proto && u.port == socket.port && u.address == socket.address)
        else {
            continue;
        };
        let by_manager = held_by_manager(binding);
        let activated = binding.unit().is_some_and(|own| unit.activates.iter().any(|a| a == own));
        if by_manager || activated {
            binding.activation =
                Some(Activation { socket_unit: unit.unit.clone(), activates: unit.activates.clone(), by_manager });
        }
    }
}

/// The module's whole run, from validated options to its result.
pub fn execute(invocation: &Invocation, host: &Host) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let deadline = Instant::now() + request.timeout;
    loop {
        let observation = observe(&request, &host.procfs)?;
        let verdicts = check::evaluate_all(&request.expect, &observation.bindings);
        let now = Instant::now();
        if verdicts.iter().all(|v| v.ok) || now >= deadline {
            return respond(&request, &observation, &verdicts);
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

fn respond(request: &Request, observation: &Observation, verdicts: &[Verdict]) -> Result<Response, Failure> {
    let mismatches = verdicts.iter().filter(|v| !v.ok).count();
    let msg = if verdicts.is_empty() {
        format!("{} sockets hold ports", observation.bindings.all().len())
    } else if mismatches == 0 {
        format!("all {} expectations hold", verdicts.len())
    } else {
        mismatch_lines(verdicts, mismatches)
    };
    let mut response = Response::new(false, msg)
        .field("mismatches", mismatches)
        .field("results", verdicts)
        .field("processes_read", observation.processes_read);
    if request.facts {
        let facts: Vec<_> = observation.bindings.all().iter().map(Binding::fact).collect();
        response = response.field("ansible_facts", json!({ "port_bindings": facts }));
    }
    response.warnings.extend(invisible_owners_warning(observation));
    response.warnings.extend(observation.warnings.iter().cloned());
    if mismatches == 0 || !request.fail_on_mismatch {
        return Ok(response);
    }
    Err(Failure { msg: response.msg, warnings: response.warnings, fields: response.fields })
}

/// One line per mismatch, the first [`MISMATCHES_IN_MSG`] of them, then how
/// many more there are.
fn mismatch_lines(verdicts: &[Verdict], mismatches: usize) -> String {
    let lines = verdicts.iter().filter(|v| !v.ok).map(|v| v.msg.as_str());
    portmatrix_ansible::first_lines(lines, mismatches, MISMATCHES_IN_MSG, "mismatches (see results)")
}

/// Names the ports whose owner could not be seen (the first few), and why.
fn invisible_owners_warning(observation: &Observation) -> Option<String> {
    let mut hidden: Vec<(Proto, u16)> = observation
        .bindings
        .all()
        .iter()
        .filter(|b| matches!(b.holder, Holder::Unknown { .. }))
        .map(|b| (b.socket.proto, b.socket.port))
        .collect();
    hidden.dedup();
    if hidden.is_empty() {
        return None;
    }
    let mut ports = hidden
        .iter()
        .take(HIDDEN_PORTS_NAMED)
        .map(|(proto, port)| format!("{port}/{proto}"))
        .collect::<Vec<_>>()
        .join(", ");
    if hidden.len() > HIDDEN_PORTS_NAMED {
        let _ = write!(ports, " and {} more ports", hidden.len() - HIDDEN_PORTS_NAMED);
    }
    Some(if observation.unreadable > 0 {
        format!(
            "the owners of the sockets on {ports} are unknown: {} processes' open files could not be read \
             (other users' processes need root); run the task with become: true",
            observation.unreadable
        )
    } else {
        format!(
            "no process visible here holds the sockets on {ports}: they belong to processes in another PID \
             namespace (run the module where those processes are visible, e.g. on the host)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use check::OwnerView;
    use options::{Bind, State};

    fn verdict(ok: bool, n: usize) -> Verdict {
        Verdict {
            port: n.into(),
            proto: Proto::Tcp,
            state: State::Free,
            unit: None,
            bind: Bind::Any,
            ok,
            owners: Vec::<OwnerView>::new(),
            owners_total: 0,
            dnat: Vec::new(),
            msg: format!("{n}/tcp: held by x, expected free"),
        }
    }

    #[test]
    fn msg_names_the_first_mismatches_and_counts_the_rest() {
        let few: Vec<Verdict> = (1..=3).map(|n| verdict(n != 2, n)).collect();
        assert_eq!(mismatch_lines(&few, 1), "2/tcp: held by x, expected free");
        let many: Vec<Verdict> = (1..=500).map(|n| verdict(n % 5 == 0, n)).collect();
        let msg = mismatch_lines(&many, 400);
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), MISMATCHES_IN_MSG + 1);
        assert_eq!(lines[0], "1/tcp: held by x, expected free");
        assert_eq!(lines[MISMATCHES_IN_MSG - 1], "62/tcp: held by x, expected free", "ok ones are skipped");
        assert_eq!(lines[MISMATCHES_IN_MSG], "... and 350 more mismatches (see results)");
    }

    #[test]
    fn the_warning_about_hidden_owners_names_the_first_ports_in_order() {
        let hidden = |port: u16| Binding {
            socket: sockets::Socket {
                proto: Proto::Tcp,
                address: "0.0.0.0".parse().unwrap(),
                port,
                inode: 1,
                uid: 7,
                cgroup_id: None,
            },
            holder: Holder::Unknown { uid: 7 },
            activation: None,
        };
        // 15 ports, the first one twice (IPv4 and IPv6 alike count once).
        let mut bindings: Vec<Binding> = (0..15).map(|n| hidden(9000 - n * 100)).collect();
        bindings.push(hidden(9000));
        let observation =
            Observation { bindings: Bindings::new(bindings), processes_read: 3, unreadable: 2, warnings: Vec::new() };
        let warning = invisible_owners_warning(&observation).unwrap();
        assert!(
            warning.starts_with(
                "the owners of the sockets on 7600/tcp, 7700/tcp, 7800/tcp, 7900/tcp, 8000/tcp, 8100/tcp, \
                 8200/tcp, 8300/tcp, 8400/tcp, 8500/tcp and 5 more ports are unknown: 2 processes'"
            ),
            "{warning}"
        );
    }
}
