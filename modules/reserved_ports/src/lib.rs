//! `reserved_ports`: takes ports out of the kernel's ephemeral port allocator
//! (`net.ipv4.ip_local_reserved_ports`), merging with what is reserved
//! already, and persists the result for systemd-sysctl.

pub mod conffile;
pub mod kernel;
pub mod options;
pub mod pending;
pub mod plan;
pub mod precedence;
pub mod sysctl_d;
pub mod sysctl_file;

use std::path::Path;

use portmatrix_ansible::{Diff, Failure, Invocation, Response, error_chain};
use portmatrix_host::lock::{LOCK_DIR, LockError, ObjectLock};
use portmatrix_portset::PortSet;

use kernel::{KernelError, ProcSys};
use options::Request;
use plan::Plan;
use portmatrix_host::atomic::{self, WriteError};

pub use options::SPEC;

/// The lock every run on this host takes, named after the kernel setting it
/// serialises (per network namespace, as the setting is).
pub const LOCK_MODULE: &str = "reserved_ports";
/// See [`LOCK_MODULE`].
pub const LOCK_OBJECT: &str = "ip_local_reserved_ports";

/// Where the module looks: the real /proc/sys, systemd-sysctl's
/// directories and the lock directory, or stand-ins in unit tests.
pub struct Host<'a> {
    pub proc_sys: ProcSys,
    pub sysctl_dirs: &'a [&'a str],
    /// Where the lock file is (`/run/portmatrix/lock` on a host).
    pub lock_dir: &'a Path,
}

impl Default for Host<'static> {
    fn default() -> Self {
        Host { proc_sys: ProcSys::default(), sysctl_dirs: sysctl_d::SYSCTL_DIRS, lock_dir: Path::new(LOCK_DIR) }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A killed run's temp file could not be removed (nothing was changed).
    #[error(transparent)]
    Leftover(WriteError),
    #[error(transparent)]
    Pending(#[from] pending::PendingError),
    #[error("{source}; the runtime reservation was put back to {previous:?}")]
    FileRestored { source: WriteError, previous: String },
    /// Another program wrote `sysctl_file` between this run's read and its
    /// rename: its edit is kept, and the runtime change undone.
    #[error(
        "sysctl_file {path} changed while it was being written ({how}): another program edited it after this run \
         read it, so it was left as that program wrote it and the runtime reservation was put back to {previous:?}; \
         nothing was lost: run the module again"
    )]
    FileChanged { path: std::path::PathBuf, how: &'static str, previous: String },
    #[error("{source}; putting the runtime reservation back to {previous:?} failed too: {restore}")]
    FileNotRestored { source: WriteError, previous: String, restore: Box<KernelError> },
}

/// Why the run could not take its turn on the host.
#[derive(Debug, thiserror::Error)]
pub enum LockFailure {
    /// Not root: the lock (like the change) needs it.
    #[error("{}; changing the reservation needs root (become: true)", error_chain(.0))]
    NotRoot(LockError),
    /// Another run held it too long, or the lock file is unusable.
    #[error(transparent)]
    Lock(LockError),
}

/// The module's whole run, from validated options to its result. The
/// read-plan-apply runs under the host's lock for the reservation, so two
/// runs at once leave one request's result after the other's, never a mix.
pub fn execute(invocation: &Invocation, host: &Host) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let _turn = take_turn(host.lock_dir, &request, invocation.check_mode)?;
    let kernel = host.proc_sys.read()?;
    let pending = pending::path(host.lock_dir);
    let interrupted = match pending::read(&pending) {
        Ok(record) => record,
        // Not root: the record's directory is root's alone.
        Err(_) if invocation.check_mode => None,
        Err(e) => return Err(e.into()),
    };
    let resumed = interrupted.as_ref().and_then(|r| r.resume(&kernel.reserved).map(|to| (r.pid, to)));
    let file_before = if request.persist {
        sysctl_file::check_directory(&request.sysctl_file)?;
        Some(sysctl_file::read(&request.sysctl_file)?)
    } else {
        None
    };
    let plan = Plan::new(&request, &kernel, file_before, resumed.map(|(_, to)| to))?;
    let mut warnings: Vec<String> = resumed
        .map(|(pid, _)| {
            format!(
                "a run (pid {pid}) was killed part way through writing the kernel's reservation, which takes a \
                 long value a page at a time: this change starts from the value that run was writing"
            )
        })
        .into_iter()
        .collect();
    warnings.extend(plan.ephemeral_warning(request.min_free_ephemeral));
    if let Some(file) = &plan.file {
        let expected = precedence::Expected::of(&request, &plan);
        warnings.extend(precedence::boot_warnings(host.sysctl_dirs, &file.path, &file.after, &expected));
    }
    if !invocation.check_mode {
        apply(&plan, &host.proc_sys, &pending).map_err(|e| with_plan(Failure::from(e), &plan, &request))?;
    }
    Ok(respond(&plan, &request, invocation.check_mode, warnings))
}

/// The host's lock for the reservation, waited for up to `lock_timeout`. A
/// check-mode run that may not take it (not root) goes on without: it
/// changes nothing, and what it reads is at worst a moment old.
fn take_turn(dir: &Path, request: &Request, check_mode: bool) -> Result<Option<ObjectLock>, LockFailure> {
    match ObjectLock::acquire(dir, LOCK_MODULE, LOCK_OBJECT, request.lock_timeout) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if e.is_permission() && check_mode => Ok(None),
        Err(e) if e.is_permission() => Err(LockFailure::NotRoot(e)),
        Err(e) => Err(LockFailure::Lock(e)),
    }
}

/// Leftovers of killed runs first (under the lock, so none is a live run's),
/// then the runtime value (the kernel validates it), then the file; if the
/// file cannot be written, the runtime change is undone so that nothing is
/// left half-done.
fn apply(plan: &Plan, proc_sys: &ProcSys, pending: &Path) -> Result<(), ApplyError> {
    if let Some(file) = &plan.file {
        atomic::remove_leftovers(&file.path).map_err(ApplyError::Leftover)?;
    }
    if plan.runtime_changes() {
        // Clears the record (of this write, or of one it started from) too.
        write_kernel(proc_sys, pending, &plan.before, &plan.after)?;
    } else {
        // A record this run started from is done with, though it wrote nothing.
        pending::clear(pending)?;
    }
    let Some(file) = plan.file.as_ref().filter(|f| f.changes()) else { return Ok(()) };
    // Only over what was read and planned from: another program's edit made
    // since then is kept, and this run undone.
    let Err(source) = atomic::replace_if_unchanged(
        &file.path,
        file.before.as_deref().map(str::as_bytes),
        file.after.as_bytes(),
        0o644,
    ) else {
        return Ok(());
    };
    let restored = |source| match source {
        WriteError::Changed { path, how } => ApplyError::FileChanged { path, how, previous: plan.before.to_string() },
        source => ApplyError::FileRestored { source, previous: plan.before.to_string() },
    };
    if !plan.runtime_changes() {
        return Err(restored(source));
    }
    match write_kernel(proc_sys, pending, &plan.after, &plan.before) {
        Ok(()) => Err(restored(source)),
        Err(ApplyError::Kernel(restore)) => {
            Err(ApplyError::FileNotRestored { source, previous: plan.before.to_string(), restore: Box::new(restore) })
        }
        Err(other) => Err(other),
    }
}

/// The kernel write, recorded while it is in pieces: a run killed part way
/// leaves the record, and the next run completes the write. A write that
/// fails leaves it too: the next run sees how far it got.
fn write_kernel(proc_sys: &ProcSys, pending: &Path, from: &PortSet, to: &PortSet) -> Result<(), ApplyError> {
    if kernel::takes_pieces(to) {
        let record = pending::Record { pid: std::process::id(), from: from.clone(), to: to.clone() };
        pending::write(pending, &record)?;
    }
    proc_sys.write_reserved(from, to)?;
    Ok(pending::clear(pending)?)
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
