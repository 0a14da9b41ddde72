//! The cgroup a socket was made in, from the cgroup id the kernel gives with
//! it (`INET_DIAG_CGROUP_ID`, see [`crate::sockets`]). On cgroup v2 a
//! cgroup's id is the inode number of its directory (kernfs), so the ids of
//! the sockets in question are found by walking the cgroup2 mount once,
//! stopping as soon as all are found. That gives the unit of a socket
//! without reading any process's open files: the expensive part of finding
//! owners (one readlink per open file of every process, as `ss -p` does).
//!
//! The id is of the cgroup the creating process was in when it made the
//! socket. A process cannot make a socket in a cgroup it is not in, and an
//! unprivileged one cannot enter a system unit's cgroup, so the id names a
//! unit as surely as the holder's `/proc/PID/cgroup` does.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Cgroup ids and their paths, as `/proc/PID/cgroup` writes them (from the
/// root of the module's cgroup namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupIndex {
    paths: HashMap<u64, String>,
    /// Where the cgroup2 hierarchy is mounted.
    mount: PathBuf,
}

/// The most cgroup directories one walk visits (a host has hundreds; a
/// bound, so that a pathological tree cannot stall the module).
const MAX_CGROUPS: usize = 100_000;

impl CgroupIndex {
    /// The paths of `ids`, from the cgroup2 mount of the module's mount
    /// namespace (none without one: a cgroup v1 host).
    pub fn build(ids: &HashSet<u64>) -> CgroupIndex {
        let mut index = CgroupIndex::default();
        if ids.is_empty() {
            return index;
        }
        let Some((mount, root)) = cgroup2_mount() else { return index };
        index.mount.clone_from(&mount);
        let mut stack = vec![(mount, root)];
        let mut visited = 0;
        while let Some((dir, path)) = stack.pop() {
            visited += 1;
            if visited > MAX_CGROUPS || index.paths.len() == ids.len() {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            if ids.contains(&meta.ino()) {
                index.paths.insert(meta.ino(), path.clone());
            }
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if path == "/" { format!("/{name}") } else { format!("{path}/{name}") };
                    stack.push((entry.path(), child));
                }
            }
        }
        index
    }

    /// The path of a cgroup id, if it was among those asked for and found.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.paths.get(&id).map(String::as_str)
    }

    /// The processes in the cgroup of `id` now (its `cgroup.procs`): where
    /// the holder of a socket made there is most likely to be.
    pub fn procs(&self, id: u64) -> Vec<u32> {
        let Some(path) = self.path(id) else { return Vec::new() };
        let file = self.mount.join(path.trim_start_matches('/')).join("cgroup.procs");
        std::fs::read_to_string(file)
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// The cgroup2 mount point and the cgroup path its root stands for, from
/// `/proc/self/mountinfo` (proc(5): `ID PARENT MAJ:MIN ROOT MOUNTPOINT ... -
/// FSTYPE ...`).
fn cgroup2_mount() -> Option<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        if rest.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = fields.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        // Only a mount of the namespace's root gives paths as /proc/PID/cgroup has them.
        (root == "/").then(|| (Path::new(&unescape(mount_point)).to_path_buf(), "/".to_string()))
    })
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4).and_then(|o| u8::from_str_radix(o, 8).ok());
        if let Some(byte) = code {
            out.push(char::from(byte));
            rest = &rest[at + 4..];
        } else {
            out.push('\\');
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(unescape(r"/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }

    #[test]
    fn the_ids_of_this_hosts_cgroups_are_found_by_walking_its_mount() {
        let (mount, _) = cgroup2_mount().expect("a cgroup2 mount (the test machines have one)");
        let root = std::fs::metadata(&mount).unwrap().ino();
        let index = CgroupIndex::build(&HashSet::from([root, u64::MAX]));
        assert_eq!(index.path(root), Some("/"));
        assert_eq!(index.path(u64::MAX), None);
        assert!(CgroupIndex::build(&HashSet::new()).path(root).is_none());
    }
}
