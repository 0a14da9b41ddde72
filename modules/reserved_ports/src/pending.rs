//! A kernel write in pieces, recorded while it happens. The kernel takes a
//! page of text per write call, so a run killed between the calls of a long
//! value leaves part of it in the kernel, where the next run would take it
//! for the reservation. So a run that writes in pieces first records what it
//! is writing (from what, to what) in a file under `/run/portmatrix` (gone at
//! reboot, as the kernel value is), and removes it once the value reads back
//! whole; the next run (under the lock) that finds the record and the kernel
//! part way between completes that write before making its own change.

use std::path::{Path, PathBuf};

use portmatrix_host::file::{FileError, read_regular};
use portmatrix_host::lock::network_namespace;
use portmatrix_portset::PortSet;

use crate::sysctl_file::MAX_FILE_BYTES;
use crate::{LOCK_MODULE, LOCK_OBJECT};
use portmatrix_host::atomic::{self, WriteError};

/// What a run was writing to the kernel when it recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The writer.
    pub pid: u32,
    /// The reservation before its write.
    pub from: PortSet,
    /// The reservation it was writing.
    pub to: PortSet,
}

/// Why the record could not be read, written or removed.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("cannot read the record of an interrupted kernel write")]
    Read(#[source] FileError),
    #[error("cannot record the kernel write about to start")]
    Write(#[source] WriteError),
    #[error("cannot remove the record of a finished kernel write {path}")]
    Remove { path: PathBuf, source: std::io::Error },
}

/// The record's file for this network namespace's reservation, in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(format!("{LOCK_MODULE}.netns-{}.{LOCK_OBJECT}.pending", network_namespace()))
}

impl Record {
    /// What the reservation should be taken to be, given the kernel's value
    /// `now`: `to` when `now` is one of the states the write passes through
    /// on its way (from `from` when it only adds ports: anything between; when
    /// it replaces: part of `to`), `None` when the write did not start or
    /// finished.
    pub fn resume(&self, now: &PortSet) -> Option<&PortSet> {
        if now == &self.from || now == &self.to {
            return None;
        }
        let on_the_way = if self.from.is_subset(&self.to) {
            self.from.is_subset(now) && now.is_subset(&self.to)
        } else {
            now.is_subset(&self.to)
        };
        on_the_way.then_some(&self.to)
    }

    /// The record's text, as it is kept in its file.
    pub fn render(&self) -> String {
        format!("pid {}\nfrom {}\nto {}\n", self.pid, self.from, self.to)
    }

    fn parse(text: &str) -> Option<Record> {
        let mut lines = text.lines();
        let mut field = |name: &str| lines.next()?.strip_prefix(name)?.strip_prefix(' ').map(str::to_string);
        let pid = field("pid")?.parse().ok()?;
        let from = PortSet::parse_list(&field("from")?).ok()?;
        let to = PortSet::parse_list(&field("to")?).ok()?;
        Some(Record { pid, from, to })
    }
}

/// The record at `path`, if a run left one. One that does not parse (only
/// root can write there, and it is replaced whole by rename) is taken as none.
pub fn read(path: &Path) -> Result<Option<Record>, PendingError> {
    let bytes = read_regular(path, MAX_FILE_BYTES).map_err(PendingError::Read)?;
    Ok(bytes.and_then(|b| Record::parse(&String::from_utf8_lossy(&b))))
}

/// Records `record` at `path` (replacing any record there).
pub fn write(path: &Path, record: &Record) -> Result<(), PendingError> {
    atomic::remove_leftovers(path).map_err(PendingError::Write)?;
    atomic::write_atomically(path, record.render().as_bytes(), 0o644).map_err(PendingError::Write)
}

/// Removes the record at `path`, if there is one.
pub fn clear(path: &Path) -> Result<(), PendingError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(PendingError::Remove { path: path.to_path_buf(), source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(from: &str, to: &str) -> Record {
        Record { pid: 7, from: from.parse().unwrap(), to: to.parse().unwrap() }
    }

    fn set(text: &str) -> PortSet {
        text.parse().unwrap()
    }

    #[test]
    fn an_adding_write_is_resumed_from_anywhere_between() {
        let adding = record("100", "100,200-300");
        assert_eq!(adding.resume(&set("100,200-250")), Some(&set("100,200-300")));
        assert_eq!(adding.resume(&set("100")), None, "not started");
        assert_eq!(adding.resume(&set("100,200-300")), None, "finished");
        assert_eq!(adding.resume(&set("200-250")), None, "100 gone: someone else wrote it");
        assert_eq!(adding.resume(&set("100,200,400")), None, "400: someone else wrote it");
    }

    #[test]
    fn a_replacing_write_is_resumed_from_part_of_its_value() {
        let replacing = record("100,500", "200-300");
        assert_eq!(replacing.resume(&set("200-220")), Some(&set("200-300")));
        assert_eq!(replacing.resume(&set("100,500")), None);
        assert_eq!(replacing.resume(&set("100,200")), None);
    }

    #[test]
    fn records_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = path(dir.path());
        assert!(path.file_name().unwrap().to_string_lossy().ends_with(".ip_local_reserved_ports.pending"));
        assert_eq!(read(&path).unwrap(), None);
        let written = record("", "1025-2180,8080");
        write(&path, &written).unwrap();
        assert_eq!(read(&path).unwrap(), Some(written));
        clear(&path).unwrap();
        clear(&path).unwrap();
        assert_eq!(read(&path).unwrap(), None);
        std::fs::write(&path, "what\n").unwrap();
        assert_eq!(read(&path).unwrap(), None, "a record that does not parse is none");
    }
}
