//! `unit_bindings`: checks which systemd unit holds which port. Before an
//! install, that ports are free; after it, that the right unit listens and
//! that loopback-only services are not exposed. Never changes anything.

pub mod check;
pub mod options;
pub mod owners;
pub mod sockets;
pub mod units;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use portmatrix_ansible::{Failure, Invocation, Response};
use serde_json::json;

use check::{Binding, Holder, Verdict};
use options::Request;
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

/// What was seen at one moment.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The sockets some expectation concerns (every socket with facts=true).
    pub bindings: Vec<Binding>,
    /// Processes whose open files were read to find owners (0 when no
    /// socket needed one).
    pub processes_read: usize,
    /// Processes whose open files could not be read.
    pub unreadable: usize,
}

/// Reads the sockets, then the owners of those that matter (none at all
/// when no socket concerns any expectation and no facts are asked for).
pub fn observe(request: &Request, procfs: &Procfs) -> Result<Observation, SocketError> {
    let mut sockets = sockets::read_sockets()?;
    if !request.facts {
        sockets.retain(|socket| request.expect.iter().any(|e| check::concerns(e, socket)));
    }
    sockets.sort_by_key(|s| (s.proto, s.port, s.address));
    let wanted: HashSet<u64> = sockets.iter().map(|s| s.inode).filter(|&inode| inode != 0).collect();
    let scan = procfs.find_owners(&wanted);
    let bindings = sockets
        .into_iter()
        .map(|socket| {
            let holder = match (socket.inode, scan.owners.get(&socket.inode)) {
                (0, _) => Holder::Kernel,
                (_, Some(owner)) => Holder::Process(owner.clone()),
                (_, None) => Holder::Unknown { uid: socket.uid },
            };
            Binding { socket, holder }
        })
        .collect();
    Ok(Observation { bindings, processes_read: scan.processes_read, unreadable: scan.unreadable })
}

/// The module's whole run, from validated options to its result.
pub fn execute(invocation: &Invocation, host: &Host) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let deadline = Instant::now() + request.timeout;
    loop {
        let observation = observe(&request, &host.procfs)?;
        let verdicts: Vec<Verdict> = request.expect.iter().map(|e| check::evaluate(e, &observation.bindings)).collect();
        let now = Instant::now();
        if verdicts.iter().all(|v| v.ok) || now >= deadline {
            return respond(&request, &observation, &verdicts);
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

fn respond(request: &Request, observation: &Observation, verdicts: &[Verdict]) -> Result<Response, Failure> {
    let mismatches: Vec<&str> = verdicts.iter().filter(|v| !v.ok).map(|v| v.msg.as_str()).collect();
    let msg = if verdicts.is_empty() {
        format!("{} sockets hold ports", observation.bindings.len())
    } else if mismatches.is_empty() {
        format!("all {} expectations hold", verdicts.len())
    } else {
        mismatches.join("\n")
    };
    let mut response = Response::new(false, msg)
        .field("mismatches", mismatches.len())
        .field("results", verdicts)
        .field("processes_read", observation.processes_read);
    if request.facts {
        let facts: Vec<_> = observation.bindings.iter().map(Binding::fact).collect();
        response = response.field("ansible_facts", json!({ "port_bindings": facts }));
    }
    response.warnings.extend(invisible_owners_warning(observation));
    if mismatches.is_empty() || !request.fail_on_mismatch {
        return Ok(response);
    }
    Err(Failure { msg: response.msg, warnings: response.warnings, fields: response.fields })
}

/// Names the ports whose owner could not be seen, and why.
fn invisible_owners_warning(observation: &Observation) -> Option<String> {
    let hidden: Vec<String> = observation
        .bindings
        .iter()
        .filter(|b| matches!(b.holder, Holder::Unknown { .. }))
        .map(|b| format!("{}/{}", b.socket.port, b.socket.proto))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if hidden.is_empty() {
        return None;
    }
    let ports = hidden.join(", ");
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
