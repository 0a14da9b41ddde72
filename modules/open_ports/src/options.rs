//! The module's options: declared once (validation, --help and the
//! documentation test read this), deserialised into typed structs and
//! checked for sense.

use std::time::Duration;

use portmatrix_ansible::{DefaultValue, Kind, ModuleSpec, OptionSpec};
use portmatrix_portset::{PortRange, PortSet};
use serde::Deserialize;

use crate::ruleset::{Proto, Rule, Ruleset, Sources};
use crate::source::{Source, SourceError};

pub const DEFAULT_NAME: &str = "open_ports";
/// Seconds per firewall command: a re-apply takes milliseconds, the largest
/// ruleset measured (1,000 ports x 1,000 sources on iptables-nft) under 5 s.
pub const DEFAULT_COMMAND_TIMEOUT: i64 = 60;
/// The longest `command_timeout`, in seconds: as long as the longest wait
/// for the lock.
pub const MAX_TIMEOUT: i64 = portmatrix_host::lock::MAX_WAIT_SECS;
/// iptables: "chain name too long (must be under 29 chars)".
pub const MAX_NAME: usize = 28;
/// What iptables' forward chain adds to `name` (see the iptables backend).
pub const FORWARD_SUFFIX: &str = "-fwd";
/// The longest `name` with `forward`: its iptables chain `NAME-fwd` must fit.
pub const MAX_FORWARD_NAME: usize = MAX_NAME - FORWARD_SUFFIX.len();
/// nftables refuses longer rule comments; iptables' limit is higher.
pub const MAX_COMMENT: usize = 128;

const RULE: &[OptionSpec] = &[
    OptionSpec::new("ports", Kind::List(&Kind::Raw), "Ports (1-65535) and ranges (\"1025-2180\").").required(),
    OptionSpec::new("proto", Kind::Str, "The protocol.").default(DefaultValue::Str("tcp")).choices(&["tcp", "udp"]),
    OptionSpec::new(
        "sources",
        Kind::List(&Kind::Str),
        "IPv4/IPv6 addresses or CIDRs, `any`, or `loopback` (the lo interface). Defaults to [any].",
    ),
    OptionSpec::new("comment", Kind::Str, "Shown in the firewall next to the rule's accepts."),
];

pub static SPEC: ModuleSpec = ModuleSpec {
    name: "open_ports",
    short_description: "Accept ports from given sources in a firewall chain or table of its own, atomically",
    version: env!("CARGO_PKG_VERSION"),
    options: &[
        OptionSpec::new(
            "rules",
            Kind::List(&Kind::Dict(RULE)),
            "What to accept: each rule accepts its ports (per proto) from its sources. Required when state=present.",
        ),
        OptionSpec::new(
            "enforce",
            Kind::Bool,
            "Also drop packets to these ports (per protocol) from every source that no rule allows.",
        )
        .default(DefaultValue::Bool(false)),
        OptionSpec::new(
            "forward",
            Kind::Bool,
            "Apply the same accepts and, with enforce, drops to forwarded packets that were DNAT'd to a \
             container or task, by their original destination port (before the DNAT).",
        )
        .default(DefaultValue::Bool(false)),
        OptionSpec::new(
            "persist",
            Kind::Bool,
            "Put the rules back at boot before the network is up, and after a firewall service of the \
             distribution reloads its ruleset (a systemd unit of the module's own).",
        )
        .default(DefaultValue::Bool(true)),
        OptionSpec::new(
            "name",
            Kind::Str,
            "The chain (iptables) or table (nftables) this module owns: 1-28 characters, a letter first, then \
             letters, digits, _ or -, with at least one lower-case letter. Objects of that name that carry no \
             marker of this module are never changed: the run is refused.",
        )
        .default(DefaultValue::Str(DEFAULT_NAME)),
        OptionSpec::new(
            "backend",
            Kind::Str,
            "auto: nftables when the host's firewall is native nftables, otherwise iptables in the host's variant.",
        )
        .default(DefaultValue::Str("auto"))
        .choices(&["auto", "nftables", "iptables"]),
        OptionSpec::new("state", Kind::Str, "absent removes the module's chain or table and its hook, nothing else.")
            .default(DefaultValue::Str("present"))
            .choices(&["present", "absent"]),
        OptionSpec::new(
            "jump_from",
            Kind::Str,
            "Where to hook in. iptables: a chain (default INPUT). nftables: an existing base chain `FAMILY TABLE CHAIN`.",
        ),
        OptionSpec::new(
            "lock_timeout",
            Kind::Int,
            "Seconds to wait for another run on this host that holds the same name (0-3600).",
        )
        .default(DefaultValue::Int(portmatrix_host::lock::DEFAULT_WAIT_SECS)),
        OptionSpec::new(
            "command_timeout",
            Kind::Int,
            "Seconds each firewall command (nft, iptables-save, iptables-restore) may take before it is killed \
             and the run fails, undoing what it applied (1-3600).",
        )
        .default(DefaultValue::Int(DEFAULT_COMMAND_TIMEOUT)),
        OptionSpec::new(
            "full_script",
            Kind::Bool,
            "Return the whole script and diff however long; by default texts over 1000 lines are summarised.",
        )
        .default(DefaultValue::Bool(false)),
    ],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Nftables,
    Iptables,
}

#[derive(Debug, Deserialize)]
struct RawRule {
    ports: Vec<PortRange>,
    proto: Proto,
    sources: Option<Vec<String>>,
    comment: Option<String>,
}

// One field per option, and several options are switches.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Deserialize)]
struct RawOptions {
    rules: Option<Vec<RawRule>>,
    enforce: bool,
    forward: bool,
    persist: bool,
    name: String,
    backend: BackendChoice,
    state: State,
    jump_from: Option<String>,
    lock_timeout: i64,
    command_timeout: i64,
    full_script: bool,
}

/// What the user asked for, checked for sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub ruleset: Ruleset,
    pub name: String,
    pub backend: BackendChoice,
    pub state: State,
    pub jump_from: Option<String>,
    pub lock_timeout: Duration,
    pub command_timeout: Duration,
    pub full_script: bool,
    /// Whether the rules are to come back at boot (see `persist`).
    pub persist: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Option(#[from] portmatrix_ansible::OptionError),
    #[error("rules is required when state=present (an empty list closes everything this module opened)")]
    NoRules,
    #[error("rules[{0}].ports is empty: name at least one port or range")]
    NoPorts(usize),
    #[error("rules[{0}].sources is empty: leave it out for [any], or name at least one source")]
    NoSources(usize),
    #[error("rules[{rule}].sources[{index}]: {source}")]
    Source { rule: usize, index: usize, source: SourceError },
    #[error(
        "rules[{rule}].comment {comment:?} cannot be used: at most {MAX_COMMENT} characters of letters, digits, \
         spaces and . , : / ( ) + = @ _ -"
    )]
    Comment { rule: usize, comment: String },
    #[error(
        "name {0:?} cannot be used: 1 to {MAX_NAME} characters (iptables' limit for chain names), a letter first, \
         then letters, digits, _ or -, and at least one lower-case letter (iptables' built-in chains and \
         targets, such as INPUT or DROP, are upper case)"
    )]
    Name(String),
    #[error(
        "name {0:?} is too long for forward: true: at most {MAX_FORWARD_NAME} characters, since the iptables \
         chain for forwarded packets is NAME{FORWARD_SUFFIX} and iptables takes at most {MAX_NAME}"
    )]
    ForwardName(String),
    #[error("{option} must be between {min} and {MAX_TIMEOUT} seconds, got {value}")]
    Timeout { option: &'static str, min: i64, value: i64 },
    #[error("jump_from {0:?} is not a chain name")]
    JumpFrom(String),
    #[error("jump_from {jump_from:?} names the module's own chain {name:?}: a chain cannot hook into itself")]
    JumpFromSelf { jump_from: String, name: String },
    #[error(
        "jump_from {0:?} has two words: iptables takes a chain of the filter table (INPUT), nftables a base chain \
         as FAMILY TABLE CHAIN (inet filter input)"
    )]
    JumpFromWords(String),
    #[error("jump_from {jump_from:?} names the module's own table inet {name}: hook into a chain of the host's own")]
    JumpFromOwnTable { jump_from: String, name: String },
}

impl Request {
    pub fn from_invocation(invocation: &portmatrix_ansible::Invocation) -> Result<Self, RequestError> {
        let raw: RawOptions = invocation.options()?;
        if !valid_name(&raw.name) {
            return Err(RequestError::Name(raw.name));
        }
        if raw.forward && raw.name.len() > MAX_FORWARD_NAME {
            return Err(RequestError::ForwardName(raw.name));
        }
        let jump_from = raw.jump_from.as_deref().map(|j| jump_from(j, &raw.name)).transpose()?;
        let lock_timeout = seconds("lock_timeout", raw.lock_timeout, 0)?;
        let command_timeout = seconds("command_timeout", raw.command_timeout, 1)?;
        let rules = match (raw.rules, raw.state) {
            (Some(rules), _) => rules,
            (None, State::Absent) => Vec::new(),
            (None, State::Present) => return Err(RequestError::NoRules),
        };
        let rules = rules.into_iter().enumerate().map(|(i, raw)| rule(i, raw)).collect::<Result<_, _>>()?;
        Ok(Request {
            ruleset: Ruleset { rules, enforce: raw.enforce, forward: raw.forward },
            name: raw.name,
            backend: raw.backend,
            state: raw.state,
            jump_from,
            lock_timeout,
            command_timeout,
            full_script: raw.full_script,
            persist: raw.persist,
        })
    }
}

fn seconds(option: &'static str, value: i64, min: i64) -> Result<Duration, RequestError> {
    if (min..=MAX_TIMEOUT).contains(&value) {
        Ok(Duration::from_secs(value.unsigned_abs()))
    } else {
        Err(RequestError::Timeout { option, min, value })
    }
}

/// A name every backend can carry: iptables' chain-name limit, characters
/// nft reads as one identifier, and a lower-case letter, which keeps it clear
/// of every iptables built-in chain and target (INPUT, DROP, LOG, ...): a
/// user chain named like a target would change what `-j TARGET` means.
/// `standard` is xtables' own name for its built-in verdicts: iptables-nft
/// refuses a chain of that name, iptables-legacy crashes on it.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= MAX_NAME
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && name != "standard"
}

/// `jump_from` checked and written with single spaces: a chain (iptables), or
/// `FAMILY TABLE CHAIN` (nftables), never the module's own chain or table.
fn jump_from(text: &str, name: &str) -> Result<String, RequestError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let allowed = |c: char| c.is_ascii_alphanumeric() || c.is_ascii_whitespace() || "_-.".contains(c);
    if words.is_empty() || words.len() > 3 || !text.chars().all(allowed) {
        return Err(RequestError::JumpFrom(text.to_string()));
    }
    if words.len() == 2 {
        return Err(RequestError::JumpFromWords(text.to_string()));
    }
    if words.last() == Some(&name) {
        return Err(RequestError::JumpFromSelf { jump_from: text.to_string(), name: name.to_string() });
    }
    if let ["inet", table, _] = words.as_slice()
        && *table == name
    {
        return Err(RequestError::JumpFromOwnTable { jump_from: text.to_string(), name: name.to_string() });
    }
    Ok(words.join(" "))
}

fn valid_comment(comment: &str) -> bool {
    !comment.trim().is_empty()
        && comment.len() <= MAX_COMMENT
        && comment.chars().all(|c| c.is_ascii_alphanumeric() || " .,:/()+=@_-".contains(c))
        && comment.trim() == comment
}

fn rule(index: usize, raw: RawRule) -> Result<Rule, RequestError> {
    if raw.ports.is_empty() {
        return Err(RequestError::NoPorts(index));
    }
    let texts = raw.sources.unwrap_or_else(|| vec!["any".to_string()]);
    if texts.is_empty() {
        return Err(RequestError::NoSources(index));
    }
    let parsed = texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<Source>().map_err(|source| RequestError::Source { rule: index, index: i, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(comment) = raw.comment.as_deref().filter(|c| !valid_comment(c)) {
        return Err(RequestError::Comment { rule: index, comment: comment.to_string() });
    }
    Ok(Rule {
        ports: raw.ports.into_iter().collect::<PortSet>(),
        proto: raw.proto,
        sources: Sources::from_list(&parsed),
        comment: raw.comment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_strictest_backend() {
        assert!(valid_name("open_ports") && valid_name("dcos-master") && valid_name(&"a".repeat(28)));
        assert!(!valid_name(&"a".repeat(29)) && !valid_name("") && !valid_name("1abc") && !valid_name("a b"));
        assert!(!valid_name("-x") && !valid_name("a;b"));
        for builtin in ["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING", "ACCEPT", "DROP", "RETURN", "LOG"] {
            assert!(!valid_name(builtin), "{builtin}");
        }
        assert!(valid_name("DOCKER-user") && valid_name("input") && !valid_name("standard"));
    }

    #[test]
    fn jump_from_is_one_chain_or_three_words_never_the_modules_own() {
        assert_eq!(jump_from(" INPUT ", "web").unwrap(), "INPUT");
        assert_eq!(jump_from("inet  filter\tinput", "web").unwrap(), "inet filter input");
        assert!(matches!(jump_from("inet filter", "web"), Err(RequestError::JumpFromWords(_))));
        assert!(matches!(jump_from("inet filter web", "web"), Err(RequestError::JumpFromSelf { .. })));
        assert!(matches!(jump_from("inet web input", "web"), Err(RequestError::JumpFromOwnTable { .. })));
        assert!(matches!(jump_from("a b c d", "web"), Err(RequestError::JumpFrom(_))));
        assert!(matches!(jump_from("input; flush", "web"), Err(RequestError::JumpFrom(_))));
    }

    #[test]
    fn comments_are_plain_text_that_needs_no_escaping() {
        assert!(valid_comment("Admin Router (HTTP)") && valid_comment("zk: 2181/tcp"));
        assert!(!valid_comment("say \"hi\"") && !valid_comment("a\nb") && !valid_comment("") && !valid_comment(" x"));
        assert!(!valid_comment(&"x".repeat(129)) && !valid_comment("a\\b"));
    }
}
