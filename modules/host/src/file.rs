//! Reading a file the way a module on a production host must: only when it is
//! a regular file (never through a symlink, never a FIFO that blocks, a device
//! that has side effects on open, or an endless device), and only up to a
//! size bound, so that memory stays bounded whatever is at the path.
//!
//! A "regular" file of /proc or /sys is not one either: its reads are the
//! kernel's code, and some have side effects (`/proc/kmsg` consumes the
//! kernel log, debugfs and tracefs files change tracing state). Files on
//! those pseudo filesystems are refused unread, as [`FileError::NotRegular`]
//! naming them "a file of /proc or /sys".

use std::ffi::CString;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Something other than a regular file is at the path.
    #[error("{path} is {what}, not a regular file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What is there, in words ("a FIFO", "a symbolic link to passwd").
        what: String,
    },
    /// The file is larger than the bound.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The bound, in bytes.
        limit: usize,
    },
    /// The system refused (permissions, I/O).
    #[error("cannot read {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// What is at a path, in words for messages: "a regular file", "a directory",
/// "a symbolic link to TARGET", "a FIFO", "a character device", "a block
/// device", "a socket", "a file of /proc or /sys (procfs)"; `None` when
/// nothing is there.
pub fn what_is_at(path: &Path) -> io::Result<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(describe(path, &meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn describe(path: &Path, meta: &Metadata) -> String {
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path).map_or_else(|_| "?".into(), |t| t.display().to_string());
        format!("a symbolic link to {target}")
    } else if kind.is_file() {
        // statfs(2) looks at the file system without opening the file.
        match statfs_type(path).ok().and_then(pseudo_filesystem) {
            Some(name) => pseudo_file(name),
            None => REGULAR.into(),
        }
    } else if kind.is_dir() {
        "a directory".into()
    } else if kind.is_fifo() {
        "a FIFO".into()
    } else if kind.is_char_device() {
        "a character device".into()
    } else if kind.is_block_device() {
        "a block device".into()
    } else if kind.is_socket() {
        "a socket".into()
    } else {
        "an unknown kind of file".into()
    }
}

const REGULAR: &str = "a regular file";

/// Pseudo file systems whose files look regular but are the kernel's code:
/// reading one can have side effects, or never end. Their `f_type` magic
/// numbers (linux/magic.h) and names.
const PSEUDO_FILESYSTEMS: &[(u64, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6265_6570, "configfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2fs"),
];

fn pseudo_filesystem(f_type: u64) -> Option<&'static str> {
    PSEUDO_FILESYSTEMS.iter().find(|(magic, _)| *magic == f_type).map(|(_, name)| *name)
}

fn pseudo_file(filesystem: &str) -> String {
    format!("a file of /proc or /sys ({filesystem})")
}

/// `f_type` of the file system `path` is on (statfs(2): nothing is opened).
fn statfs_type(path: &Path) -> io::Result<u64> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    let mut stat = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: a NUL-terminated path and a buffer of the size statfs(2) fills.
    if unsafe { libc::statfs(path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs(2) returned 0, so it filled the buffer.
    Ok(f_type(&unsafe { stat.assume_init() }))
}

/// `f_type` of the file system an open file is on.
fn fstatfs_type(file: &File) -> io::Result<u64> {
    let mut stat = MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: an open descriptor and a buffer of the size fstatfs(2) fills.
    if unsafe { libc::fstatfs(file.as_raw_fd(), stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs(2) returned 0, so it filled the buffer.
    Ok(f_type(&unsafe { stat.assume_init() }))
}

/// `f_type` is a signed long in glibc and an unsigned one in musl; the magic
/// numbers are below 2^31 either way, so the bits are what count.
#[allow(clippy::cast_sign_loss, clippy::unnecessary_cast, reason = "c_long in glibc, c_ulong in musl")]
fn f_type(stat: &libc::statfs) -> u64 {
    stat.f_type as u64
}

/// The content of `path` when it is a regular file of at most `limit` bytes;
/// `Ok(None)` when nothing is there. A final symlink is not followed (it is
/// refused as [`FileError::NotRegular`]); anything but a regular file is
/// refused without being opened, and so is a file of /proc, /sys or another
/// pseudo file system of the kernel's (its reads can have side effects).
pub fn read_regular(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, FileError> {
    let io_error = |source| FileError::Io { path: path.to_path_buf(), source };
    let Some(what) = what_is_at(path).map_err(io_error)? else { return Ok(None) };
    if what != REGULAR {
        return Err(FileError::NotRegular { path: path.to_path_buf(), what });
    }
    let file = OpenOptions::new()
        .read(true)
        // Replaced between the look and the open? Then it is refused, not read.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let what = what_is_at(path).ok().flatten().unwrap_or_else(|| "a symbolic link".into());
            return Err(FileError::NotRegular { path: path.to_path_buf(), what });
        }
        Err(e) => return Err(io_error(e)),
    };
    let meta = file.metadata().map_err(io_error)?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular { path: path.to_path_buf(), what: describe(path, &meta) });
    }
    // The same question of what was opened, in case the path changed since.
    if let Some(name) = pseudo_filesystem(fstatfs_type(&file).map_err(io_error)?) {
        return Err(FileError::NotRegular { path: path.to_path_buf(), what: pseudo_file(name) });
    }
    read_bounded(file, limit)
        .map_err(io_error)?
        .map(Some)
        .ok_or_else(|| FileError::TooLarge { path: path.to_path_buf(), limit })
}

/// Everything `reader` gives, or `Ok(None)` once it gives more than `limit`
/// bytes (it is not read further). For pipes and stdin, where the size is not
/// known in advance.
pub fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= limit).then_some(bytes))
}

/// Opens `path` for reading whatever it is, with the same bound as
/// [`read_bounded`] (an args file may be a pipe, `<(...)` in a shell).
pub fn read_any_bounded(path: &Path, limit: usize) -> io::Result<Option<Vec<u8>>> {
    read_bounded(File::open(path)?, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_missing_ones_are_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        assert!(read_regular(&path, 10).unwrap().is_none());
        std::fs::write(&path, "x = 1\n").unwrap();
        assert_eq!(read_regular(&path, 10).unwrap().unwrap(), b"x = 1\n");
        let err = read_regular(&path, 3).unwrap_err();
        assert!(matches!(err, FileError::TooLarge { limit: 3, .. }), "{err}");
    }

    #[test]
    fn everything_but_a_regular_file_is_refused_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink("passwd", &link).unwrap();
        let fifo = dir.path().join("fifo.conf");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let cases = [
            (link.as_path(), "a symbolic link to passwd"),
            (dir.path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/null"), "a character device"),
            (Path::new("/dev/urandom"), "a character device"),
        ];
        for (path, what) in cases {
            let err = read_regular(path, 1 << 20).unwrap_err();
            assert_eq!(err.to_string(), format!("{} is {what}, not a regular file", path.display()));
        }
    }

    /// Files of /proc and /sys are `S_IFREG` but refused unread. Only harmless
    /// ones are used here, and none is opened (statfs first).
    #[test]
    fn files_of_proc_and_sys_are_refused_unread() {
        for path in ["/proc/version", "/proc/self/status", "/proc/sys/kernel/ostype"] {
            let path = Path::new(path);
            assert!(std::fs::symlink_metadata(path).unwrap().is_file(), "{} is S_IFREG", path.display());
            let err = read_regular(path, 1 << 20).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{} is a file of /proc or /sys (procfs), not a regular file", path.display())
            );
            assert_eq!(what_is_at(path).unwrap().unwrap(), "a file of /proc or /sys (procfs)");
        }
        let sys = ["/sys/kernel/uevent_seqnum", "/sys/kernel/profiling", "/sys/power/state"]
            .into_iter()
            .map(Path::new)
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
            .expect("a regular file of /sys");
        let err = read_regular(sys, 1 << 20).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is a file of /proc or /sys (sysfs), not a regular file", sys.display())
        );
        // A file of an ordinary file system is none of those.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        assert_eq!(what_is_at(&dir.path().join("a")).unwrap().unwrap(), "a regular file");
        assert_eq!(pseudo_filesystem(0xEF53), None, "ext4");
    }

    #[test]
    fn an_endless_reader_stops_at_the_bound() {
        let endless = std::io::repeat(b'x');
        assert_eq!(read_bounded(endless, 1000).unwrap(), None);
        assert_eq!(read_bounded(&b"12345"[..], 5).unwrap().unwrap(), b"12345");
    }
}
