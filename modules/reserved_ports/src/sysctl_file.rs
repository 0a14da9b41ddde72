//! `sysctl_file`, the file the module owns: it is a regular file or does not
//! exist yet. Anything else at the path is refused before any change, so
//! that the module never rewrites what a symlink points to, never replaces a
//! device, a FIFO or a directory with a file, and never blocks or reads
//! without end.

use std::path::{Path, PathBuf};

use portmatrix_host::file::{FileError, read_regular};

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
