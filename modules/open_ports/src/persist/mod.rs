//! Persistence (`persist`, default true): the module's rules come back at
//! boot, before the network is configured, and right after a firewall service
//! of the distribution reloads or flushes the ruleset; with no Python, and no
//! daemon but firewalld's follower on firewalld hosts. Independent of the
//! backend that renders the rules: what is saved is the request, and what
//! restores it is the module itself.
//!
//! Per `name`, all owned by the module and written atomically:
//! - `/var/lib/portmatrix/open_ports/NAME/open_ports`: a copy of the module's
//!   own static binary (Ansible deletes the one it ran);
//! - `/var/lib/portmatrix/open_ports/NAME/request.json`: the saved request
//!   ([`saved`]), carrying the module's marker;
//! - `/etc/systemd/system/portmatrix-open_ports-NAME.service`: a oneshot unit
//!   that runs `open_ports --restore request.json` ([`unit`]), its first line
//!   the marker;
//! - a `.wants` link to it from multi-user.target, and a drop-in in each
//!   firewall service (and Docker) that is installed, which restarts it
//!   after that service starts or reloads ([`unit`]);
//! - where firewalld is installed,
//!   `/etc/systemd/system/portmatrix-open_ports-firewalld@NAME.service`, the
//!   follower that restarts the unit after each `firewall-cmd --reload`
//!   ([`follow`]): the one part that keeps running, and only while firewalld
//!   does.
//!
//! The restore is an ordinary run of the module on the saved request, under
//! the same lock (the request read once that lock is held): it touches only
//! the module's own table or chain and its hook, reads the firewall first,
//! and changes nothing when the rules are there. The state directory is the
//! module's own; in the unit directory, which others write too, a unit,
//! drop-in or link of the module's names that does not carry its marker
//! (anything but a regular file or a link to the unit included) is someone
//! else's: `present` is refused naming it, `absent` leaves it with a warning.
//!
//! Persistence needs systemd to run as the init system (`/run/systemd/system`,
//! `sd_booted(3)`). On a host without it, nothing is written and a warning
//! says so; the rules themselves are applied. Removing (state: absent,
//! persist: false) works everywhere.

pub mod follow;
pub mod saved;
pub mod unit;

use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use portmatrix_ansible::Diff;
use portmatrix_host::atomic::{self, WriteError};
use portmatrix_host::file::{FileError, read_regular};

use crate::backend::owner::{Marker, NotOurs};
use crate::options::{Request, State};
use crate::tools::{ToolError, Tools};

/// Where the module keeps its copy of itself and the saved requests.
pub const STATE_DIR: &str = "/var/lib/portmatrix/open_ports";
/// Exists when systemd is the init system (`sd_booted(3)`).
pub const SYSTEMD_RUNNING: &str = "/run/systemd/system";
/// The running module's own program.
const SELF_EXE: &str = "/proc/self/exe";
/// A bound for reading a program (the module's is under 1 MiB).
const MAX_PROGRAM: usize = 16 << 20;
/// A bound for reading a unit file.
const MAX_UNIT: usize = 1 << 20;

/// Why persistence could not be planned or arranged.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    NotOurs(#[from] NotOurs),
    #[error(transparent)]
    Read(#[from] FileError),
    #[error("cannot read the module's own program ({SELF_EXE})")]
    SelfExe(#[source] std::io::Error),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot remove {path}")]
    Remove { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Systemctl(#[from] ToolError),
}

/// What a file of the persistence is, for writing it and showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Program,
    /// A symbolic link; its content is the target.
    Link,
}

impl Kind {
    /// What a file of this kind is called in messages.
    fn noun(self) -> &'static str {
        match self {
            Kind::Text => "the file",
            Kind::Program => "the program",
            Kind::Link => "the link",
        }
    }
}

/// A file of the module's, with what it should hold (`None`: nothing).
type Wanted = (PathBuf, Kind, Option<Vec<u8>>);

/// One file that changes.
#[derive(Debug, Clone)]
struct Change {
    path: PathBuf,
    kind: Kind,
    before: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
}

/// The module's persistence files of one `name`.
struct Layout {
    unit: PathBuf,
    dir: PathBuf,
    program: PathBuf,
    request: PathBuf,
}

impl Layout {
    fn of(name: &str) -> Layout {
        let dir = Path::new(STATE_DIR).join(name);
        Layout { unit: unit::unit_path(name), program: dir.join("open_ports"), request: dir.join("request.json"), dir }
    }
}

/// What a run does about persistence: the file changes, whether the unit is
/// started afterwards, and what the result lists.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The unit's name.
    pub unit: String,
    changes: Vec<Change>,
    /// The files that hold the persistence once the run is done (none when
    /// the rules are not persisted).
    pub files: Vec<PathBuf>,
    /// systemd runs: it reads changed units again.
    systemd: bool,
    /// The unit is wanted and not active now: it is started after the run.
    start: bool,
    /// The unit existed as the module's and goes: it is stopped first.
    stop: bool,
    /// The follower of firewalld's reloads: how systemctl brings it to
    /// what this run wrote, if at all.
    follower: Option<FollowerAction>,
    /// The follower's name.
    follower_unit: String,
    /// Said in the result's warnings.
    pub warnings: Vec<String>,
}

impl Plan {
    /// Reads what is there and works out what `request` needs, `backend`
    /// being the backend option the run used (`nftables` or `iptables`).
    pub fn new(request: &Request, backend: &str, tools: &Tools) -> Result<Plan, PersistError> {
        let name = &request.name;
        let marker = Marker::new(name);
        let layout = Layout::of(name);
        let systemd = Path::new(SYSTEMD_RUNNING).is_dir();
        let asked = request.state == State::Present && request.persist;
        let wanted = asked && systemd;
        let mut plan = Plan {
            unit: unit::unit_name(name),
            changes: Vec::new(),
            files: Vec::new(),
            systemd,
            start: false,
            stop: false,
            follower: None,
            follower_unit: unit::follower_name(name),
            warnings: follow::unfollowed(request.state == State::Present && !wanted),
        };
        if asked && !systemd {
            // The files of an earlier run, if any, are left as they are.
            plan.warnings.push(format!(
                "persist: systemd does not run on this host ({SYSTEMD_RUNNING} is missing), so nothing puts these \
                 rules back after a reboot or after another tool flushes the firewall; run the module again then, \
                 or set persist: false to say that this is known"
            ));
            return Ok(plan);
        }
        let unit_target = layout.unit.as_os_str().as_bytes().to_vec();
        // Every file the module may have there, in the order it writes
        // them, with what it wants in each (`None`: nothing).
        let program = if wanted { Some(own_program()?) } else { None };
        let command = unit::Command {
            program: &layout.program,
            request: &layout.request,
            state_dir: &layout.dir,
            timeout_secs: request.lock_timeout.as_secs() + 6 * request.command_timeout.as_secs(),
        };
        let version = env!("CARGO_PKG_VERSION");
        let unit_text = wanted.then(|| unit::render(name, marker.text(), version, &command));
        let saved = wanted.then(|| saved::render(request, backend, marker.text()));
        let installed = unit::installed_services();
        let firewalld = wanted && installed.contains(&follow::FIREWALLD);
        let follower_text = firewalld.then(|| unit::render_follower(name, marker.text(), version, &command));
        let follower_path = unit::follower_path(name);
        plan.warnings.extend(follow::busctl_missing(firewalld, tools, name));
        let mut files: Vec<Wanted> = vec![
            (layout.program.clone(), Kind::Program, program),
            (layout.request.clone(), Kind::Text, saved.map(String::into_bytes)),
            (layout.unit.clone(), Kind::Text, unit_text.map(String::into_bytes)),
            (unit::link_path(name), Kind::Link, wanted.then(|| unit_target.clone())),
            (follower_path.clone(), Kind::Text, follower_text.map(String::into_bytes)),
        ];
        files.extend(dropins(name, &marker, wanted, &installed, tools)?);

        for (path, kind, after) in files {
            // Something other than a regular file where one is read (a link,
            // a FIFO, a directory): never followed, never read.
            let mut other = None;
            let before = match kind {
                Kind::Link => read_link(&path)?,
                Kind::Program | Kind::Text => {
                    let bound = if kind == Kind::Program { MAX_PROGRAM } else { saved::MAX_BYTES.max(MAX_UNIT) };
                    match read_regular(&path, bound) {
                        Err(FileError::NotRegular { what, .. }) => {
                            let shown = format!("({what})").into_bytes();
                            other = Some(what);
                            Some(shown)
                        }
                        read => read?,
                    }
                }
            };
            // The state directory is the module's own; in the unit directory,
            // which others write too, only what carries its marker is.
            let ours = path.starts_with(&layout.dir)
                || match (&before, kind) {
                    (None, _) => true,
                    (Some(target), Kind::Link) => *target == unit_target,
                    (Some(text), _) => other.is_none() && text.starts_with(format!("# {marker}\n").as_bytes()),
                };
            if !ours {
                let what = other.map(|w| format!(" ({w})")).unwrap_or_default();
                let object = format!("{} {}{what}", kind.noun(), path.display());
                if wanted {
                    return Err(
                        NotOurs { object, marker: marker.clone(), name: name.clone(), hint: String::new() }.into()
                    );
                }
                plan.warnings.push(format!("{object} carries no marker of this module and was left as it is"));
                continue;
            }
            if path == layout.unit {
                plan.stop = !wanted && systemd && before.is_some();
            }
            if path == follower_path && systemd {
                plan.follower =
                    follower_action(tools, &plan.follower_unit, before.is_some(), before != after, after.is_some())?;
            }
            if after.is_some() {
                plan.files.push(path.clone());
            }
            plan.push(path, kind, before, after);
        }
        plan.start = wanted && !active(tools, &plan.unit)?;
        Ok(plan)
    }

    fn push(&mut self, path: PathBuf, kind: Kind, before: Option<Vec<u8>>, after: Option<Vec<u8>>) {
        if before != after {
            self.changes.push(Change { path, kind, before, after });
        }
    }

    /// Whether the run changes anything about persistence (files, or the
    /// unit to be started).
    pub fn changes(&self) -> bool {
        !self.changes.is_empty() || self.start || self.follower.is_some()
    }

    /// One diff per changed file: text as text, the program by its size, a
    /// link by its target.
    pub fn diffs(&self) -> Vec<Diff> {
        let show = |kind: Kind, content: Option<&Vec<u8>>| match (kind, content) {
            (_, None) => String::new(),
            (Kind::Text, Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            (Kind::Program, Some(bytes)) => {
                format!("(a copy of open_ports, {} bytes, {:016x})\n", bytes.len(), fnv1a(bytes))
            }
            (Kind::Link, Some(target)) => format!("-> {}\n", String::from_utf8_lossy(target)),
        };
        self.changes
            .iter()
            .map(|c| {
                Diff::of(
                    format!("persist: {}", c.path.display()),
                    show(c.kind, c.before.as_ref()),
                    show(c.kind, c.after.as_ref()),
                )
            })
            .collect()
    }

    /// What this run did about persistence, for the message.
    pub fn summary(&self, check_mode: bool) -> Option<String> {
        if !self.changes() {
            return None;
        }
        if self.changes.is_empty() {
            let verb = if check_mode { "would be started" } else { "started" };
            return Some(format!("its boot restore {} {verb}", self.unit));
        }
        let verb = match (!self.files.is_empty(), check_mode) {
            (true, false) => "written",
            (true, true) => "would be written",
            (false, false) => "removed",
            (false, true) => "would be removed",
        };
        Some(format!("its boot restore {} {verb}", self.unit))
    }

    /// Writes (or removes) the files, in an order that never leaves a unit
    /// or a link pointing at something missing (program, request, unit,
    /// link, drop-ins; the other way round to remove), then has systemd read
    /// the units again.
    pub fn apply(&self, tools: &Tools) -> Result<(), PersistError> {
        if self.follower == Some(FollowerAction::Stop) {
            tools.run("systemctl", &["stop", &self.follower_unit], None)?;
        }
        if self.stop {
            tools.run("systemctl", &["stop", &self.unit], None)?;
        }
        let removing = self.files.is_empty();
        let mut changes: Vec<&Change> = self.changes.iter().collect();
        if removing {
            changes.reverse();
        }
        for change in &changes {
            write(change)?;
            if change.after.is_none()
                && let Some(dir) = change.path.parent().filter(|d| *d != Path::new(unit::UNIT_DIR))
            {
                // Only when empty: anything else in it is not the module's.
                let _ = std::fs::remove_dir(dir);
            }
        }
        if self.systemd && self.changes.iter().any(|c| c.path.starts_with(unit::UNIT_DIR)) {
            tools.run("systemctl", &["daemon-reload"], None)?;
        }
        Ok(())
    }

    /// Starts the unit when it is not active (after the lock is released:
    /// the restore it runs takes the same lock). Its start checks on this
    /// host, now, that the restore runs at all (a `noexec` /var would stop it).
    pub fn start(&self, tools: &Tools) -> Result<(), PersistError> {
        if self.start {
            tools.run("systemctl", &["start", &self.unit], None)?;
        }
        if let Some(action @ (FollowerAction::Start | FollowerAction::Restart)) = self.follower {
            tools.run("systemctl", &[action.verb(), &self.follower_unit], None)?;
        }
        Ok(())
    }
}

/// The drop-in path of every service the unit restores after, with its
/// text when `wanted` and that service is installed.
fn dropins(
    name: &str,
    marker: &Marker,
    wanted: bool,
    installed: &[&str],
    tools: &Tools,
) -> Result<Vec<Wanted>, PersistError> {
    let systemctl = if wanted { Some(tools.find("systemctl")?) } else { None };
    let mut files = Vec::new();
    for service in unit::RESTORE_AFTER {
        let dropin = match &systemctl {
            Some(systemctl) if installed.contains(service) => {
                let reloads =
                    *service != follow::FIREWALLD && unit::reloads(&tools.run("systemctl", &["cat", service], None)?);
                Some(unit::render_dropin(name, marker.text(), service, systemctl, reloads).into_bytes())
            }
            _ => None,
        };
        files.push((unit::dropin_path(name, service), Kind::Text, dropin));
    }
    Ok(files)
}

/// What systemctl does to the follower after (or, to stop it, before) the
/// files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowerAction {
    Start,
    Restart,
    Stop,
}

impl FollowerAction {
    /// The systemctl verb.
    fn verb(self) -> &'static str {
        match self {
            FollowerAction::Start => "start",
            FollowerAction::Restart => "restart",
            FollowerAction::Stop => "stop",
        }
    }
}

/// What the follower needs from systemctl: stopped before its file goes;
/// started (or restarted, when its file changed) while firewalld runs,
/// which otherwise starts it itself.
fn follower_action(
    tools: &Tools,
    follower: &str,
    existed: bool,
    changed: bool,
    wanted: bool,
) -> Result<Option<FollowerAction>, PersistError> {
    Ok(match (wanted, existed) {
        (false, true) => active(tools, follower)?.then_some(FollowerAction::Stop),
        (false, false) => None,
        (true, _) if !active(tools, follow::FIREWALLD)? => None,
        (true, _) if !active(tools, follower)? => Some(FollowerAction::Start),
        (true, _) => changed.then_some(FollowerAction::Restart),
    })
}

fn write(change: &Change) -> Result<(), PersistError> {
    let Some(after) = &change.after else {
        return match std::fs::remove_file(&change.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(PersistError::Remove { path: change.path.clone(), source: e })
            }
            _ => Ok(()),
        };
    };
    match change.kind {
        Kind::Program => atomic::write_atomically(&change.path, after, 0o755)?,
        Kind::Text => atomic::replace_if_unchanged(&change.path, change.before.as_deref(), after, 0o644)?,
        Kind::Link => atomic::symlink_atomically(&change.path, Path::new(std::ffi::OsStr::from_bytes(after)))?,
    }
    Ok(())
}

/// The target of the link at `path` (`None`: nothing there). Something
/// other than a link there reads as a target no unit has.
fn read_link(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    match std::fs::read_link(path) {
        Ok(target) => Ok(Some(target.into_os_string().into_vec())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // EINVAL: readlink(2) of something that is not a link.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(Some(b"(not a link)".to_vec())),
        Err(e) => Err(FileError::Io { path: path.to_path_buf(), source: e }.into()),
    }
}

/// The running program's bytes.
fn own_program() -> Result<Vec<u8>, PersistError> {
    let mut bytes = Vec::new();
    std::fs::File::open(SELF_EXE)
        .and_then(|f| f.take(MAX_PROGRAM as u64).read_to_end(&mut bytes))
        .map_err(PersistError::SelfExe)?;
    Ok(bytes)
}

/// Whether systemd says the unit is active (`systemctl show` exits 0 for a
/// unit it does not know, and says `inactive`).
fn active(tools: &Tools, unit: &str) -> Result<bool, PersistError> {
    let state = tools.run("systemctl", &["show", "--property=ActiveState", "--value", unit], None)?;
    // activating: a restart queued by a firewall service or the follower
    // runs now; starting it again would only run the restore twice.
    Ok(matches!(state.trim(), "active" | "activating" | "reloading"))
}

/// A short fingerprint of the program for the diff (FNV-1a, 64 bits): two
/// different copies show different numbers; not a security measure.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
