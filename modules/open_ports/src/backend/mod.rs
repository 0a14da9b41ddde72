//! Firewall backends behind one small trait: read the module's own objects
//! (those carrying its [`owner::Marker`]), work out the state that holds the
//! request, and the atomic steps between two states. A backend only ever
//! names objects it owns; adding one (firewalld, say) touches no other.

pub mod iptables;
pub mod nft_json;
pub mod nftables;
pub mod owner;

use std::fmt::Write;

use crate::ruleset::Ruleset;
use crate::tools::{ToolError, Tools};
use owner::NotOurs;

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("cannot read the output of {command}: {detail}")]
    Unreadable { command: String, detail: String },
    #[error("jump_from {0}")]
    JumpFrom(String),
    #[error("neither nft nor iptables was found on PATH ({0}): install nftables or iptables")]
    NoBackend(String),
    #[error(transparent)]
    NotOurs(#[from] NotOurs),
    #[error(
        "{object} cannot be removed: {} of this module jumps to it ({}); remove {} first. Nothing was changed",
        if .by.len() == 1 { "a rule that is not" } else { "rules that are not" },
        .by.join("; "),
        if .by.len() == 1 { "that rule" } else { "those rules" }
    )]
    StillReferenced { object: String, by: Vec<String> },
    #[error(
        "these rules become {count} rules in the {table} filter table, more than the {max} the module writes: \
         iptables has no sets, so every source and every 15-port multiport match of a rule is a rule of its own \
         (and with forward, every source and every port range of the forward chain, which conntrack matches one \
         range at a time); use backend: nftables (a set and one rule however long the lists), or fewer sources \
         or ports per rule. Nothing was changed"
    )]
    TooManyRules { table: &'static str, count: usize, max: usize },
    #[error("name {name:?} cannot be used with nftables: {detail}")]
    NftName { name: String, detail: String },
    #[error("{failed}; what had been applied was undone, so the previous rules are in place")]
    RolledBack { failed: Box<ToolError> },
    #[error("{failed}; undoing what had been applied failed too ({undo}): the rules may be half-applied")]
    NotRolledBack { failed: Box<ToolError>, undo: String },
}

/// One run of a backend tool with a script on stdin; atomic by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub tool: String,
    pub args: Vec<String>,
    pub input: String,
}

impl Step {
    fn run(&self, tools: &Tools) -> Result<(), ToolError> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        tools.run(&self.tool, &args, Some(&self.input)).map(drop)
    }
}

/// Exactly what would be fed to the tools, each part under a comment line
/// naming the command (both nft and iptables-restore skip `#` lines).
pub fn script<'a>(steps: impl IntoIterator<Item = &'a Step>) -> String {
    let mut out = String::new();
    for step in steps {
        let command =
            std::iter::once(step.tool.as_str()).chain(step.args.iter().map(String::as_str)).collect::<Vec<_>>();
        let _ = write!(out, "# {}\n{}", command.join(" "), step.input);
    }
    out
}

/// A firewall the module can own a piece of.
pub trait Firewall {
    /// What was read: the module's own objects, and what the backend needs
    /// to know about the rest (chains to hook into, same-named objects of
    /// others, rules of others that refer to the module's objects).
    type State;

    /// `nftables`, `iptables-nft` or `iptables-legacy`.
    fn label(&self) -> String;

    /// Reads the module's objects, wherever they are, and nothing it would change.
    fn read(&self) -> Result<Self::State, FirewallError>;

    /// `now` with the module's objects as `desired` asks (`None`: none
    /// anywhere). Fails, naming the object, when that would change an object
    /// the module does not own.
    fn target(&self, now: &Self::State, desired: Option<&Ruleset>) -> Result<Self::State, FirewallError>;

    /// The steps that turn the module's objects in `from` into those in `to`
    /// (none when they are equal).
    fn steps(&self, from: &Self::State, to: &Self::State) -> Vec<Step>;

    /// The module's objects as text in the backend's own syntax ("" when
    /// there are none): what the diff shows.
    fn describe(&self, state: &Self::State) -> String;

    /// Advice about the host, such as another firewall that overrides this
    /// one, or a same-named object of someone else left alone.
    fn warnings(&self, now: &Self::State, desired: Option<&Ruleset>) -> Vec<String>;

    /// What could not be read at all (a family whose tools are missing): said
    /// also when this backend is only checked for a copy.
    fn unchecked(&self, _now: &Self::State) -> Vec<String> {
        Vec::new()
    }
}

/// Runs `steps` in order. When one fails (or hangs and is killed), the
/// firewall is read again and put back to `old`: a tool killed at its time
/// bound may or may not have committed, so replaying a fixed undo script
/// could be wrong.
pub fn apply<F: Firewall>(firewall: &F, tools: &Tools, old: &F::State, steps: &[Step]) -> Result<(), FirewallError> {
    for step in steps {
        if let Err(failed) = step.run(tools) {
            return Err(undo(firewall, tools, old, failed));
        }
    }
    Ok(())
}

fn undo<F: Firewall>(firewall: &F, tools: &Tools, old: &F::State, failed: ToolError) -> FirewallError {
    let back = firewall.read().and_then(|now| {
        let steps = firewall.steps(&now, old);
        for step in &steps {
            step.run(tools)?;
        }
        Ok(!steps.is_empty())
    });
    match back {
        Ok(false) => FirewallError::Tool(failed),
        Ok(true) => FirewallError::RolledBack { failed: Box::new(failed) },
        Err(undo) => FirewallError::NotRolledBack { failed: Box::new(failed), undo: undo.to_string() },
    }
}
