//! Which process holds a socket: the kernel does not say (`sock_diag` gives
//! the inode and the creator's uid only), so, like `ss -p` and `lsof`, the
//! module looks for `socket:[INODE]` among the open files in
//! `/proc/PID/fd`. That is the expensive part (one readlink per open file
//! of every process), so it is done only for the inodes some expectation
//! needs, and stops as soon as all of them are found.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::forwarders::{self, Forwarder};
use crate::units::{Roots, Units, manager_root, text_of_bytes, units_from_cgroup};

/// The process that holds a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// `/proc/PID/comm` (bytes that are not UTF-8 as `\xNN`); None if the
    /// process ended meanwhile.
    pub process: Option<String>,
    /// The system manager's unit, from `/proc/PID/cgroup`; None for a
    /// process in no unit.
    pub unit: Option<String>,
    /// The innermost unit inside `unit`'s delegated subtree (a user unit, a
    /// container's own unit); never the unit that holds the port.
    pub delegated_unit: Option<String>,
    /// A container runtime's port forwarder (docker-proxy, conmon, ...).
    pub forwarder: Option<Forwarder>,
}

/// What a scan found, and how much it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub owners: HashMap<u64, Owner>,
    /// Processes whose fd directory was read.
    pub processes_read: usize,
    /// Processes whose fd directory could not be read (other users' without
    /// root).
    pub unreadable: usize,
}

/// A process tree to look in: the real `/proc`, or a stand-in in tests.
#[derive(Debug, Clone)]
pub struct Procfs {
    root: PathBuf,
}

impl Default for Procfs {
    fn default() -> Self {
        Procfs { root: PathBuf::from("/proc") }
    }
}

impl Procfs {
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Procfs { root: root.into() }
    }

    /// Finds the owner of each inode in `wanted`. Reads nothing when
    /// `wanted` is empty.
    ///
    /// PID 1 is read last: under socket activation systemd holds the
    /// listening socket too, and the service's own process is the answer.
    /// A socket that only PID 1 holds (not yet activated) is systemd's.
    pub fn find_owners(&self, wanted: &HashSet<u64>) -> Scan {
        self.find_owners_preferring(wanted, &HashSet::new())
    }

    /// The same, reading the processes in `first` before the others (the
    /// processes of the cgroups the sockets were made in).
    pub fn find_owners_preferring(&self, wanted: &HashSet<u64>, first: &HashSet<u32>) -> Scan {
        let mut scan = Scan::default();
        if wanted.is_empty() {
            return scan;
        }
        let mut pids = self.pids();
        pids.sort_unstable_by_key(|&pid| (!first.contains(&pid), pid == 1, pid));
        let mut holders: HashMap<u64, u32> = HashMap::new();
        for pid in pids {
            if holders.len() == wanted.len() {
                break;
            }
            match std::fs::read_dir(self.root.join(pid.to_string()).join("fd")) {
                Ok(entries) => {
                    scan.processes_read += 1;
                    for entry in entries.flatten() {
                        let Some(inode) = socket_inode(&entry.path()) else { continue };
                        if wanted.contains(&inode) {
                            holders.entry(inode).or_insert(pid);
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::PermissionDenied => scan.unreadable += 1,
                // The process ended between the listing and now.
                Err(_) => {}
            }
        }
        let roots = self.manager_roots();
        let mut described: HashMap<u32, Owner> = HashMap::new();
        for (inode, pid) in holders {
            let owner = described.entry(pid).or_insert_with(|| self.describe(pid, &roots)).clone();
            scan.owners.insert(inode, owner);
        }
        scan
    }

    fn pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return Vec::new() };
        entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|name| name.parse().ok())).collect()
    }

    /// The system manager's cgroup root, from PID 1's cgroup (see
    /// [`manager_root`]): the module reads units as the manager of its own
    /// PID namespace sees them.
    pub fn manager_roots(&self) -> Roots {
        std::fs::read_to_string(self.root.join("1").join("cgroup")).map(|text| manager_root(&text)).unwrap_or_default()
    }

    fn describe(&self, pid: u32, roots: &Roots) -> Owner {
        let dir = self.root.join(pid.to_string());
        // comm ends in a newline the kernel adds; the name is 15 bytes of anything.
        let process =
            std::fs::read(dir.join("comm")).ok().map(|comm| text_of_bytes(comm.strip_suffix(b"\n").unwrap_or(&comm)));
        let Units { unit, delegated } =
            std::fs::read_to_string(dir.join("cgroup")).map(|text| units_from_cgroup(&text, roots)).unwrap_or_default();
        // The command line of a forwarder only: it names the container.
        let forwarder = process.as_deref().filter(|comm| forwarders::is_forwarder(comm)).and_then(|comm| {
            let argv = std::fs::read(dir.join("cmdline")).map(|c| forwarders::argv(&c)).unwrap_or_default();
            forwarders::identify(comm, &argv)
        });
        Owner { pid, process, unit, delegated_unit: delegated, forwarder }
    }
}

/// `socket:[12345]` -> 12345.
fn socket_inode(fd: &Path) -> Option<u64> {
    let target = std::fs::read_link(fd).ok()?;
    target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A stand-in /proc: each process with its fds (as symlink targets),
    /// comm and cgroup file.
    fn fake_proc(processes: &[(u32, &str, &str, &[&str])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, comm, cgroup, fds) in processes {
            let base = dir.path().join(pid.to_string());
            std::fs::create_dir_all(base.join("fd")).unwrap();
            std::fs::write(base.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(base.join("cgroup"), cgroup).unwrap();
            for (n, target) in fds.iter().enumerate() {
                symlink(target, base.join("fd").join(n.to_string())).unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("net")).unwrap();
        dir
    }

    fn wanted(inodes: &[u64]) -> HashSet<u64> {
        inodes.iter().copied().collect()
    }

    #[test]
    fn finds_owners_with_process_and_unit() {
        let dir = fake_proc(&[
            (10, "python3", "0::/system.slice/rogue.service\n", &["/dev/null", "socket:[500]"]),
            (20, "marathon", "0::/system.slice/dcos-marathon.service\n", &["pipe:[9]", "socket:[600]"]),
        ]);
        let scan = Procfs::at(dir.path()).find_owners(&wanted(&[500, 600]));
        assert_eq!(
            scan.owners[&500],
            Owner {
                pid: 10,
                process: Some("python3".into()),
                unit: Some("rogue.service".into()),
                delegated_unit: None,
                forwarder: None,
            }
        );
        assert_eq!(scan.owners[&600].unit.as_deref(), Some("dcos-marathon.service"));
    }

    #[test]
    fn reads_nothing_when_nothing_is_wanted_and_stops_once_all_are_found() {
        let processes: Vec<(u32, &str, &str, &[&str])> =
            (100..150).map(|pid| (pid, "p", "0::/\n", &["socket:[7]"][..])).collect();
        let dir = fake_proc(&processes);
        let procfs = Procfs::at(dir.path());
        assert_eq!(procfs.find_owners(&HashSet::new()).processes_read, 0);
        let scan = procfs.find_owners(&wanted(&[7]));
        assert_eq!(scan.processes_read, 1, "the first holder is enough");
        assert_eq!(scan.owners[&7].pid, 100);
        let missing = procfs.find_owners(&wanted(&[7, 8]));
        assert_eq!(missing.processes_read, 50, "an inode nobody holds means reading every process");
        assert!(!missing.owners.contains_key(&8));
    }

    #[test]
    fn pid_1_is_the_owner_only_when_no_service_holds_the_socket() {
        let dir = fake_proc(&[
            (1, "systemd", "0::/init.scope\n", &["socket:[70]", "socket:[71]"]),
            (300, "dcos-diag", "0::/system.slice/dcos-diagnostics.service\n", &["socket:[70]"]),
        ]);
        let scan = Procfs::at(dir.path()).find_owners(&wanted(&[70, 71]));
        assert_eq!(scan.owners[&70].unit.as_deref(), Some("dcos-diagnostics.service"));
        assert_eq!(scan.owners[&71].unit.as_deref(), Some("init.scope"));
    }
}
