//! `reserved_ports`: takes ports out of the kernel's ephemeral port allocator
//! (`net.ipv4.ip_local_reserved_ports`), merging with what is reserved
//! already, and persists the result for systemd-sysctl.

pub mod atomic_file;
pub mod conffile;
pub mod kernel;
pub mod options;
pub mod plan;
pub mod precedence;

use portmatrix_ansible::{Diff, Failure, Invocation, Response};

use atomic_file::FileError;
use kernel::{KernelError, ProcSys};
use options::Request;
use plan::Plan;

pub use options::SPEC;

/// Where the module looks: the real /proc/sys and systemd-sysctl's
/// directories, or stand-ins in unit tests.
pub struct Host<'a> {
    pub proc_sys: ProcSys,
    pub sysctl_dirs: &'a [&'a str],
}

impl Default for Host<'static> {
    fn default() -> Self {
        Host { proc_sys: ProcSys::default(), sysctl_dirs: precedence::SYSCTL_DIRS }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error("{source}; the runtime reservation was put back to {previous:?}")]
    FileRestored { source: FileError, previous: String },
    #[error("{source}; putting the runtime reservation back to {previous:?} failed too: {restore}")]
    FileNotRestored { source: FileError, previous: String, restore: Box<KernelError> },
}

/// The module's whole run, from validated options to its result.
pub fn execute(invocation: &Invocation, host: &Host) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let kernel = host.proc_sys.read()?;
    let file_before = if request.persist {
        Some(atomic_file::read_optional(&atomic_file::write_target(&request.sysctl_file))?)
    } else {
        None
    };
    let plan = Plan::new(&request, &kernel, file_before)?;
    let warnings = if request.persist {
        precedence::boot_warnings(host.sysctl_dirs, &request.sysctl_file, &plan.after)
    } else {
        Vec::new()
    };
    if !invocation.check_mode {
        apply(&plan, &host.proc_sys).map_err(|e| with_plan(Failure::from(e), &plan, &request))?;
    }
    Ok(respond(&plan, &request, invocation.check_mode, warnings))
}

/// Runtime first (the kernel validates the value), then the file; if the
/// file cannot be written, the runtime change is undone so that nothing is
/// left half-done.
fn apply(plan: &Plan, proc_sys: &ProcSys) -> Result<(), ApplyError> {
    if plan.runtime_changes() {
        proc_sys.write_reserved(&plan.after)?;
    }
    let Some(file) = plan.file.as_ref().filter(|f| f.changes()) else { return Ok(()) };
    let Err(source) = atomic_file::write_atomically(&file.path, &file.after) else { return Ok(()) };
    if !plan.runtime_changes() {
        return Err(ApplyError::FileRestored { source, previous: plan.before.to_string() });
    }
    match proc_sys.write_reserved(&plan.before) {
        Ok(()) => Err(ApplyError::FileRestored { source, previous: plan.before.to_string() }),
        Err(restore) => {
            Err(ApplyError::FileNotRestored { source, previous: plan.before.to_string(), restore: Box::new(restore) })
        }
    }
}

fn respond(plan: &Plan, request: &Request, check_mode: bool, warnings: Vec<String>) -> Response {
    let msg = match (plan.changes(), check_mode) {
        (false, _) => format!("reservation already as requested: {}", display_or_none(&plan.after)),
        (true, false) => format!("reservation is now {}", display_or_none(&plan.after)),
        (true, true) => format!("reservation would become {} (check mode)", display_or_none(&plan.after)),
    };
    let mut response = Response::new(plan.changes(), msg);
    response.warnings = warnings;
    response.diffs.push(Diff::of(
        "/proc/sys/net/ipv4/ip_local_reserved_ports",
        format!("{}\n", plan.before),
        format!("{}\n", plan.after),
    ));
    if let Some(file) = &plan.file {
        response.diffs.push(Diff::of(
            file.path.display().to_string(),
            file.before.clone().unwrap_or_default(),
            file.after.clone(),
        ));
    }
    with_fields(response, plan, request)
}

fn display_or_none(set: &portmatrix_portset::PortSet) -> String {
    if set.is_empty() { "(none)".to_string() } else { set.to_string() }
}

/// The return values, on success and on a failure after planning.
fn with_fields(response: Response, plan: &Plan, request: &Request) -> Response {
    response
        .field("reserved", plan.after.to_string())
        .field("added", plan.added().to_string())
        .field("removed", plan.removed().to_string())
        .field("ephemeral_range", plan.ephemeral.to_string())
        .field("ephemeral_free", plan.ephemeral_free())
        .field("sysctl_file", request.persist.then(|| request.sysctl_file.display().to_string()))
}

fn with_plan(failure: Failure, plan: &Plan, request: &Request) -> Failure {
    // On failure the kernel holds the value from before the run.
    let before = Response::default()
        .field("reserved", plan.before.to_string())
        .field("ephemeral_range", plan.ephemeral.to_string())
        .field("sysctl_file", request.persist.then(|| request.sysctl_file.display().to_string()));
    Failure { fields: before.fields, ..failure }
}
