//! Firewall backends behind one small trait: read the module's own state,
//! render the desired state as one transaction, apply it. A backend only ever
//! names objects it owns; adding one (firewalld, say) touches no other.

pub mod iptables;
pub mod nft_json;
pub mod nftables;

use std::fmt::Write;

use crate::ruleset::Ruleset;
use crate::tools::{ToolError, Tools};

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
    #[error("{source}; the steps already applied were undone, so the previous rules are in place")]
    RolledBack { source: Box<ToolError> },
    #[error("{source}; undoing the steps already applied failed too ({undo}): the rules may be half-applied")]
    NotRolledBack { source: Box<ToolError>, undo: Box<ToolError> },
}

/// One run of a backend tool with a script on stdin, and the script that puts
/// back what was there before it (for when a later step fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub tool: &'static str,
    pub args: Vec<String>,
    pub input: String,
    pub undo: Option<String>,
}

/// What a backend would do: its steps (each one atomic) and the module's
/// state as it will read afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transaction {
    pub steps: Vec<Step>,
    pub after: String,
}

impl Transaction {
    /// Exactly what would be fed to the tools, each part under a comment line
    /// naming the command (both nft and iptables-restore skip `#` lines).
    pub fn script(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let command = std::iter::once(step.tool).chain(step.args.iter().map(String::as_str)).collect::<Vec<_>>();
            let _ = write!(out, "# {}\n{}", command.join(" "), step.input);
        }
        out
    }

    /// Runs the steps in order; when one fails, the ones before it are undone
    /// (newest first), so the firewall is left as it was.
    pub fn apply(&self, tools: &Tools) -> Result<(), FirewallError> {
        for (done, step) in self.steps.iter().enumerate() {
            let args: Vec<&str> = step.args.iter().map(String::as_str).collect();
            let Err(source) = tools.run(step.tool, &args, Some(&step.input)) else { continue };
            for earlier in self.steps[..done].iter().rev() {
                let args: Vec<&str> = earlier.args.iter().map(String::as_str).collect();
                if let Some(undo) = &earlier.undo {
                    tools.run(earlier.tool, &args, Some(undo)).map_err(|undo| FirewallError::NotRolledBack {
                        source: Box::new(source.clone()),
                        undo: Box::new(undo),
                    })?;
                }
            }
            return Err(if done == 0 {
                FirewallError::Tool(source)
            } else {
                FirewallError::RolledBack { source: Box::new(source) }
            });
        }
        Ok(())
    }
}

/// A firewall the module can own a piece of.
pub trait Firewall {
    /// What was read: the module's own objects, whatever else the backend
    /// needs to render a transaction against them.
    type State;

    /// `nftables`, `iptables-nft` or `iptables-legacy`.
    fn label(&self) -> String;

    /// Reads the module's own objects (and nothing it would change).
    fn read(&self) -> Result<Self::State, FirewallError>;

    /// The module's objects as text in the backend's own syntax ("" when
    /// there are none): what is compared and shown as the diff's before.
    fn describe(&self, state: &Self::State) -> String;

    /// The transaction that turns `state` into `desired` (`None`: absent).
    fn render(&self, state: &Self::State, desired: Option<&Ruleset>) -> Result<Transaction, FirewallError>;

    /// Advice about the host, such as another firewall that overrides this one.
    fn warnings(&self, _state: &Self::State, _desired: Option<&Ruleset>) -> Vec<String> {
        Vec::new()
    }
}

/// Whether firewalld runs on this host (it rewrites the firewall on reload).
pub fn firewalld_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "firewalld"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(script: &str, undo: &str) -> Step {
        Step { tool: "sh", args: vec!["-s".into()], input: script.into(), undo: Some(undo.into()) }
    }

    #[test]
    fn a_failing_step_undoes_the_earlier_ones() {
        let dir = std::env::temp_dir().join(format!("open_ports-tx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state");
        let f = file.display();
        let tx = Transaction {
            steps: vec![step(&format!("echo new > {f}"), &format!("echo old > {f}")), step("exit 3", "")],
            after: String::new(),
        };
        let tools = Tools::new(Some("/bin:/usr/bin".into()));
        let err = tx.apply(&tools).unwrap_err();
        assert!(matches!(err, FirewallError::RolledBack { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "old\n");
        assert!(tx.script().starts_with("# sh -s\necho new"), "{}", tx.script());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
