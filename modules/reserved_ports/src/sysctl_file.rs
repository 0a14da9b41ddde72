//! `sysctl_file`, the file the module owns: it is a regular file or does not
//! exist yet. Anything else at the path is refused before any change, so
//! that the module never rewrites what a symlink points to, never replaces a
//! device, a FIFO or a directory with a file, and never blocks or reads
//! without end.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use portmatrix_host::file::{FileError, read_regular, what_is_at};

/// The largest `sysctl_file` (and other sysctl.d file) the module reads:
/// a reservation of every other port is under 200 KiB.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Why `sysctl_file` cannot be the module's file.
#[derive(Debug, thiserror::Error)]
pub enum SysctlFileError {
    /// A symlink, directory, FIFO, device or socket is at the path.
    #[error("sysctl_file {path} is {what}, not a regular file: {advice}")]
    NotRegular { path: PathBuf, what: String, advice: &'static str },
    /// Larger than [`MAX_FILE_BYTES`].
    #[error(
        "sysctl_file {path} is larger than {limit} bytes, more than a sysctl configuration file holds: \
         it is neither read nor rewritten"
    )]
    TooLarge { path: PathBuf, limit: usize },
    /// Not text: rewriting its other lines could corrupt them.
    #[error("sysctl_file {path} is not UTF-8 text: it is not rewritten")]
    NotText { path: PathBuf },
    /// The system refused (permissions, I/O).
    #[error("cannot read sysctl_file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file could not be created there: its directory is not one, and
    /// cannot be made one.
    #[error("sysctl_file {path} cannot be written: {problem}")]
    NoDirectory { path: PathBuf, problem: String },
}

/// Why `path` cannot name a file at all, from its text alone (a path that
/// names a directory, or that no system call takes); `None` when it can.
pub fn not_a_file_path(path: &Path) -> Option<&'static str> {
    let bytes = path.as_os_str().as_bytes();
    let last = bytes.rsplit(|b| *b == b'/').next().unwrap_or_default();
    if bytes.contains(&0) {
        Some("it contains a NUL byte")
    } else if bytes.ends_with(b"/") {
        Some("it ends in \"/\", so it names a directory, not a file")
    } else if last == b"." || last == b".." {
        Some("its last part is \".\" or \"..\", so it names a directory, not a file")
    } else {
        None
    }
}

/// Checks that `path`'s directory is one, or can be made one (the file is
/// created with its missing directories): the nearest ancestor that exists
/// is a directory, reached without dangling or looping symlinks. Looks only
/// (`stat`, `lstat`); nothing is created.
pub fn check_directory(path: &Path) -> Result<(), SysctlFileError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    directory_problem(dir)
        .map_or(Ok(()), |problem| Err(SysctlFileError::NoDirectory { path: path.to_path_buf(), problem }))
}

/// What keeps `dir` from being (or becoming) a directory, mirroring what
/// `create_dir_all` does with it.
fn directory_problem(dir: &Path) -> Option<String> {
    let error = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return None,
        Ok(_) => {
            let what = what_is_at(dir).ok().flatten().unwrap_or_else(|| "something else".into());
            return Some(format!("{} is {what}, not a directory", dir.display()));
        }
        Err(error) => error,
    };
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    match error.kind() {
        io::ErrorKind::NotFound => {
            // Nothing there: it is made, if its own directory is one. A
            // symlink there that points nowhere is not replaced, though.
            if let Ok(Some(what)) = what_is_at(dir) {
                return Some(format!("{} is {what}, which points nowhere", dir.display()));
            }
            parent.and_then(directory_problem)
        }
        // Some ancestor is not a directory: name it.
        io::ErrorKind::NotADirectory => {
            parent.and_then(directory_problem).or_else(|| Some(format!("{} cannot be reached: {error}", dir.display())))
        }
        _ => Some(format!("cannot look at its directory {}: {error}", dir.display())),
    }
}

/// The content of `path`, or `None` when nothing is there yet.
pub fn read(path: &Path) -> Result<Option<String>, SysctlFileError> {
    match read_regular(path, MAX_FILE_BYTES) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => {
            String::from_utf8(bytes).map(Some).map_err(|_| SysctlFileError::NotText { path: path.to_path_buf() })
        }
        Err(FileError::NotRegular { path, what }) => {
            let advice = if what.starts_with("a symbolic link") {
                "name the file itself (or remove the link)"
            } else {
                "name a regular file, or a path where nothing is yet (or remove what is there)"
            };
            Err(SysctlFileError::NotRegular { path, what, advice })
        }
        Err(FileError::TooLarge { path, limit }) => Err(SysctlFileError::TooLarge { path, limit }),
        Err(FileError::Io { path, source }) => Err(SysctlFileError::Read { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_or_nothing_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("90-x.conf");
        assert_eq!(read(&path).unwrap(), None);
        std::fs::write(&path, "a = 1\n").unwrap();
        assert_eq!(read(&path).unwrap().as_deref(), Some("a = 1\n"));
    }

    #[test]
    fn anything_else_is_refused_naming_path_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("90-rp.conf");
        std::os::unix::fs::symlink("passwd", &link).unwrap();
        let err = read(&link).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "sysctl_file {} is a symbolic link to passwd, not a regular file: name the file itself (or remove the link)",
                link.display()
            )
        );
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory, not a regular file: name a regular file"), "{err}");
        let err = read(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(err.starts_with("sysctl_file /dev/null is a character device"), "{err}");
        // The kernel's own setting is no sysctl configuration file: not read.
        let proc = "/proc/sys/net/ipv4/ip_local_reserved_ports";
        let err = read(Path::new(proc)).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "sysctl_file {proc} is a file of /proc or /sys (procfs), not a regular file: name a regular file"
            )),
            "{err}"
        );
    }

    #[test]
    fn paths_that_name_no_file_are_told_apart() {
        for bad in ["/etc/sysctl.d/90-rp.conf/", "/", "/etc/sysctl.d/.", "/etc/sysctl.d/..", "/etc/x.conf/.", "/a\0b"] {
            assert!(not_a_file_path(Path::new(bad)).is_some(), "{bad:?}");
        }
        for good in ["/etc/sysctl.d/90-rp.conf", "/etc/sysctl.d/../sysctl.conf", "/etc/./x.conf", "/etc/.x.conf"] {
            assert_eq!(not_a_file_path(Path::new(good)), None, "{good:?}");
        }
    }

    #[test]
    fn a_directory_that_is_not_one_or_cannot_be_made_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("file"), "x").unwrap();
        std::os::unix::fs::symlink("nowhere", root.join("dangling")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        std::os::unix::fs::symlink("file", root.join("to-file")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("real", root.join("to-real")).unwrap();
        let problem = |rel: &str| match check_directory(&root.join(rel)) {
            Ok(()) => None,
            Err(SysctlFileError::NoDirectory { problem, .. }) => {
                Some(problem.replace(&root.display().to_string(), "R"))
            }
            Err(other) => panic!("{other}"),
        };
        assert_eq!(problem("file/x.conf").as_deref(), Some("R/file is a regular file, not a directory"));
        assert_eq!(problem("file/sub/x.conf").as_deref(), Some("R/file is a regular file, not a directory"));
        assert_eq!(problem("to-file/x.conf").as_deref(), Some("R/to-file is a symbolic link to file, not a directory"));
        assert_eq!(
            problem("dangling/x.conf").as_deref(),
            Some("R/dangling is a symbolic link to nowhere, which points nowhere")
        );
        assert_eq!(problem("dangling/sub/x.conf").as_deref(), problem("dangling/x.conf").as_deref());
        assert_eq!(
            problem("loop/x.conf").as_deref(),
            Some("cannot look at its directory R/loop: Too many levels of symbolic links (os error 40)")
        );
        for fine in ["x.conf", "real/x.conf", "to-real/x.conf", "new/deeper/x.conf", "new/../x.conf"] {
            assert_eq!(problem(fine), None, "{fine}");
        }
        let err = check_directory(Path::new("/dev/null/x.conf")).unwrap_err().to_string();
        assert_eq!(
            err,
            "sysctl_file /dev/null/x.conf cannot be written: /dev/null is a character device, not a directory"
        );
    }

    #[test]
    fn oversized_and_binary_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.conf");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES + 1]).unwrap();
        assert!(matches!(read(&big), Err(SysctlFileError::TooLarge { .. })));
        let binary = dir.path().join("bin.conf");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert!(matches!(read(&binary), Err(SysctlFileError::NotText { .. })));
    }
}
