//! `port_responder`: holds TCP listeners and UDP responders on given ports
//! for a bounded time in a detached process and returns at once, so that
//! `port_probe` can prove a path before any service exists. It answers with
//! a token naming its node ([`port_probe::wire`]), refuses ports already
//! taken (naming the holder, as `unit_bindings` would), stops early on
//! request and leaves nothing behind.

pub mod options;
pub mod serve;
pub mod state;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use portmatrix_ansible::{Failure, Invocation, Response};
use portmatrix_host::lock::{LOCK_DIR, ObjectLock};
use serde_json::json;

use options::{Endpoint, Proto, Request, State, ports_of};
use state::Running;

pub use options::SPEC;

/// The module's whole run, from validated options to its result.
pub fn execute(invocation: &Invocation) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    // One run per responder name at a time: two playbooks leave one responder.
    let _lock = ObjectLock::acquire(Path::new(LOCK_DIR), "port_responder", &request.name, request.lock_wait)?;
    let path = state::path(&request.name);
    let file = state::read(&path)?;
    let current = file.clone().filter(Running::alive);
    match request.state {
        State::Stopped => stop(&request, invocation.check_mode, &path, file.is_some(), current.as_ref()),
        State::Started => start(&request, invocation.check_mode, &path, current.as_ref()),
    }
}

fn stop(
    request: &Request,
    check_mode: bool,
    path: &Path,
    file: bool,
    current: Option<&Running>,
) -> Result<Response, Failure> {
    let msg = match current {
        Some(r) => {
            format!("stopped responder {:?} (pid {}), which held {}", request.name, r.pid, listing(&r.endpoints))
        }
        None if file => format!("responder {:?} had already ended; its state file is removed", request.name),
        None => format!("no responder {:?} runs", request.name),
    };
    if !check_mode {
        if let Some(r) = current {
            r.stop()?;
        }
        state::remove(path)?;
    }
    Ok(Response::new(file, msg).field("name", &request.name).field("pid", current.map(|r| r.pid)))
}

fn start(request: &Request, check_mode: bool, path: &Path, current: Option<&Running>) -> Result<Response, Failure> {
    if let Some(r) = current
        && r.endpoints == request.endpoints
        && r.node == request.node
        && r.address == request.address
    {
        let msg = format!(
            "responder {:?} already holds {} as {} (pid {}, until {})",
            request.name,
            listing(&r.endpoints),
            r.node,
            r.pid,
            r.until
        );
        return Ok(result(Response::new(false, msg), request, Some(r.pid), r.until));
    }
    // The ports must be free of everyone but the responder being replaced.
    let replaced: &[Endpoint] = current.map_or(&[], |r| &r.endpoints);
    let taken = taken(&request.endpoints, replaced)?;
    if !taken.is_empty() {
        return Err(Failure::new(format!(
            "listen: {} of the ports are taken, so no responder was started:\n{}",
            taken.len(),
            taken.join("\n")
        ))
        .field("taken", &taken));
    }
    let until = state::unix_now() + request.duration.as_secs();
    let verb = if current.is_some() { "replaced the responder with one that holds" } else { "holds" };
    let msg = format!(
        "responder {:?} {verb} {} as {}, for {} s",
        request.name,
        listing(&request.endpoints),
        request.node,
        request.duration.as_secs()
    );
    if check_mode {
        return Ok(result(Response::new(true, msg), request, None, until));
    }
    if let Some(r) = current {
        r.stop()?;
    }
    let pid = spawn(request, path, until)?;
    Ok(result(Response::new(true, msg), request, Some(pid), until))
}

fn result(response: Response, request: &Request, pid: Option<u32>, until: u64) -> Response {
    let of = |proto| ports_of(&request.endpoints, proto);
    response
        .field("name", &request.name)
        .field("node", &request.node)
        .field("pid", pid)
        .field("until", until)
        .field("listen", json!({ "tcp": of(Proto::Tcp).to_string(), "udp": of(Proto::Udp).to_string() }))
}

/// `2 ports (80, 443/tcp; 53/udp)`.
fn listing(endpoints: &[Endpoint]) -> String {
    let parts: Vec<String> = [Proto::Tcp, Proto::Udp]
        .into_iter()
        .map(|p| (p, ports_of(endpoints, p)))
        .filter(|(_, set)| !set.is_empty())
        .map(|(p, set)| format!("{set}/{p}"))
        .collect();
    format!("{} ports ({})", endpoints.len(), parts.join("; "))
}

/// The message line of each range of `endpoints` that some socket or DNAT
/// rule takes, as `unit_bindings` says it (`2181/tcp: held by unit
/// zookeeper.service (pid 812, java), expected free`); `except` is the
/// responder being replaced, whose ports it frees.
fn taken(endpoints: &[Endpoint], except: &[Endpoint]) -> Result<Vec<String>, Failure> {
    use unit_bindings::options::{Bind, Expectation, State as Want};
    let mut expect = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        let wanted = ports_of(endpoints, proto).difference(&ports_of(except, proto));
        expect.extend(wanted.ranges().iter().map(|&port| Expectation {
            port,
            proto,
            state: Want::Free,
            unit: None,
            bind: Bind::Any,
        }));
    }
    if expect.is_empty() {
        return Ok(Vec::new());
    }
    let request = unit_bindings::options::Request {
        expect,
        timeout: std::time::Duration::ZERO,
        fail_on_mismatch: true,
        facts: false,
    };
    let observation = unit_bindings::observe(&request, &unit_bindings::owners::Procfs::default())?;
    let verdicts = unit_bindings::check::evaluate_all(&request.expect, &observation.bindings);
    Ok(verdicts.into_iter().filter(|v| !v.ok).map(|v| v.msg).collect())
}

/// Starts the detached responder and waits for it to hold every port.
fn spawn(request: &Request, path: &Path, until: u64) -> Result<u32, Failure> {
    let config = serve::Config {
        state_path: path.to_path_buf(),
        node: request.node.clone(),
        endpoints: request.endpoints.clone(),
        address: request.address,
        until,
    };
    // This very binary, whose file Ansible deletes after the task: the
    // running responder keeps it open, and needs nothing else from disk.
    // By its path, not /proc/self/exe, so that its process name (what a
    // holder's message names) is port_responder.
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start the responder: {e}")))?;
    // A failed write needs no message of its own: the responder then says
    // (or its silence shows) that it has no configuration. Dropping stdin
    // closes it, which ends the responder's read.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&serde_json::to_vec(&config).unwrap_or_default());
    }
    let said = match child.stdout.take() {
        Some(stdout) => serve::read_ready(stdout),
        None => Err("the responder has no stdout".to_string()),
    };
    match said {
        Ok(()) => Ok(child.id()),
        Err(message) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Failure::new(format!("listen: the responder could not start, so none runs: {message}")))
        }
    }
}
