//! Which responder runs: a state file per responder name and network
//! namespace under `/run/portmatrix/port_responder` (root's tmpfs, gone at
//! reboot, as the responder is), written by the responder once it holds its
//! ports and removed when it ends. A process is the responder only while its
//! pid *and* its start time match the file, so a reused pid is never
//! signalled.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::options::Endpoint;

/// Where state files live.
pub const STATE_DIR: &str = "/run/portmatrix/port_responder";

/// A state file is far smaller (it lists at most 16,384 endpoints).
const MAX_STATE: usize = 2 << 20;

/// A responder, as its state file describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub pid: u32,
    /// Clock ticks after boot (`/proc/PID/stat` field 22).
    pub start_time: u64,
    pub node: String,
    pub endpoints: Vec<Endpoint>,
    pub address: Option<IpAddr>,
    /// Seconds since the epoch at which it ends by itself.
    pub until: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the responder's state file {path}")]
    Read { path: PathBuf, source: portmatrix_host::file::FileError },
    #[error("cannot remove the responder's state file {path}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("the responder (pid {pid}) did not end after SIGTERM and SIGKILL")]
    Unkillable { pid: u32 },
    #[error("cannot signal the responder (pid {pid})")]
    Signal { pid: u32, source: io::Error },
}

/// Seconds since the epoch, as [`Running::until`] counts them.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The state file of responder `name` in this network namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(STATE_DIR).join(format!("netns-{}.{name}.json", portmatrix_host::lock::network_namespace()))
}

/// The responder the file names, if there is a readable file (one that
/// does not parse is stale: it is replaced).
pub fn read(path: &Path) -> Result<Option<Running>, StateError> {
    let bytes = portmatrix_host::file::read_regular(path, MAX_STATE)
        .map_err(|source| StateError::Read { path: path.to_path_buf(), source })?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// A process's start time, from `/proc/PID/stat` (after the command name,
/// which may hold spaces and parentheses).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is rest's first word; field 22 its 20th.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    // A zombie has ended; its pid merely waits to be reaped.
    if state == "Z" || state == "X" {
        return None;
    }
    fields.get(19)?.parse().ok()
}

impl Running {
    /// Whether that very process still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }

    /// Ends it: SIGTERM, then SIGKILL; returns once it is gone.
    pub fn stop(&self) -> Result<(), StateError> {
        for signal in [Signal::TERM, Signal::KILL] {
            if !self.alive() {
                return Ok(());
            }
            let pid = i32::try_from(self.pid).ok().and_then(Pid::from_raw);
            let Some(pid) = pid else { return Ok(()) };
            match rustix::process::kill_process(pid, signal) {
                Ok(()) => {}
                Err(rustix::io::Errno::SRCH) => return Ok(()),
                Err(e) => return Err(StateError::Signal { pid: self.pid, source: e.into() }),
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.alive() { Err(StateError::Unkillable { pid: self.pid }) } else { Ok(()) }
    }
}

/// Removes the state file; one that is already gone is fine.
pub fn remove(path: &Path) -> Result<(), StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::Remove { path: path.to_path_buf(), source }),
    }
}
