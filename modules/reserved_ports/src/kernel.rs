//! The runtime side: `net.ipv4.ip_local_reserved_ports` and
//! `net.ipv4.ip_local_port_range` under /proc/sys, for the network namespace
//! the module runs in.

use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use portmatrix_portset::{PortError, PortRange, PortSet};

/// The setting, as people write it.
pub const RESERVED_KEY: &str = "net.ipv4.ip_local_reserved_ports";
/// The setting under /proc/sys; also systemd-sysctl's normal form of the key.
pub const RESERVED_PATH: &str = "net/ipv4/ip_local_reserved_ports";
const RANGE_PATH: &str = "net/ipv4/ip_local_port_range";

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the kernel's {path} holds {text:?}, which is not a port list")]
    Unparseable { path: PathBuf, text: String, source: PortError },
    #[error(
        "{path} is read-only here, so the reservation cannot be changed: /proc/sys is mounted \
         read-only (as in an unprivileged container). Run the module on the host itself, or give \
         the container a writable /proc/sys (podman: --security-opt unmask=/proc/sys; docker: --privileged)"
    )]
    ReadOnly { path: PathBuf },
    #[error("permission denied writing {path}: changing kernel settings needs root (become: true)")]
    PermissionDenied { path: PathBuf },
    #[error("cannot write {value:?} to {path}")]
    Write { path: PathBuf, value: String, source: std::io::Error },
    /// The value read back differs: something else wrote it at the same
    /// moment (a kernel that rejects a value says so with EINVAL instead).
    #[error(
        "the reservation changed under this run: it wrote {wanted:?} to {path} and read back {got:?}, so another \
         program (not a portmatrix run: those wait for each other) changed it at the same moment; run again"
    )]
    ChangedMeanwhile { path: PathBuf, wanted: String, got: String },
}

/// The kernel's view, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelState {
    pub reserved: PortSet,
    pub ephemeral: PortRange,
}

/// Access to one /proc/sys tree (the real one, or a copy in unit tests).
#[derive(Debug, Clone)]
pub struct ProcSys {
    root: PathBuf,
}

impl Default for ProcSys {
    fn default() -> Self {
        ProcSys { root: PathBuf::from("/proc/sys") }
    }
}

impl ProcSys {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        ProcSys { root: root.into() }
    }

    pub fn reserved_path(&self) -> PathBuf {
        self.root.join(RESERVED_PATH)
    }

    pub fn read(&self) -> Result<KernelState, KernelError> {
        Ok(KernelState { reserved: self.read_reserved()?, ephemeral: self.read_ephemeral_range()? })
    }

    pub fn read_reserved(&self) -> Result<PortSet, KernelError> {
        let path = self.reserved_path();
        let text = read_text(&path)?;
        PortSet::parse_list(&text).map_err(|source| KernelError::Unparseable { path, text, source })
    }

    /// `ip_local_port_range` reads as two numbers separated by a tab.
    fn read_ephemeral_range(&self) -> Result<PortRange, KernelError> {
        let path = self.root.join(RANGE_PATH);
        let text = read_text(&path)?;
        let numbers: Vec<&str> = text.split_whitespace().collect();
        let as_range = match numbers.as_slice() {
            [low, high] => format!("{low}-{high}"),
            _ => text.trim().to_string(),
        };
        as_range.parse().map_err(|source| KernelError::Unparseable { path, text, source })
    }

    /// Changes the reservation from `from` (what was read) to `to`, then
    /// reads it back: the kernel may reject a value (EINVAL), or someone may
    /// have written it at the same moment.
    ///
    /// The kernel takes at most one page of text per write call: a write at
    /// offset 0 replaces the reservation with what that call holds, a write
    /// at any other offset adds to it. So a value that fits in one call is
    /// replaced at once; a longer one that only adds ports is added piece by
    /// piece, every moment in between holding `from` and part of the rest;
    /// only a longer one that also takes ports out passes through states
    /// that hold part of `to` alone (a process killed then leaves such a
    /// state, which the next run completes).
    pub fn write_reserved(&self, from: &PortSet, to: &PortSet) -> Result<(), KernelError> {
        let path = self.reserved_path();
        let whole = format!("{to}\n");
        let (pieces, offset) = if whole.len() <= MAX_WRITE {
            (vec![whole], 0)
        } else if from.is_subset(to) {
            (pieces(&to.difference(from)), 1)
        } else {
            (pieces(to), 0)
        };
        write_pieces(&path, &pieces, offset, &to.to_string())?;
        let got = self.read_reserved()?;
        if &got != to {
            return Err(KernelError::ChangedMeanwhile { path, wanted: to.to_string(), got: got.to_string() });
        }
        Ok(())
    }
}

/// What the kernel parses of one write call: a page (4 KiB, the smallest
/// Linux uses) less one byte.
const MAX_WRITE: usize = 4095;

/// Whether writing `set` takes more than one write call (see
/// [`ProcSys::write_reserved`]).
pub fn takes_pieces(set: &PortSet) -> bool {
    set.to_string().len() + 1 > MAX_WRITE
}

/// `set` in the kernel's form, cut at commas into pieces of at most
/// [`MAX_WRITE`] bytes, each ending in a newline. The canonical form has no
/// leading zeros (the kernel would read them as octal) and no spaces
/// (rejected); an empty set is a lone newline, which clears the list, where
/// an empty write would change nothing.
fn pieces(set: &PortSet) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut piece = String::new();
    for range in set.ranges() {
        let entry = range.to_string();
        if !piece.is_empty() && piece.len() + 1 + entry.len() + 1 > MAX_WRITE {
            piece.push('\n');
            pieces.push(std::mem::take(&mut piece));
        }
        if !piece.is_empty() {
            piece.push(',');
        }
        piece.push_str(&entry);
    }
    piece.push('\n');
    pieces.push(piece);
    pieces
}

/// The longest list the kernel can print: every other port reserved is
/// 32768 entries of up to six characters.
const MAX_SYSCTL_TEXT: usize = 256 * 1024;

/// Reads a sysctl in ONE read call. The kernel renders the whole value per
/// read and ignores the file offset for port bitmaps, so a reader that reads
/// in pieces (std's `read_to_string` starts with a 32-byte probe) gets a
/// garbled value for any list longer than its first piece.
fn read_text(path: &Path) -> Result<String, KernelError> {
    let error = |source| KernelError::Read { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(error)?;
    let mut buffer = vec![0u8; MAX_SYSCTL_TEXT];
    let length = file.read(&mut buffer).map_err(error)?;
    if length == buffer.len() {
        return Err(error(std::io::Error::other("the value is longer than any port list can be")));
    }
    buffer.truncate(length);
    String::from_utf8(buffer).map_err(|e| error(std::io::Error::new(ErrorKind::InvalidData, e)))
}

/// Writes `pieces` one write call each, the first at `offset` (0: replace;
/// any other: add) and the rest after it (add).
fn write_pieces(path: &Path, pieces: &[String], mut offset: u64, value: &str) -> Result<(), KernelError> {
    let classify = |source: std::io::Error| match source.kind() {
        ErrorKind::ReadOnlyFilesystem => KernelError::ReadOnly { path: path.to_path_buf() },
        ErrorKind::PermissionDenied => KernelError::PermissionDenied { path: path.to_path_buf() },
        _ => KernelError::Write { path: path.to_path_buf(), value: value.to_string(), source },
    };
    let file = std::fs::OpenOptions::new().write(true).open(path).map_err(classify)?;
    for piece in pieces {
        let mut rest = piece.as_bytes();
        while !rest.is_empty() {
            let written = file.write_at(rest, offset).map_err(classify)?;
            if written == 0 {
                return Err(classify(std::io::Error::from(ErrorKind::WriteZero)));
            }
            rest = &rest[written..];
            offset += written as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(reserved: &str, range: &str) -> (tempfile::TempDir, ProcSys) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("net/ipv4")).unwrap();
        std::fs::write(dir.path().join(RESERVED_PATH), reserved).unwrap();
        std::fs::write(dir.path().join(RANGE_PATH), range).unwrap();
        let proc = ProcSys::at(dir.path());
        (dir, proc)
    }

    #[test]
    fn reads_the_kernel_formats_in_a_file_stand_in() {
        let (_dir, proc) = fake_proc("8080-8082,9000\n", "32768\t60999\n");
        let state = proc.read().unwrap();
        assert_eq!(state.reserved.to_string(), "8080-8082,9000");
        assert_eq!(state.ephemeral, PortRange::new(32768, 60999).unwrap());
    }

    #[test]
    fn long_values_are_cut_into_pieces_at_commas() {
        let set: PortSet = (1025..32768).step_by(2).map(|p| PortRange::single(p).unwrap()).collect();
        let cut = pieces(&set);
        assert!(cut.len() > 20);
        assert!(cut.iter().all(|p| p.len() <= MAX_WRITE && p.ends_with('\n') && !p.starts_with(',')));
        let joined: Vec<&str> = cut.iter().map(|p| p.trim_end()).collect();
        assert_eq!(joined.join(","), set.to_string());
        assert_eq!(pieces(&PortSet::new()), vec!["\n".to_string()]);
    }

    #[test]
    fn garbage_in_the_kernel_file_is_reported_not_trusted() {
        let (_dir, proc) = fake_proc("what\n", "32768\t60999\n");
        let err = proc.read().unwrap_err();
        assert!(err.to_string().contains("holds \"what\\n\", which is not a port list"), "{err}");
    }
}
