//! `open_ports`: makes a host's firewall accept given ports from given
//! sources (and, with `enforce`, drop them from everyone else), in a chain or
//! table of its own, in one transaction, with nftables or iptables (legacy or
//! `nf_tables` variant, IPv4 and IPv6). Objects it did not create (they carry
//! no marker of it) are never touched, whatever their names.
//!
//! A run: validate the options; check the SSH session; take the lock for
//! `name` on this host; choose the backend; read, plan (the target state and
//! the steps to it) for that backend and, for a copy of the module's objects,
//! for the other one, and plan the boot restore ([`persist`]); apply (unless
//! in check mode); let the lock go and start the boot restore's unit when it
//! is not running; answer. The boot restore itself is a run in
//! [`Mode::Restore`] on the saved request: the same, without the persistence.

pub mod backend;
pub mod choose;
pub mod dnat;
pub mod options;
pub mod persist;
pub mod ruleset;
pub mod source;
pub mod ssh;
pub mod summary;
pub mod tools;

use std::fmt::Write;

use portmatrix_ansible::{Diff, Failure, Invocation, Response, error_chain};
use portmatrix_host::lock::{LOCK_DIR, ObjectLock};

use backend::{Firewall, FirewallError, Step};
use choose::Chosen;
use options::{Request, State};
use ruleset::Ruleset;
use ssh::SshConnection;
use tools::Tools;

pub use options::SPEC;

/// What the module sees of its environment: the PATH its tools are found on,
/// and the SSH connection that runs it.
pub struct Host {
    pub path: Option<std::ffi::OsString>,
    pub ssh_connection: Option<String>,
}

impl Host {
    pub fn from_env() -> Host {
        Host { path: std::env::var_os("PATH"), ssh_connection: ssh::session_value() }
    }
}

/// Applies a plan: the backend with the state it read and the steps it planned.
type Apply = Box<dyn Fn(&Tools) -> Result<(), FirewallError>>;

/// One backend's part of a run, planned: read, target and steps, kept
/// together so that the chosen backend and the other one are handled alike.
struct Planned {
    label: String,
    unchecked: Vec<String>,
    before: String,
    after: String,
    steps: Vec<Step>,
    warnings: Vec<String>,
    apply: Apply,
}

fn plan<F: Firewall + 'static>(firewall: F, desired: Option<&Ruleset>) -> Result<Planned, FirewallError>
where
    F::State: 'static,
{
    let now = firewall.read()?;
    let target = firewall.target(&now, desired)?;
    let steps = firewall.steps(&now, &target);
    let planned_steps = steps.clone();
    Ok(Planned {
        label: firewall.label(),
        unchecked: firewall.unchecked(&now),
        before: firewall.describe(&now),
        after: firewall.describe(&target),
        warnings: firewall.warnings(&now, desired),
        steps,
        apply: Box::new(move |tools| backend::apply(&firewall, tools, &now, &planned_steps)),
    })
}

fn plan_chosen(chosen: Chosen, desired: Option<&Ruleset>) -> Result<Planned, FirewallError> {
    match chosen {
        Chosen::Nftables(firewall) => plan(firewall, desired),
        Chosen::Iptables(firewall) => plan(firewall, desired),
    }
}

/// How the module runs: as Ansible runs it, or as its own boot restore.
pub enum Mode {
    /// A task: the rules and their persistence.
    Task,
    /// `open_ports --restore FILE`, run by the unit: the saved rules only,
    /// under the lock taken before the file was read (see
    /// [`persist::saved::read_locked`]).
    Restore(ObjectLock),
}

/// The module's whole run as a task, from validated options to its result.
pub fn execute(invocation: &Invocation, host: &Host) -> Result<Response, Failure> {
    execute_as(invocation, host, Mode::Task)
}

/// The module's whole run, from validated options to its result.
pub fn execute_as(invocation: &Invocation, host: &Host, mode: Mode) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let desired = (request.state == State::Present).then_some(&request.ruleset);
    let with_rules = |failure: Failure| failure.field("rules", request.ruleset.to_json());
    guard_ssh(desired, host).map_err(with_rules)?;
    let (lock, task) = match mode {
        Mode::Task => (lock(&request, invocation.check_mode).map_err(with_rules)?, true),
        Mode::Restore(held) => (Some(held), false),
    };
    let tools = Tools::new(host.path.clone(), request.command_timeout);
    let chosen = choose::choose(&request, &tools).map_err(|e| with_rules(e.into()))?;
    let others = choose::others(&chosen, &request, &tools);
    let primary = plan_chosen(chosen, desired).map_err(|e| with_rules(e.into()))?;
    let mut warnings = primary.warnings.clone();
    warnings.extend(desired.map(|ruleset| dnat::warnings(&tools, ruleset)).unwrap_or_default());
    if let Some(lock) = &lock
        && let Some(note) = interrupted(lock.previous())
    {
        warnings.push(note);
        if invocation.check_mode {
            // Only a run that applies completes it; the next one must know too.
            lock.note("applying was cut short before this check-mode run");
        }
    }
    let copies = plan_copies(others, &request.name, &mut warnings);
    let persistence = if task {
        Some(persist::Plan::new(&request, backend_option(&primary.label), &tools).map_err(|e| {
            with_rules(Failure::new(format!("persist: {}", error_chain(&e)))).field("backend", &primary.label)
        })?)
    } else {
        None
    };
    warnings.extend(persistence.iter().flat_map(|p| p.warnings.iter().cloned()));
    let steps: Vec<&Step> = primary.steps.iter().chain(copies.iter().flat_map(|c| &c.steps)).collect();
    let script = backend::script(steps.iter().copied());
    let changed = !steps.is_empty() || persistence.as_ref().is_some_and(persist::Plan::changes);
    let full = request.full_script;
    let failed = |failure: Failure| {
        with_rules(failure).field("backend", &primary.label).field("script", summary::summarise(&script, full))
    };
    if !steps.is_empty() && !invocation.check_mode {
        apply_all(&primary, &copies, &tools, lock.as_ref(), &request.name).map_err(failed)?;
    }
    if let Some(plan) = persistence.as_ref().filter(|_| !invocation.check_mode) {
        let persist_failed = |e| failed(persist_failure(&e, &plan.unit, request.state));
        plan.apply(&tools).map_err(persist_failed)?;
        // The unit's restore takes the lock too: it starts once this run is done.
        drop(lock);
        plan.start(&tools).map_err(persist_failed)?;
    }
    let mut msg = message(&request, &primary, &copies, invocation.check_mode);
    if let Some(summary) = persistence.as_ref().and_then(|p| p.summary(invocation.check_mode)) {
        let _ = write!(msg, "; {summary}");
    }
    let mut response = Response::new(changed, msg);
    response.warnings = warnings;
    for planned in std::iter::once(&primary).chain(&copies) {
        response.diffs.push(Diff::of(
            format!("{}: {}", planned.label, request.name),
            summary::summarise(&planned.before, full),
            summary::summarise(&planned.after, full),
        ));
    }
    response.diffs.extend(persistence.iter().flat_map(persist::Plan::diffs));
    if let Some(plan) = &persistence {
        response = response.field("persisted", &plan.files);
    }
    Ok(response
        .field("backend", &primary.label)
        .field("script", summary::summarise(&script, full))
        .field("rules", request.ruleset.to_json()))
}

/// The `backend` option that selects the backend of `label`, for the saved
/// request: the boot restore uses the backend this run used.
fn backend_option(label: &str) -> &'static str {
    if label == "nftables" { "nftables" } else { "iptables" }
}

/// A failure of the persistence, after the firewall was changed as asked.
fn persist_failure(error: &persist::PersistError, unit: &str, state: State) -> Failure {
    let (done, what) = match state {
        State::Present => ("the rules are in place", "arranged"),
        State::Absent => ("the rules are removed", "removed"),
    };
    Failure::new(format!(
        "{done}, but their boot restore ({unit}) could not be {what}: {}; see `systemctl status {unit}` and \
         `journalctl -u {unit}`, or set persist: false",
        error_chain(error)
    ))
}

/// Refuses rules that `enforce` and would drop new SSH connections of the
/// session that runs the module.
fn guard_ssh(desired: Option<&Ruleset>, host: &Host) -> Result<(), Failure> {
    if let (Some(ruleset), Some(value)) = (desired.filter(|r| r.enforce), host.ssh_connection.as_deref())
        && let Some(ssh) = SshConnection::parse(value)?
    {
        ruleset.check_ssh(&ssh)?;
    }
    Ok(())
}

/// The plans that remove a copy of the module's objects under another
/// backend: only those with something to remove. One that cannot even be
/// read is reported, not fatal.
fn plan_copies(others: Vec<Result<Chosen, FirewallError>>, name: &str, warnings: &mut Vec<String>) -> Vec<Planned> {
    let mut copies = Vec::new();
    for other in others {
        match other.and_then(|o| plan_chosen(o, None)) {
            Ok(copy) => {
                warnings.extend(copy.unchecked.iter().cloned());
                copies.extend((!copy.steps.is_empty()).then_some(copy));
            }
            Err(e) => warnings.push(format!("could not check another backend for a copy of {name}: {e}")),
        }
    }
    copies
}

/// Applies the chosen backend's plan, then removes the copies, noting in the
/// lock file what it is doing for a run that comes after.
fn apply_all(
    primary: &Planned,
    copies: &[Planned],
    tools: &Tools,
    lock: Option<&ObjectLock>,
    name: &str,
) -> Result<(), Failure> {
    let note = |what: &str| lock.into_iter().for_each(|l| l.note(what));
    let steps = primary.steps.len() + copies.iter().map(|c| c.steps.len()).sum::<usize>();
    note(&format!("applying {steps} step(s) with {}", primary.label));
    // The error, and the backend of the copy when removing that failed.
    let applied = (primary.apply)(tools).map_err(|e| (e, None)).and_then(|()| {
        copies.iter().try_for_each(|copy| (copy.apply)(tools).map_err(|e| (e, Some(copy.label.as_str()))))
    });
    // A failure that put everything back is not an apply cut short; one that
    // could not is, and the next run must hear of it.
    match &applied {
        Err((FirewallError::NotRolledBack { .. }, _)) => {
            note("applying: it failed and could not undo what it had applied");
        }
        Err(_) => note("failed; what it had applied was undone"),
        Ok(()) => note("done"),
    }
    applied.map_err(|(error, copy)| match copy {
        None => Failure::from(error),
        Some(label) => Failure::new(format!(
            "{name} now holds the requested rules, but its copy under {label} could not be removed: {error}"
        )),
    })
}

/// The lock on `name`. A check-mode run by a user who may not take it goes
/// on without it: it changes nothing.
fn lock(request: &Request, check_mode: bool) -> Result<Option<ObjectLock>, Failure> {
    let dir = std::path::Path::new(LOCK_DIR);
    match ObjectLock::acquire(dir, "open_ports", &request.name, request.lock_timeout) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if check_mode && e.is_permission() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A warning when the previous holder of the lock died while applying.
fn interrupted(previous: &str) -> Option<String> {
    previous.contains(": applying").then(|| {
        format!(
            "the previous run ({previous}) ended while applying: it was killed, the host went down, or it failed \
             and could not undo what it had applied; this run read the firewall again, so the result below is what \
             holds now"
        )
    })
}

fn message(request: &Request, primary: &Planned, copies: &[Planned], check_mode: bool) -> String {
    let (label, name) = (&primary.label, &request.name);
    let changed = !primary.steps.is_empty();
    let present = request.state == State::Present;
    let mut msg = match (present, changed, check_mode) {
        (true, false, _) => format!("{label}: {name} already holds the requested rules"),
        (true, true, false) => format!("{label}: {name} now holds the requested rules"),
        (true, true, true) => format!("{label}: {name} would be written (check mode)"),
        (false, false, _) => format!("{label}: nothing of {name} to remove"),
        (false, true, false) => format!("{label}: {name} and its hook removed"),
        (false, true, true) => format!("{label}: {name} and its hook would be removed (check mode)"),
    };
    for copy in copies {
        let verb = if check_mode { "would be removed" } else { "was removed" };
        let _ = write!(msg, "; the copy of {name} under {} {verb}", copy.label);
    }
    msg
}
