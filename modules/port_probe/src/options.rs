//! The module's options: declared once (validation, --help and the
//! documentation test read this) and checked into a typed [`Request`].

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use portmatrix_ansible::{DefaultValue, Kind, ModuleSpec, OptionSpec};
use portmatrix_portset::PortRange;
use serde::{Deserialize, Serialize};

pub use portmatrix_netfilter::Proto;

use crate::wire;

const TARGET: &[OptionSpec] = &[
    OptionSpec::new("address", Kind::Str, "The destination: an IPv4 or IPv6 address, or a name (its first address).")
        .required(),
    OptionSpec::new(
        "ports",
        Kind::List(&Kind::Raw),
        "Ports (1-65535) and ranges (\"1025-2180\"); a range is sampled (see sample).",
    )
    .required(),
    OptionSpec::new("proto", Kind::Str, "tcp or udp.").default(DefaultValue::Str("tcp")).choices(&["tcp", "udp"]),
    OptionSpec::new(
        "expected",
        Kind::Str,
        "reachable: packets get through (open or refused); blocked: they do not (filtered).",
    )
    .default(DefaultValue::Str("reachable"))
    .choices(&["reachable", "blocked"]),
    OptionSpec::new(
        "node",
        Kind::Str,
        "The node whose port_responder must answer (its token); with expected=reachable only open with that token is ok.",
    ),
];

/// Bounds on the options, each with its reason.
pub mod bounds {
    /// Sockets in flight at once: far below the default 1024 open files.
    pub const MAX_CONCURRENCY: i64 = 512;
    /// A minute per attempt is already far beyond any real round trip.
    pub const MAX_TIMEOUT_MS: i64 = 60_000;
    pub const MAX_ATTEMPTS: i64 = 10;
    /// Ports probed per range when sampled: more is `sample: 0` (every port).
    pub const MAX_SAMPLE: i64 = 4096;
    /// Probes per task, so that the result stays a readable size.
    pub const MAX_PROBES: usize = 100_000;
}

pub static SPEC: ModuleSpec = ModuleSpec {
    name: "port_probe",
    short_description: "Probe from this node whether ports on other nodes are reachable or blocked",
    version: env!("CARGO_PKG_VERSION"),
    options: &[
        OptionSpec::new("targets", Kind::List(&Kind::Dict(TARGET)), "What to probe, one item per address and protocol.")
            .required(),
        OptionSpec::new("concurrency", Kind::Int, "Probes in flight at once (1-512).").default(DefaultValue::Int(64)),
        OptionSpec::new(
            "timeout_ms",
            Kind::Int,
            "Milliseconds each attempt waits for an answer (1-60000); no answer by then is filtered.",
        )
        .default(DefaultValue::Int(1000)),
        OptionSpec::new(
            "attempts",
            Kind::Int,
            "Attempts per probe (1-10); only filtered and ambiguous probes are tried again.",
        )
        .default(DefaultValue::Int(2)),
        OptionSpec::new(
            "sample",
            Kind::Int,
            "Ports probed per range: its first, its last and the rest spread evenly between (2-4096); 0 probes every port.",
        )
        .default(DefaultValue::Int(8)),
        OptionSpec::new("fail_on_mismatch", Kind::Bool, "false: report mismatches without failing the task.")
            .default(DefaultValue::Bool(true)),
        OptionSpec::new(
            "fail_on_ambiguous",
            Kind::Bool,
            "true: an ambiguous UDP probe (no reply, no ICMP error) fails the task too; by default it is a warning.",
        )
        .default(DefaultValue::Bool(false)),
    ],
};

/// Whether packets must get through to the port or must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    Reachable,
    Blocked,
}

#[derive(Debug, Deserialize)]
struct RawTarget {
    address: String,
    ports: Vec<PortRange>,
    proto: Proto,
    expected: Expected,
    node: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawOptions {
    targets: Vec<RawTarget>,
    concurrency: i64,
    timeout_ms: i64,
    attempts: i64,
    sample: i64,
    fail_on_mismatch: bool,
    fail_on_ambiguous: bool,
}

/// One destination address and protocol, its ports as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address as the user wrote it (a name stays a name in messages).
    pub address: String,
    /// What it resolved to; the port is filled in per probe.
    pub ip: IpAddr,
    pub ports: Vec<PortRange>,
    pub proto: Proto,
    pub expected: Expected,
    /// The responder's node name that must answer.
    pub node: Option<String>,
}

/// The checked options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub targets: Vec<Target>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub attempts: u32,
    /// Ports per range; `None` probes every port.
    pub sample: Option<usize>,
    pub fail_on_mismatch: bool,
    pub fail_on_ambiguous: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Option(#[from] portmatrix_ansible::OptionError),
    #[error("targets is empty: name at least one address and its ports")]
    NoTargets,
    #[error("targets[{0}].ports is empty: name at least one port")]
    NoPorts(usize),
    #[error("targets[{0}].address is empty")]
    EmptyAddress(usize),
    #[error("targets[{index}].address {address:?} does not resolve: {reason}")]
    Unresolved { index: usize, address: String, reason: String },
    #[error("targets[{index}].node {source}")]
    BadNode { index: usize, source: wire::NodeNameError },
    #[error("{option} must be {min} to {max}, got {value}")]
    OutOfBounds { option: &'static str, min: i64, max: i64, value: i64 },
    #[error("sample must be 0 (every port) or 2 to {max} (a range's first and last port at least), got 1", max = bounds::MAX_SAMPLE)]
    SampleOfOne,
    #[error("the targets ask for {0} probes, more than {max} in one task: split them, or sample the ranges", max = bounds::MAX_PROBES)]
    TooManyProbes(usize),
}

fn bounded(option: &'static str, value: i64, min: i64, max: i64) -> Result<i64, RequestError> {
    if (min..=max).contains(&value) { Ok(value) } else { Err(RequestError::OutOfBounds { option, min, max, value }) }
}

/// An option already bounded to a small positive range, as the type it is used as.
fn small(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl Request {
    /// Checks the options and resolves each target's address (names with the
    /// system resolver, as any client on the node would).
    pub fn from_invocation(invocation: &portmatrix_ansible::Invocation) -> Result<Self, RequestError> {
        let raw: RawOptions = invocation.options()?;
        if raw.targets.is_empty() {
            return Err(RequestError::NoTargets);
        }
        let concurrency = bounded("concurrency", raw.concurrency, 1, bounds::MAX_CONCURRENCY)?;
        let timeout_ms = bounded("timeout_ms", raw.timeout_ms, 1, bounds::MAX_TIMEOUT_MS)?;
        let attempts = bounded("attempts", raw.attempts, 1, bounds::MAX_ATTEMPTS)?;
        let sample = match raw.sample {
            0 => None,
            1 => return Err(RequestError::SampleOfOne),
            n => Some(small(bounded("sample", n, 0, bounds::MAX_SAMPLE)?) as usize),
        };
        let targets = raw.targets.into_iter().enumerate().map(|(i, t)| t.check(i)).collect::<Result<Vec<_>, _>>()?;
        let request = Request {
            targets,
            concurrency: small(concurrency) as usize,
            timeout: Duration::from_millis(u64::from(small(timeout_ms))),
            attempts: small(attempts),
            sample,
            fail_on_mismatch: raw.fail_on_mismatch,
            fail_on_ambiguous: raw.fail_on_ambiguous,
        };
        let probes = crate::plan::count(&request);
        if probes > bounds::MAX_PROBES {
            return Err(RequestError::TooManyProbes(probes));
        }
        Ok(request)
    }
}

impl RawTarget {
    fn check(self, index: usize) -> Result<Target, RequestError> {
        let address = self.address.trim().to_string();
        if address.is_empty() {
            return Err(RequestError::EmptyAddress(index));
        }
        if self.ports.is_empty() {
            return Err(RequestError::NoPorts(index));
        }
        if let Some(node) = &self.node {
            wire::check_node_name(node).map_err(|source| RequestError::BadNode { index, source })?;
        }
        let ip =
            resolve(&address).map_err(|reason| RequestError::Unresolved { index, address: address.clone(), reason })?;
        Ok(Target { address, ip, ports: self.ports, proto: self.proto, expected: self.expected, node: self.node })
    }
}

/// An address literal (IPv6 with or without brackets), else the first
/// address the system resolver gives for the name.
fn resolve(address: &str) -> Result<IpAddr, String> {
    let literal = address.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(address);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(ip);
    }
    // Port 0 only to satisfy the resolver's interface; nothing is sent.
    let mut found = (address, 0).to_socket_addrs().map_err(|e| e.to_string())?;
    found.next().map(|a: SocketAddr| a.ip()).ok_or_else(|| "the resolver gave no address".to_string())
}
