//! The module's options: declared once (validation, --help and the
//! documentation test read this) and checked into a typed [`Request`].

use std::net::IpAddr;
use std::time::Duration;

use port_probe::wire::{self, NodeNameError};
use portmatrix_ansible::{DefaultValue, Kind, ModuleSpec, OptionSpec};
use portmatrix_portset::{PortRange, PortSet};
use serde::{Deserialize, Serialize};

pub use portmatrix_netfilter::Proto;

const LISTEN: &[OptionSpec] = &[
    OptionSpec::new(
        "ports",
        Kind::List(&Kind::Raw),
        "Ports (1-65535) and ranges (\"1025-2180\"); a range means every port of it.",
    )
    .required(),
    OptionSpec::new("proto", Kind::Str, "tcp (a listener) or udp (a responder).")
        .default(DefaultValue::Str("tcp"))
        .choices(&["tcp", "udp"]),
];

/// The longest a responder runs: a day.
pub const MAX_DURATION: i64 = 86_400;

/// Sockets one responder holds at most (each port once per address family).
pub const MAX_SOCKETS: usize = 16_384;

pub static SPEC: ModuleSpec = ModuleSpec {
    name: "port_responder",
    short_description: "Answer probes on given ports for a bounded time, before any service listens",
    version: env!("CARGO_PKG_VERSION"),
    options: &[
        OptionSpec::new(
            "listen",
            Kind::List(&Kind::Dict(LISTEN)),
            "The ports to hold, one item per protocol. Required with state=started.",
        ),
        OptionSpec::new(
            "state",
            Kind::Str,
            "started: hold the ports (replacing a responder of this name with other ports); stopped: end it early.",
        )
        .default(DefaultValue::Str("started"))
        .choices(&["started", "stopped"]),
        OptionSpec::new("name", Kind::Str, "The responder's name on this host: one of each name runs at a time.")
            .default(DefaultValue::Str("default")),
        OptionSpec::new("node", Kind::Str, "The token it answers with (port_probe's node); by default the host name."),
        OptionSpec::new("duration", Kind::Int, "Seconds it holds the ports, then it ends by itself (1-86400).")
            .default(DefaultValue::Int(600)),
        OptionSpec::new(
            "address",
            Kind::Str,
            "The address to listen on; by default every address of both families (0.0.0.0 and ::).",
        ),
        OptionSpec::new(
            "lock_timeout",
            Kind::Int,
            "Seconds to wait for another run on the same responder name (0-3600).",
        )
        .default(DefaultValue::Int(portmatrix_host::lock::DEFAULT_WAIT_SECS)),
    ],
};

/// Whether the responder should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
}

#[derive(Debug, Deserialize)]
struct RawListen {
    ports: Vec<PortRange>,
    proto: Proto,
}

#[derive(Debug, Deserialize)]
struct RawOptions {
    listen: Option<Vec<RawListen>>,
    state: State,
    name: String,
    node: Option<String>,
    duration: i64,
    address: Option<String>,
    lock_timeout: i64,
}

/// One port a responder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub struct Endpoint {
    pub port: u16,
    pub proto: Proto,
}

/// The ports of `endpoints` that use `proto`, as a set (for messages and
/// for the check that they are free).
pub fn ports_of(endpoints: &[Endpoint], proto: Proto) -> PortSet {
    PortSet::from_ranges(endpoints.iter().filter(|e| e.proto == proto).filter_map(|e| PortRange::single(e.port).ok()))
}

/// The checked options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub state: State,
    pub name: String,
    /// Sorted, each once.
    pub endpoints: Vec<Endpoint>,
    pub node: String,
    pub duration: Duration,
    pub address: Option<IpAddr>,
    pub lock_wait: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Option(#[from] portmatrix_ansible::OptionError),
    #[error("listen is required with state=started: which ports should the responder hold?")]
    NoListen,
    #[error("listen[{0}].ports is empty: name at least one port")]
    NoPorts(usize),
    #[error("name {0:?} must be 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("node {source}")]
    BadNode { source: NodeNameError },
    #[error("the host name {name:?} cannot be the token ({source}): set node")]
    BadHostName { name: String, source: NodeNameError },
    #[error("duration must be 1 to {MAX_DURATION} seconds (a day), got {0}")]
    Duration(i64),
    #[error("address {0:?} is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("lock_timeout must be 0 to {max} seconds, got {0}", max = portmatrix_host::lock::MAX_WAIT_SECS)]
    LockTimeout(i64),
    #[error(
        "listen asks for {0} sockets, more than {MAX_SOCKETS} (each port once per address family): probes sample \
         ranges, so hold the sampled ports (port_probe's plan) instead of whole ranges"
    )]
    TooManySockets(usize),
}

impl Request {
    pub fn from_invocation(invocation: &portmatrix_ansible::Invocation) -> Result<Self, RequestError> {
        let raw: RawOptions = invocation.options()?;
        let name_ok = (1..=64).contains(&raw.name.len())
            && raw.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return Err(RequestError::BadName(raw.name));
        }
        let lock_wait = portmatrix_host::lock::wait_from_seconds(raw.lock_timeout)
            .ok_or(RequestError::LockTimeout(raw.lock_timeout))?;
        let mut endpoints = Vec::new();
        match (raw.state, raw.listen) {
            (State::Started, None) => return Err(RequestError::NoListen),
            (State::Started, Some(listen)) if listen.is_empty() => return Err(RequestError::NoListen),
            (_, listen) => {
                for (index, item) in listen.unwrap_or_default().into_iter().enumerate() {
                    if item.ports.is_empty() {
                        return Err(RequestError::NoPorts(index));
                    }
                    for range in item.ports {
                        endpoints.extend(range.ports().map(|port| Endpoint { port, proto: item.proto }));
                        // Bounded while collecting: a request of 1-65535 ten times is refused at once.
                        if endpoints.len() > 2 * MAX_SOCKETS {
                            return Err(RequestError::TooManySockets(endpoints.len()));
                        }
                    }
                }
            }
        }
        endpoints.sort_unstable();
        endpoints.dedup();
        let address = match raw.address.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(text.parse().map_err(|_| RequestError::BadAddress(text.to_string()))?),
        };
        let sockets = endpoints.len() * if address.is_some() { 1 } else { 2 };
        if sockets > MAX_SOCKETS {
            return Err(RequestError::TooManySockets(sockets));
        }
        let node = if let Some(node) = raw.node {
            wire::check_node_name(&node).map_err(|source| RequestError::BadNode { source })?;
            node
        } else {
            let name = host_name();
            wire::check_node_name(&name).map_err(|source| RequestError::BadHostName { name: name.clone(), source })?;
            name
        };
        if !(1..=MAX_DURATION).contains(&raw.duration) {
            return Err(RequestError::Duration(raw.duration));
        }
        Ok(Request {
            state: raw.state,
            name: raw.name,
            endpoints,
            node,
            duration: Duration::from_secs(raw.duration.unsigned_abs()),
            address,
            lock_wait,
        })
    }
}

/// The kernel's host name (of this UTS namespace), as `hostname` prints it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}
