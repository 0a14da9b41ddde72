//! `open_ports`: makes a host's firewall accept given ports from given
//! sources (and, with `enforce`, drop them from everyone else), in a chain or
//! table of its own, in one transaction, with nftables or iptables (legacy or
//! `nf_tables` variant, IPv4 and IPv6). Rules it does not own are never touched.

pub mod backend;
pub mod choose;
pub mod options;
pub mod ruleset;
pub mod source;
pub mod tools;

use portmatrix_ansible::{Diff, Failure, Invocation, Response};

use backend::Firewall;
use choose::Chosen;
use options::{Request, State};
use ruleset::{Ruleset, SshConnection};
use tools::Tools;

pub use options::SPEC;

/// What the module sees of its environment: where the tools are, and the
/// SSH connection that runs it.
pub struct Host {
    pub tools: Tools,
    pub ssh_connection: Option<String>,
}

impl Host {
    pub fn from_env() -> Host {
        Host { tools: Tools::new(std::env::var_os("PATH")), ssh_connection: std::env::var("SSH_CONNECTION").ok() }
    }
}

/// The module's whole run, from validated options to its result.
pub fn execute(invocation: &Invocation, host: &Host) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let desired = (request.state == State::Present).then_some(&request.ruleset);
    if let Some(ruleset) = desired {
        let ssh = host.ssh_connection.as_deref().and_then(SshConnection::parse);
        ruleset.check_ssh(ssh).map_err(|e| Failure::from(e).field("rules", ruleset.to_json()))?;
    }
    match choose::choose(&request, &host.tools)? {
        Chosen::Nftables(firewall) => converge(&firewall, &request, desired, invocation, host),
        Chosen::Iptables(firewall) => converge(&firewall, &request, desired, invocation, host),
    }
}

/// Read, compare, and (unless in check mode) apply.
fn converge<F: Firewall>(
    firewall: &F,
    request: &Request,
    desired: Option<&Ruleset>,
    invocation: &Invocation,
    host: &Host,
) -> Result<Response, Failure> {
    let label = firewall.label();
    let with_context = |failure: Failure| failure.field("backend", &label).field("rules", request.ruleset.to_json());
    let state = firewall.read().map_err(|e| with_context(e.into()))?;
    let before = firewall.describe(&state);
    let transaction = firewall.render(&state, desired).map_err(|e| with_context(e.into()))?;
    let changed = !transaction.steps.is_empty();
    let mut warnings = firewall.warnings(&state, desired);
    if changed && !invocation.check_mode {
        transaction.apply(&host.tools).map_err(|e| with_context(e.into()).field("script", transaction.script()))?;
        let now = firewall.read().map(|s| firewall.describe(&s));
        if now.as_ref().is_ok_and(|now| *now != transaction.after) {
            warnings.push(format!(
                "{label} shows the module's objects differently from what was written, so the next run will report \
                 a change again; please report this as a bug in portmatrix"
            ));
        }
    }
    let name = &request.name;
    let msg = match (desired.is_some(), changed, invocation.check_mode) {
        (true, false, _) => format!("{label}: {name} already holds the requested rules"),
        (true, true, false) => format!("{label}: {name} now holds the requested rules"),
        (true, true, true) => format!("{label}: {name} would be written (check mode)"),
        (false, false, _) => format!("{label}: nothing of {name} to remove"),
        (false, true, false) => format!("{label}: {name} and its hook removed"),
        (false, true, true) => format!("{label}: {name} and its hook would be removed (check mode)"),
    };
    let mut response = Response::new(changed, msg);
    response.warnings = warnings;
    response.diffs.push(Diff::of(format!("{label}: {name}"), before, transaction.after.clone()));
    Ok(response.field("backend", label).field("script", transaction.script()).field("rules", request.ruleset.to_json()))
}
