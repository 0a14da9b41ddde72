//! Replacing a file so that a reader (or a crash) sees the old content or the
//! new, never a mix: temp file in the same directory, fsync, rename, fsync
//! of the directory. The path itself is replaced: a symlink there would be
//! replaced too, never followed (callers refuse symlinks before planning).
//!
//! [`replace_if_unchanged`] also checks, right before the rename, that the
//! file is still what the caller read, so that another program's edit made
//! in the meantime is not overwritten; only the moment between that check
//! and the rename remains.
//!
//! The temp file is `.NAME.portmatrix-PID.tmp`: hidden, so systemd-sysctl
//! (which skips hidden names) never reads a half-written one, and carrying
//! the writer's pid, so that a later run can tell a dead run's leftover from
//! a live run's work in progress.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::file::{FileError, read_regular};

/// Why the file could not be written (or a leftover not removed).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The file's directory is missing and cannot be made.
    #[error("cannot create the directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The temp file, its sync or the rename failed; the file is as it was.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is no longer what the caller read (another program wrote
    /// it meanwhile): it was not replaced, and the temp file is gone.
    #[error("{path} changed while it was being written ({how})")]
    Changed {
        /// The file.
        path: PathBuf,
        /// How it changed, in words ("its content changed").
        how: &'static str,
    },
    /// A dead run's temp file is there and cannot be removed.
    #[error("cannot remove {path}, left by an interrupted run")]
    RemoveLeftover {
        /// The leftover temp file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

const TEMP_PREFIX: &str = ".portmatrix-";
const TEMP_SUFFIX: &str = ".tmp";

/// The temp file that process `pid` uses while replacing `name`.
fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}{TEMP_PREFIX}{pid}{TEMP_SUFFIX}")
}

/// The pid in a temp file name made by [`temp_name`] for `name`, if it is one.
fn temp_owner(entry: &str, name: &str) -> Option<u32> {
    let pid = entry.strip_prefix('.')?.strip_prefix(name)?.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn parent_and_name(path: &Path) -> (&Path, String) {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

/// Atomically replaces (or creates) `path` with `content`, creating missing
/// directories. An existing file's mode and owner are kept; a new one gets
/// `new_mode` (0o644 for a text file, 0o755 for a program).
pub fn write_atomically(path: &Path, content: &[u8], new_mode: u32) -> Result<(), WriteError> {
    write_checked(path, content, new_mode, Expect::Anything)
}

/// As [`write_atomically`], but only while `path` still holds `read`, what
/// the caller read before it planned `content` (`None`: nothing was there),
/// with the mode and owner the new file copies: checked right before the
/// rename. Otherwise the file is left as it is and [`WriteError::Changed`]
/// says how it changed. Between that check and the rename, a change by
/// another program is still lost: that window is a few system calls wide.
pub fn replace_if_unchanged(path: &Path, read: Option<&[u8]>, content: &[u8], new_mode: u32) -> Result<(), WriteError> {
    write_checked(path, content, new_mode, Expect::AsRead(read))
}

/// What the file must be right before it is replaced.
#[derive(Clone, Copy)]
enum Expect<'a> {
    Anything,
    /// What the caller read (`None`: nothing was there).
    AsRead(Option<&'a [u8]>),
}

/// How `path` differs from `read` (its content before) and `meta` (its
/// metadata when the temp file copied mode and owner), if it does.
fn changed_since(path: &Path, read: Option<&[u8]>, meta: Option<&fs::Metadata>) -> Option<&'static str> {
    // One byte more than was read: a file that grew reads as changed, and
    // memory stays bounded by what the caller read.
    let bound = read.map_or(0, <[u8]>::len) + 1;
    let now = match read_regular(path, bound) {
        Ok(now) => now,
        Err(FileError::TooLarge { .. }) => {
            return Some(if read.is_none() { "it was created" } else { "its content changed" });
        }
        Err(_) => return Some("it is no longer a regular file"),
    };
    match (read, now) {
        (None, None) => None,
        (None, Some(_)) => Some("it was created"),
        (Some(_), None) => Some("it was removed"),
        (Some(read), Some(now)) if read != now.as_slice() => Some("its content changed"),
        (Some(_), Some(_)) => {
            let now = fs::symlink_metadata(path).ok();
            let owner = |m: &fs::Metadata| (m.mode() & 0o7777, m.uid(), m.gid());
            (now.as_ref().map(owner) != meta.map(owner)).then_some("its mode or owner changed")
        }
    }
}

fn write_checked(path: &Path, content: &[u8], new_mode: u32, expected: Expect) -> Result<(), WriteError> {
    let (dir, name) = parent_and_name(path);
    fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir { path: dir.to_path_buf(), source })?;

    let write_error = |source| WriteError::Write { path: path.to_path_buf(), source };
    let existing = fs::symlink_metadata(path).ok().filter(fs::Metadata::is_file);
    let temp = dir.join(temp_name(&name, std::process::id()));

    let result = (|| {
        // create_new (O_EXCL) also refuses a symlink planted under the name.
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(new_mode).open(&temp).map_err(write_error)?;
        (|| {
            file.write_all(content)?;
            // The mode is set, not left to the umask: a new file gets exactly
            // `new_mode`, a replaced one keeps its own.
            let mode = existing.as_ref().map_or(new_mode, |meta| meta.mode() & 0o7777);
            file.set_permissions(Permissions::from_mode(mode))?;
            if let Some(meta) = &existing {
                let ours = file.metadata()?;
                if (meta.uid(), meta.gid()) != (ours.uid(), ours.gid()) {
                    std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
                }
            }
            file.sync_all()
        })()
        .map_err(write_error)?;
        // The last look before the rename: still what the caller read?
        if let Expect::AsRead(read) = expected
            && let Some(how) = changed_since(path, read, existing.as_ref())
        {
            return Err(WriteError::Changed { path: path.to_path_buf(), how });
        }
        fs::rename(&temp, path).map_err(write_error)?;
        // The rename is durable only once the directory entry is.
        File::open(dir).and_then(|d| d.sync_all()).map_err(write_error)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Atomically makes `path` a symbolic link to `target`, or puts one in place
/// of what is there: a temp link beside it (named as [`write_atomically`]
/// names its temp files, so [`remove_leftovers`] knows it), then one rename.
pub fn symlink_atomically(path: &Path, target: &Path) -> Result<(), WriteError> {
    let (dir, name) = parent_and_name(path);
    fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir { path: dir.to_path_buf(), source })?;
    let write_error = |source| WriteError::Write { path: path.to_path_buf(), source };
    let temp = dir.join(temp_name(&name, std::process::id()));
    let _ = fs::remove_file(&temp);
    let result = std::os::unix::fs::symlink(target, &temp)
        .and_then(|()| fs::rename(&temp, path))
        .and_then(|()| File::open(dir).and_then(|d| d.sync_all()))
        .map_err(write_error);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Removes the temp files that runs killed while replacing `path` left next
/// to it: those whose pid is no longer alive (or is this process's own, which
/// has not made one yet). A live run's temp file is never touched. Returns
/// what was removed.
pub fn remove_leftovers(path: &Path) -> Result<Vec<PathBuf>, WriteError> {
    let (dir, name) = parent_and_name(path);
    let Ok(entries) = fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let entry_name: OsString = entry.file_name();
        let Some(pid) = entry_name.to_str().and_then(|e| temp_owner(e, &name)) else { continue };
        if pid != std::process::id() && Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        // Only regular files are ours; anything else of that name is left alone.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let leftover = entry.path();
        match fs::remove_file(&leftover) {
            Ok(()) => removed.push(leftover),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(WriteError::RemoveLeftover { path: leftover, source }),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_directories_and_file_with_default_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/90-x.conf");
        write_atomically(&path, b"x = 1\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "x = 1\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn keeps_mode_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        fs::write(&path, "old\n").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        write_atomically(&path, b"new\n", 0o644).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (65534, 65534, 0o600));
    }

    #[test]
    fn a_symlink_at_the_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("passwd");
        fs::write(&other, "root:x:0:0\n").unwrap();
        let link = dir.path().join("90-x.conf");
        std::os::unix::fs::symlink("passwd", &link).unwrap();
        write_atomically(&link, b"new\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&other).unwrap(), "root:x:0:0\n");
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        let unchanged = |read: Option<&str>| replace_if_unchanged(&path, read.map(str::as_bytes), b"new\n", 0o644);
        // Each case: what the caller read, and what another program left.
        fs::write(&path, "read\nedit\n").unwrap();
        let err = unchanged(Some("read\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} changed while it was being written (its content changed)", path.display())
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "read\nedit\n");
        let err = unchanged(None).unwrap_err();
        assert!(matches!(err, WriteError::Changed { how: "it was created", .. }), "{err}");
        fs::remove_file(&path).unwrap();
        let err = unchanged(Some("read\n")).unwrap_err();
        assert!(matches!(err, WriteError::Changed { how: "it was removed", .. }), "{err}");
        assert!(!path.exists());
        std::os::unix::fs::symlink("elsewhere", &path).unwrap();
        let err = unchanged(Some("read\n")).unwrap_err();
        assert!(matches!(err, WriteError::Changed { how: "it is no longer a regular file", .. }));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left: {:?}", fs::read_dir(dir.path()));
        // Unchanged: replaced as by write_atomically.
        fs::remove_file(&path).unwrap();
        unchanged(None).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");
        replace_if_unchanged(&path, Some(b"new\n"), b"newer\n", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "newer\n");
    }

    #[test]
    fn a_link_is_made_or_replaces_what_is_there_in_one_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/x.service");
        symlink_atomically(&path, Path::new("/etc/one")).unwrap();
        assert_eq!(fs::read_link(&path).unwrap(), Path::new("/etc/one"));
        symlink_atomically(&path, Path::new("/etc/two")).unwrap();
        assert_eq!(fs::read_link(&path).unwrap(), Path::new("/etc/two"));
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temp link left");
    }

    #[test]
    fn temp_names_are_hidden_and_carry_the_pid() {
        assert_eq!(temp_name("90-x.conf", 42), ".90-x.conf.portmatrix-42.tmp");
        assert_eq!(temp_owner(".90-x.conf.portmatrix-42.tmp", "90-x.conf"), Some(42));
        for other in
            [".90-y.conf.portmatrix-42.tmp", ".90-x.conf.portmatrix-.tmp", ".90-x.conf.portmatrix-4a.tmp", "90-x.conf"]
        {
            assert_eq!(temp_owner(other, "90-x.conf"), None, "{other}");
        }
    }

    #[test]
    fn leftovers_of_dead_runs_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("90-x.conf");
        // No process ever has a pid this large (pid_max is at most 2^22).
        let dead = dir.path().join(temp_name("90-x.conf", 999_999_999));
        let mine = dir.path().join(temp_name("90-x.conf", std::process::id()));
        let live = dir.path().join(temp_name("90-x.conf", 1));
        let other_file = dir.path().join(temp_name("90-y.conf", 999_999_999));
        for file in [&dead, &mine, &live, &other_file] {
            fs::write(file, "partial").unwrap();
        }
        let mut removed = remove_leftovers(&path).unwrap();
        removed.sort();
        let mut expected = vec![dead.clone(), mine.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(live.exists() && other_file.exists());
    }
}
