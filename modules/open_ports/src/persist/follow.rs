//! Following firewalld's reloads: `open_ports --follow-firewalld UNIT`, the
//! one long-running part of persistence, run by the follower unit
//! ([`super::unit::render_follower`]) only on hosts with firewalld.
//!
//! `firewall-cmd --reload` (and every firewall-cmd change that reloads, such
//! as `--set-log-denied`) asks the running firewalld over D-Bus: systemd sees
//! no job, so no drop-in runs. firewalld then replaces its own nftables
//! tables (with them any chain another tool put there, as `jump_from` does)
//! and, with its iptables backend, flushes every iptables chain. When done it
//! sends the D-Bus signal `org.fedoraproject.FirewallD1.Reloaded`
//! (firewalld.dbus(5)). Docker, libvirt and netavark (its
//! `netavark-firewalld-reload.service`) listen for that signal and put their
//! rules back; the follower does the same, restarting the restore unit for
//! each signal. The rules are missing from the reload until the restore is
//! done, tens of milliseconds, as with those tools.
//!
//! firewalld is `Type=dbus`: systemd calls it started once it holds its bus
//! name, before it has loaded its rules (which flush iptables, or make the
//! table a `jump_from` names). So the follower, started with firewalld,
//! first waits until firewalld's `state` property is past `INIT` (firewalld
//! answers no D-Bus call before its rules are loaded), and then restarts the
//! unit once. Its subscription is made before that wait: a reload in
//! between is not missed.
//!
//! Why `busctl monitor` and not a D-Bus library: busctl ships with systemd,
//! which persistence needs anyway, and the follower runs as root, which
//! monitoring needs; a D-Bus client crate would bring an async runtime into
//! a module that has none. Only a line of busctl's with `Type=signal` is
//! counted, which its header line of each message has in every version's
//! plain output; the match makes every such message a Reloaded signal. Each
//! one queues `systemctl restart --no-block UNIT`: systemd merges restarts
//! queued while one is pending, so a burst of reloads costs one or two
//! restores, and a stray line costs at most one idempotent restore.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};

use crate::tools::{ToolError, Tools};

/// firewalld's unit.
pub const FIREWALLD: &str = "firewalld.service";

/// The D-Bus match of firewalld's signal after each reload.
pub const RELOADED_MATCH: &str = "type='signal',interface='org.fedoraproject.FirewallD1',member='Reloaded'";

/// firewalld's object, interface and the property that is `RUNNING` once
/// its rules are loaded (firewalld.dbus(5)).
const STATE_PROPERTY: [&str; 4] =
    ["org.fedoraproject.FirewallD1", "/org/fedoraproject/FirewallD1", "org.fedoraproject.FirewallD1", "state"];

/// How long the follower waits for firewalld to say it runs, and between
/// two asks.
const READY_TRIES: u32 = 300;
const READY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Said when firewalld runs and nothing follows its reloads (persist off, or
/// no systemd).
pub const UNFOLLOWED: &str = "firewalld is running: a reload of it removes these rules (its iptables backend \
     flushes every iptables chain; it remakes its own tables, with any jump_from chain in them), and without \
     persistence nothing puts them back";

/// [`UNFOLLOWED`], when rules are applied and not persisted while firewalld
/// runs here.
pub fn unfollowed(applied_unpersisted: bool) -> Vec<String> {
    if applied_unpersisted && firewalld_running() { vec![UNFOLLOWED.to_string()] } else { Vec::new() }
}

/// Said when firewalld is installed and there is no busctl to follow it
/// with: the apply goes on, the follower would only fail.
pub fn busctl_missing(firewalld: bool, tools: &Tools, name: &str) -> Option<String> {
    (firewalld && !tools.has("busctl")).then(|| {
        format!(
            "persist: busctl (systemd's) was not found on PATH ({}): {} cannot follow firewalld's reloads, so a \
             firewall-cmd --reload removes these rules until the next run",
            tools.path(),
            super::unit::follower_name(name)
        )
    })
}

/// Whether a firewalld runs in the module's network namespace: the
/// firewall it rewrites is its own namespace's. A firewalld of a container
/// seen in `/proc` (no PID namespace of the module's own) is not this
/// firewall's. By process, not by unit: firewalld may run without systemd,
/// and the check needs no D-Bus.
pub fn firewalld_running() -> bool {
    let Ok(own) = std::fs::read_link("/proc/self/ns/net") else { return false };
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "firewalld")
            && std::fs::read_link(e.path().join("ns/net")).is_ok_and(|net| net == own)
    })
}

/// Why the follower stopped (it runs until busctl ends; systemd starts it
/// again).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("cannot start busctl")]
    Spawn(#[source] std::io::Error),
    #[error("cannot read busctl's output")]
    Read(#[source] std::io::Error),
    #[error("busctl monitor ended ({0})")]
    Ended(ExitStatus),
    #[error("firewalld did not say it runs within {0} tries (its state property: {1})")]
    NotReady(u32, String),
}

/// The arguments of `busctl` that print each Reloaded signal.
pub fn busctl_args() -> [String; 3] {
    ["--system".into(), "monitor".into(), format!("--match={RELOADED_MATCH}")]
}

/// Whether a line of busctl's output starts a message.
pub fn starts_message(line: &str) -> bool {
    line.split_whitespace().any(|word| word == "Type=signal")
}

/// Restarts `unit` after every firewalld reload, until busctl ends (an
/// error either way: the unit's `Restart=` brings the follower back).
/// What happens is said on stderr, which the journal keeps.
pub fn follow(tools: &Tools, unit: &str) -> Result<(), FollowError> {
    let mut child = Command::new(tools.find("busctl")?)
        .args(busctl_args())
        .env("PATH", tools.path())
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(FollowError::Spawn)?;
    let Some(stdout) = child.stdout.take() else {
        return Err(FollowError::Spawn(std::io::Error::other("no stdout")));
    };
    let restart = |why: &str| match tools.run("systemctl", &["restart", "--no-block", unit], None) {
        Ok(_) => eprintln!("{why}: {unit} restarts"),
        Err(e) => eprintln!("{why}, and {unit} could not be restarted: {e}"),
    };
    wait_until_running(tools)?;
    restart("firewalld runs; following its reloads");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(FollowError::Read)?;
        if starts_message(&line) {
            restart("firewalld reloaded");
        }
    }
    Err(FollowError::Ended(child.wait().map_err(FollowError::Read)?))
}

/// Asks firewalld for its state until it is past `INIT` (busctl prints
/// `s "RUNNING"`, or `s "FAILED"` when its own configuration did not load
/// and it fell back to the stock one); a call made while it loads its
/// rules is answered after.
fn wait_until_running(tools: &Tools) -> Result<(), FollowError> {
    let mut args = vec!["--system", "get-property"];
    args.extend(STATE_PROPERTY);
    let mut last = String::new();
    for _ in 0..READY_TRIES {
        match tools.run("busctl", &args, None) {
            // FAILED: its own configuration did not load, and it runs the
            // stock one; its tables are made either way.
            Ok(out) if matches!(out.trim(), "s \"RUNNING\"" | "s \"FAILED\"") => return Ok(()),
            Ok(out) => last = out.trim().to_string(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(READY_PAUSE);
    }
    Err(FollowError::NotReady(READY_TRIES, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_message_header_counts() {
        // busctl 252's plain output of a Reloaded signal, in the C locale.
        let header = "> Type=signal  Endian=l  Flags=1  Version=1 Cookie=12  Timestamp=\"Wed 2026-12-02\"";
        assert!(starts_message(header));
        assert!(starts_message("\u{2023} Type=signal  Endian=l"));
        assert!(!starts_message("  Sender=:1.4  Path=/org/fedoraproject/FirewallD1  Member=Reloaded"));
        assert!(!starts_message("  MESSAGE \"\" {"));
        assert!(!starts_message("STRING \"Type=signal\";"), "a body's text is quoted");
        assert_eq!(busctl_args()[2], format!("--match={RELOADED_MATCH}"));
    }
}
