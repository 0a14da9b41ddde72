//! Reading a file the way a module on a production host must: only when it is
//! a regular file (never through a symlink, never a FIFO that blocks, a device
//! that has side effects on open, or an endless device), and only up to a
//! size bound, so that memory stays bounded whatever is at the path.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
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
/// device", "a socket"; `None` when nothing is there.
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
        "a regular file".into()
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

/// The content of `path` when it is a regular file of at most `limit` bytes;
/// `Ok(None)` when nothing is there. A final symlink is not followed (it is
/// refused as [`FileError::NotRegular`]); anything but a regular file is
/// refused without being opened.
pub fn read_regular(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, FileError> {
    let io_error = |source| FileError::Io { path: path.to_path_buf(), source };
    let Some(what) = what_is_at(path).map_err(io_error)? else { return Ok(None) };
    if what != "a regular file" {
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

    #[test]
    fn an_endless_reader_stops_at_the_bound() {
        let endless = std::io::repeat(b'x');
        assert_eq!(read_bounded(endless, 1000).unwrap(), None);
        assert_eq!(read_bounded(&b"12345"[..], 5).unwrap().unwrap(), b"12345");
    }
}
