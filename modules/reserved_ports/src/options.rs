//! The module's options: declared once (validation, --help and the
//! documentation test read this) and deserialised into a typed struct.

use std::path::PathBuf;
use std::time::Duration;

use portmatrix_ansible::{DefaultValue, Kind, ModuleSpec, OptionSpec};
use portmatrix_portset::{PortRange, PortSet};
use serde::Deserialize;

pub const DEFAULT_SYSCTL_FILE: &str = "/etc/sysctl.d/90-reserved-ports.conf";

/// The largest `min_free_ephemeral` that means anything: the ephemeral range
/// can hold at most every port, 65535 of them.
pub const MAX_MIN_FREE: u32 = 65535;

pub static SPEC: ModuleSpec = ModuleSpec {
    name: "reserved_ports",
    short_description: "Reserve ports in the kernel's ip_local_reserved_ports, merged and persisted",
    version: env!("CARGO_PKG_VERSION"),
    options: &[
        OptionSpec::new(
            "ports",
            Kind::List(&Kind::Raw),
            "Ports (1-65535) and ranges (\"1025-2180\") to act on. A comma-separated string is split.",
        )
        .required(),
        OptionSpec::new(
            "state",
            Kind::Str,
            "present adds the ports to the reservation; absent takes them out, splitting ranges.",
        )
        .default(DefaultValue::Str("present"))
        .choices(&["present", "absent"]),
        OptionSpec::new(
            "exclusive",
            Kind::Bool,
            "With state=present, the reservation becomes exactly ports; reservations made by others are dropped.",
        )
        .default(DefaultValue::Bool(false)),
        OptionSpec::new("persist", Kind::Bool, "Also write sysctl_file, so that the reservation survives a reboot.")
            .default(DefaultValue::Bool(true)),
        OptionSpec::new(
            "sysctl_file",
            Kind::Path,
            "The sysctl configuration file that holds the persistent value; its other lines are kept.",
        )
        .default(DefaultValue::Str(DEFAULT_SYSCTL_FILE)),
        OptionSpec::new(
            "min_free_ephemeral",
            Kind::Int,
            "Refuse a change that takes ports from net.ipv4.ip_local_port_range and leaves fewer than this many of them unreserved (0-65535; 0 disables the check).",
        )
        .default(DefaultValue::Int(1024)),
        OptionSpec::new(
            "lock_timeout",
            Kind::Int,
            "Seconds to wait for another run on this host to finish with the reservation before failing (0-3600; 0: try once).",
        )
        .default(DefaultValue::Int(portmatrix_host::lock::DEFAULT_WAIT_SECS)),
    ],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

/// The options as the spec delivers them (ports still a list of ranges).
#[derive(Debug, Deserialize)]
struct RawOptions {
    ports: Vec<PortRange>,
    state: State,
    exclusive: bool,
    persist: bool,
    sysctl_file: PathBuf,
    min_free_ephemeral: i64,
    lock_timeout: i64,
}

/// What the user asked for, checked for sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub ports: PortSet,
    pub state: State,
    pub exclusive: bool,
    pub persist: bool,
    pub sysctl_file: PathBuf,
    pub min_free_ephemeral: u32,
    pub lock_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Option(#[from] portmatrix_ansible::OptionError),
    #[error(
        "ports is empty: name at least one port or range (to clear the whole reservation use state=present, exclusive=true, ports=[])"
    )]
    NoPorts,
    #[error("exclusive=true only makes sense with state=present")]
    ExclusiveWithAbsent,
    #[error("min_free_ephemeral must be between 0 and {MAX_MIN_FREE}, got {0}")]
    MinimumOutOfRange(i64),
    #[error("lock_timeout must be between 0 and {max} seconds, got {0}", max = portmatrix_host::lock::MAX_WAIT_SECS)]
    LockTimeoutOutOfRange(i64),
    #[error("sysctl_file must be an absolute path, got {0:?}")]
    RelativeFile(PathBuf),
    /// A path that cannot name a file ([`crate::sysctl_file::not_a_file_path`]).
    #[error("sysctl_file {path:?} is not a path to a file: {problem}")]
    NotAFilePath { path: PathBuf, problem: &'static str },
}

impl Request {
    pub fn from_invocation(invocation: &portmatrix_ansible::Invocation) -> Result<Self, RequestError> {
        let raw: RawOptions = invocation.options()?;
        if raw.ports.is_empty() && !(raw.exclusive && raw.state == State::Present) {
            return Err(RequestError::NoPorts);
        }
        if raw.exclusive && raw.state == State::Absent {
            return Err(RequestError::ExclusiveWithAbsent);
        }
        if !raw.sysctl_file.is_absolute() {
            return Err(RequestError::RelativeFile(raw.sysctl_file));
        }
        if let Some(problem) = crate::sysctl_file::not_a_file_path(&raw.sysctl_file) {
            return Err(RequestError::NotAFilePath { path: raw.sysctl_file, problem });
        }
        let min_free_ephemeral = u32::try_from(raw.min_free_ephemeral)
            .ok()
            .filter(|m| *m <= MAX_MIN_FREE)
            .ok_or(RequestError::MinimumOutOfRange(raw.min_free_ephemeral))?;
        let lock_timeout = portmatrix_host::lock::wait_from_seconds(raw.lock_timeout)
            .ok_or(RequestError::LockTimeoutOutOfRange(raw.lock_timeout))?;
        Ok(Request {
            ports: raw.ports.into_iter().collect(),
            state: raw.state,
            exclusive: raw.exclusive,
            persist: raw.persist,
            sysctl_file: raw.sysctl_file,
            min_free_ephemeral,
            lock_timeout,
        })
    }
}
