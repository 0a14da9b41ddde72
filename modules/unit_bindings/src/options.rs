//! The module's options: declared once (validation, --help and the
//! documentation test read this) and deserialised into typed expectations.

use std::time::Duration;

use portmatrix_ansible::{DefaultValue, Kind, ModuleSpec, OptionSpec};
use portmatrix_portset::PortRange;
use serde::{Deserialize, Serialize};

use crate::units::{UnitNameError, normalise_unit_name};

const EXPECT_ITEM: &[OptionSpec] = &[
    OptionSpec::new(
        "port",
        Kind::Raw,
        "A port (1-65535) or a range (\"10000-10100\"); a range means every port of it.",
    )
    .required(),
    OptionSpec::new("proto", Kind::Str, "tcp (listening sockets) or udp (bound, unconnected sockets).")
        .default(DefaultValue::Str("tcp"))
        .choices(&["tcp", "udp"]),
    OptionSpec::new(
        "state",
        Kind::Str,
        "listening: unit holds a socket on the port; free: nothing does (except unit, when given).",
    )
    .default(DefaultValue::Str("listening"))
    .choices(&["listening", "free"]),
    OptionSpec::new(
        "unit",
        Kind::Str,
        "The systemd unit (without a suffix: a .service). Required for listening; for free, a unit that may hold the port.",
    ),
    OptionSpec::new(
        "bind",
        Kind::Str,
        "With listening: any, or loopback (every socket on the port must be on 127.0.0.0/8 or ::1).",
    )
    .default(DefaultValue::Str("any"))
    .choices(&["any", "loopback"]),
];

/// Longer than any task should wait; also keeps the deadline arithmetic far
/// from overflowing.
pub const MAX_TIMEOUT: u64 = 86_400;

pub static SPEC: ModuleSpec = ModuleSpec {
    name: "unit_bindings",
    short_description: "Check which systemd unit holds which port: free before an install, the right unit after it",
    version: env!("CARGO_PKG_VERSION"),
    options: &[
        OptionSpec::new("expect", Kind::List(&Kind::Dict(EXPECT_ITEM)), "What must hold, one item per port or range.")
            .required(),
        OptionSpec::new(
            "timeout",
            Kind::Int,
            "Seconds to keep checking until every expectation holds (like wait_for); 0 checks once.",
        )
        .default(DefaultValue::Int(0)),
        OptionSpec::new("fail_on_mismatch", Kind::Bool, "false: report mismatches without failing the task.")
            .default(DefaultValue::Bool(true)),
        OptionSpec::new(
            "facts",
            Kind::Bool,
            "Also return ansible_facts.port_bindings: every listening TCP and bound UDP socket with its owner, one entry per socket.",
        )
        .default(DefaultValue::Bool(false)),
    ],
};

/// TCP or UDP: the one netfilter's rules and the sockets share.
pub use portmatrix_netfilter::Proto;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Listening,
    Free,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bind {
    Any,
    Loopback,
}

#[derive(Debug, Deserialize)]
struct RawExpectation {
    port: PortRange,
    proto: Proto,
    state: State,
    unit: Option<String>,
    bind: Bind,
}

#[derive(Debug, Deserialize)]
struct RawOptions {
    expect: Vec<RawExpectation>,
    timeout: i64,
    fail_on_mismatch: bool,
    facts: bool,
}

/// One thing that must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    pub port: PortRange,
    pub proto: Proto,
    pub state: State,
    /// Normalised (`dcos-net` -> `dcos-net.service`).
    pub unit: Option<String>,
    pub bind: Bind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub expect: Vec<Expectation>,
    pub timeout: Duration,
    pub fail_on_mismatch: bool,
    pub facts: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Option(#[from] portmatrix_ansible::OptionError),
    #[error("expect is empty: name at least one port (or set facts=true to only list the bindings)")]
    NoExpectations,
    #[error("expect[{0}].unit is required with state=listening: which unit should hold the port?")]
    MissingUnit(usize),
    #[error("expect[{index}].unit {source}")]
    BadUnit { index: usize, source: UnitNameError },
    #[error(
        "expect[{0}].bind=loopback only applies to state=listening (a free port has no socket to check the address of)"
    )]
    BindOnFree(usize),
    #[error("timeout must be 0 or more seconds, got {0}")]
    NegativeTimeout(i64),
    #[error("timeout must be at most {MAX_TIMEOUT} seconds (a day), got {0}")]
    TimeoutTooLong(i64),
}

impl Request {
    pub fn from_invocation(invocation: &portmatrix_ansible::Invocation) -> Result<Self, RequestError> {
        let raw: RawOptions = invocation.options()?;
        if raw.expect.is_empty() && !raw.facts {
            return Err(RequestError::NoExpectations);
        }
        let timeout = u64::try_from(raw.timeout).map_err(|_| RequestError::NegativeTimeout(raw.timeout))?;
        if timeout > MAX_TIMEOUT {
            return Err(RequestError::TimeoutTooLong(raw.timeout));
        }
        let expect =
            raw.expect.into_iter().enumerate().map(|(index, item)| item.check(index)).collect::<Result<_, _>>()?;
        Ok(Request {
            expect,
            timeout: Duration::from_secs(timeout),
            fail_on_mismatch: raw.fail_on_mismatch,
            facts: raw.facts,
        })
    }
}

impl RawExpectation {
    fn check(self, index: usize) -> Result<Expectation, RequestError> {
        let unit = match self.unit {
            Some(name) => Some(normalise_unit_name(&name).map_err(|source| RequestError::BadUnit { index, source })?),
            None if self.state == State::Listening => return Err(RequestError::MissingUnit(index)),
            None => None,
        };
        if self.state == State::Free && self.bind == Bind::Loopback {
            return Err(RequestError::BindOnFree(index));
        }
        Ok(Expectation { port: self.port, proto: self.proto, state: self.state, unit, bind: self.bind })
    }
}
