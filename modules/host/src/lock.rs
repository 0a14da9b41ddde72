//! One run at a time per object: two runs of a module on the same object (two
//! playbooks, or a playbook and a person) must leave one of the two requested
//! states, never a mixture, and never lose an update. Each module takes an
//! exclusive `flock(2)` on a lock file named after the object for its whole
//! read-plan-apply, and waits for another holder at most a given time.
//!
//! Why flock on a file in `/run/portmatrix`: the kernel drops the lock when
//! its holder dies (even from `kill -9`), so there is no stale lock to clean
//! up; `/run` is a tmpfs only root can write to, so no other user can hold or
//! redirect a lock; and the lock is per mount namespace, like the files the
//! modules write. The lock file keeps the holder's pid, so a run that gives up
//! can say who held it, and a note of what the holder is doing: a note left
//! by a holder that died ("applying") tells the next holder that an apply
//! was cut short.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where lock files live by default.
pub const LOCK_DIR: &str = "/run/portmatrix/lock";

/// How long a module waits for another run by default, in seconds: the
/// `lock_timeout` option's default, as `ansible.builtin.apt` has it.
pub const DEFAULT_WAIT_SECS: i64 = 60;

/// The longest `lock_timeout` a module takes, in seconds: a run never waits
/// without end for another.
pub const MAX_WAIT_SECS: i64 = 3600;

/// A `lock_timeout` value as a wait, or `None` when it is not 0 to
/// [`MAX_WAIT_SECS`] seconds.
pub fn wait_from_seconds(seconds: i64) -> Option<Duration> {
    (0..=MAX_WAIT_SECS).contains(&seconds).then(|| Duration::from_secs(seconds.unsigned_abs()))
}

/// How often a waiting run tries the lock again.
const RETRY: Duration = Duration::from_millis(20);

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock directory could not be created (not root, read-only /run).
    #[error("cannot create the lock directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot open or lock {path}")]
    File {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Another run held the lock for longer than the wait allowed.
    #[error(
        "another run on this host holds {path} ({holder}) and did not finish within {} s; \
         nothing was changed: try again when it is done, or raise lock_timeout",
        waited.as_secs_f64()
    )]
    Timeout {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as it wrote itself into the file (`pid 1234 open_ports`).
        holder: String,
        /// How long this run waited.
        waited: Duration,
    },
}

impl LockError {
    /// Whether the failure is only a lack of privilege (a check-mode run by an
    /// ordinary user may then go on without the lock: it changes nothing).
    pub fn is_permission(&self) -> bool {
        match self {
            LockError::Dir { source, .. } | LockError::File { source, .. } => {
                matches!(source.kind(), io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem)
            }
            LockError::Timeout { .. } => false,
        }
    }
}

/// A held lock; released when dropped (or when the process ends, however).
#[derive(Debug)]
pub struct ObjectLock {
    file: File,
    path: PathBuf,
    module: String,
    previous: String,
}

impl ObjectLock {
    /// Takes the lock on `object` of `module` in the current network namespace,
    /// waiting at most `wait` for another holder (`Duration::ZERO`: one try).
    ///
    /// The lock file is `DIR/MODULE.netns-INODE.OBJECT.lock`: objects of the
    /// same name in different network namespaces (containers, test sandboxes)
    /// are different objects. `object` characters outside `[A-Za-z0-9_.-]`
    /// become `_`.
    pub fn acquire(dir: &Path, module: &str, object: &str, wait: Duration) -> Result<ObjectLock, LockError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| LockError::Dir { path: dir.to_path_buf(), source })?;
        let path = dir.join(format!("{}.netns-{}.{}.lock", safe(module), network_namespace(), safe(object)));
        let file_error = |source| LockError::File { path: path.clone(), source };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            // A lock file is never a symlink: one planted there is refused.
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(file_error)?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(source)) => return Err(file_error(source)),
            }
            let waited = start.elapsed();
            if waited >= wait {
                return Err(LockError::Timeout { holder: holder(&mut file), path, waited });
            }
            std::thread::sleep(RETRY.min(wait.saturating_sub(waited)));
        }
        let mut previous = String::new();
        let _ = file.rewind().and_then(|()| (&file).take(4096).read_to_string(&mut previous));
        let lock = ObjectLock { file, path, module: module.to_string(), previous: previous.trim().to_string() };
        // Who holds it, for a run that has to give up waiting.
        lock.note("started");
        Ok(lock)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the previous holder last noted (`pid 1234 open_ports: applying`),
    /// or "" for a new lock file.
    pub fn previous(&self) -> &str {
        &self.previous
    }

    /// Records what this holder is doing, after its pid and module. Best
    /// effort: the note is advice for the next holder, never a reason to fail.
    pub fn note(&self, what: &str) {
        let text = format!("pid {} {}: {what}\n", std::process::id(), self.module);
        let mut file = &self.file;
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(text.as_bytes()));
    }
}

fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.take(200).read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() { "holder unknown".to_string() } else { format!("held by {text}") }
}

fn safe(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || "_.-".contains(c) { c } else { '_' }).collect()
}

/// The inode number of this process's network namespace (`net:[4026531840]`).
pub fn network_namespace() -> String {
    std::fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|link| {
            let text = link.to_string_lossy().into_owned();
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_gives_up_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = ObjectLock::acquire(dir.path(), "open_ports", "web", Duration::ZERO).unwrap();
        assert!(first.path().file_name().unwrap().to_string_lossy().starts_with("open_ports.netns-"));
        let start = Instant::now();
        let err = ObjectLock::acquire(dir.path(), "open_ports", "web", Duration::from_millis(200)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(200));
        let text = err.to_string();
        assert!(text.contains(&format!("held by pid {} open_ports: started", std::process::id())), "{text}");
        assert!(text.contains("did not finish within 0.2"), "{text}");
        // Another object is another lock.
        ObjectLock::acquire(dir.path(), "open_ports", "other", Duration::ZERO).unwrap();
        first.note("applying");
        drop(first);
        let second = ObjectLock::acquire(dir.path(), "open_ports", "web", Duration::ZERO).unwrap();
        assert_eq!(second.previous(), format!("pid {} open_ports: applying", std::process::id()));
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let name = format!("m.netns-{}.x.lock", network_namespace());
        std::os::unix::fs::symlink(&target, dir.path().join(name)).unwrap();
        let err = ObjectLock::acquire(dir.path(), "m", "x", Duration::ZERO).unwrap_err();
        assert!(matches!(err, LockError::File { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(target).unwrap(), "keep");
    }

    #[test]
    fn object_names_cannot_leave_the_directory() {
        assert_eq!(safe("../etc/passwd"), ".._etc_passwd");
    }
}
