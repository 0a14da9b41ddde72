//! Replacing a file so that a reader (or a crash) sees the old content or the
//! new, never a mix: temp file in the same directory, fsync, rename, fsync
//! of the directory.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create the directory {path}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The file's content, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, FileError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Read { path: path.to_path_buf(), source }),
    }
}

/// Where writing `path` really lands: a symlink (Debian's 99-sysctl.conf ->
/// ../sysctl.conf) is followed, so the link itself survives.
pub fn write_target(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Atomically replaces (or creates) `path` with `content`, creating missing
/// directories. An existing file's mode and owner are kept; a new one is 0644.
pub fn write_atomically(path: &Path, content: &str) -> Result<(), FileError> {
    let target = write_target(path);
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| FileError::CreateDir { path: dir.to_path_buf(), source })?;

    let write_error = |source| FileError::Write { path: target.clone(), source };
    let existing = fs::metadata(&target).ok();
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.portmatrix-{}.tmp", std::process::id()));

    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o644).open(&temp)?;
        file.write_all(content.as_bytes())?;
        if let Some(meta) = &existing {
            file.set_permissions(Permissions::from_mode(meta.mode() & 0o7777))?;
            let ours = file.metadata()?;
            if (meta.uid(), meta.gid()) != (ours.uid(), ours.gid()) {
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            }
        }
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        // The rename is durable only once the directory entry is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(write_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_directories_and_file_with_default_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/90-x.conf");
        write_atomically(&path, "x = 1\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "x = 1\n");
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temp file left");
    }

    #[test]
    fn keeps_mode_and_follows_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("sysctl.conf");
        fs::write(&real, "old\n").unwrap();
        fs::set_permissions(&real, Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("99-sysctl.conf");
        std::os::unix::fs::symlink("sysctl.conf", &link).unwrap();
        write_atomically(&link, "new\n").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link survives");
        assert_eq!(fs::read_to_string(&real).unwrap(), "new\n");
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn keeps_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        fs::write(&path, "old\n").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        write_atomically(&path, "new\n").unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    }

    #[test]
    fn missing_file_reads_as_none() {
        assert_eq!(read_optional(Path::new("/nonexistent/x.conf")).unwrap(), None);
    }
}
