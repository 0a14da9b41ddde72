//! The systemd unit that puts the module's rules back, and the drop-ins
//! that have the firewall services of the distribution restart it. Facts
//! about systemd are from systemd.unit(5), systemd.service(5) and
//! systemd.special(7) (network-pre.target: "used by services that want to
//! run before any network is configured, such as firewalls"); about the
//! firewall services, from their own units as Debian 12 and RHEL ship them,
//! each `Before=network-pre.target`.
//!
//! - At boot: the unit is `Before=network-pre.target` with `Wants=` it (so
//!   the target is in the boot transaction even where no network service
//!   pulls it in), `DefaultDependencies=no`, as a firewall unit must be to
//!   run that early, and ordered after every firewall service, since each
//!   loads or flushes the whole ruleset: the module's rules go in on top of
//!   the host's, never under a flush. No unit requires this one: its failure
//!   fails nothing else, so a host whose own rules drop by default keeps
//!   exactly those rules. It does hold network-pre.target back while it
//!   runs (as a firewall must), a hang at most `TimeoutStartSec`.
//! - After a firewall service starts, restarts or reloads (each of which
//!   flushes or replaces the ruleset): a drop-in of the module's own in that
//!   service adds `ExecStartPost=` and, when the service can reload,
//!   `ExecReload=`, each `systemctl restart --no-block` of the unit. The
//!   restart is queued, not waited for, so the service's own job never waits
//!   on the restore (nor times out because of it), and it runs right after
//!   that job ends, being ordered after the service; `-` keeps the service
//!   from failing should systemctl fail. `PartOf=`/`ReloadPropagatedFrom=`
//!   would not do: they reach a unit that is active only, and the unit
//!   stays active from boot while a firewall service that was not running
//!   starts and flushes. A service that cannot reload gets no `ExecReload=`:
//!   one would make `reload-or-restart` reload it instead of restarting it.
//! - firewalld, whose `firewall-cmd --reload` systemd never sees (it goes to
//!   firewalld over D-Bus), and which systemd calls started before it has
//!   loaded its rules: its drop-in only wants the follower unit, `BindsTo=`
//!   firewalld, so it runs exactly while firewalld does. The follower
//!   restarts the unit once firewalld says it runs, and on each of its
//!   Reloaded signals ([`super::follow`]).
//!   It is the one part that runs all the time, and only on firewalld hosts.
//! - `StartLimitIntervalSec=0`: each reload of a firewall service restarts
//!   the unit, and a few in a row (a playbook making several firewalld
//!   changes) would hit systemd's default limit of 5 starts in 10 s, and
//!   leave the rules out until the next boot: failing open. A restore is
//!   bounded in time and changes nothing when the rules are there.
//!   The follower restarts 5 s after a failure, which never reaches that
//!   limit: it keeps trying.
//! - `WantedBy=multi-user.target`, not sysinit.target: sysinit.target would
//!   be ordered after this unit, and this unit is ordered after firewalld,
//!   which comes after basic.target: a cycle on firewalld hosts.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Where systemd reads system units (systemd.unit(5), "System Unit Search
/// Path"), highest precedence first.
pub const UNIT_PATH: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Where the module writes its unit, link and drop-ins: the administrator's
/// directory.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// The firewall services of the distributions that load, reload or flush
/// the whole ruleset: nftables (`flush ruleset` in its stock config),
/// netfilter-persistent (Debian's iptables-persistent), iptables and
/// ip6tables (RHEL's iptables-services), firewalld.
pub const FIREWALL_SERVICES: &[&str] =
    &["nftables.service", "netfilter-persistent.service", "iptables.service", "ip6tables.service", "firewalld.service"];

/// The services after whose start (and reload) the unit runs again: the
/// firewall services, and Docker, which on every start puts its own jumps
/// and accepts on top of FORWARD, above a forward hook the boot put there
/// before Docker made its DOCKER-USER chain. Docker comes after the network,
/// so it is not in the unit's `After=` (that would be an ordering cycle with
/// `Before=network-pre.target`): its drop-in alone brings the unit back.
pub const RESTORE_AFTER: &[&str] = &[
    "nftables.service",
    "netfilter-persistent.service",
    "iptables.service",
    "ip6tables.service",
    "firewalld.service",
    "docker.service",
];

/// The boot target whose `.wants` link starts the unit at boot.
pub const BOOT_TARGET: &str = "multi-user.target";

/// The start of every name the module gives a unit or a drop-in.
const PREFIX: &str = "portmatrix-open_ports-";

/// The unit of the module's objects of `name`.
pub fn unit_name(name: &str) -> String {
    format!("{PREFIX}{name}.service")
}

/// The follower of firewalld's reloads for `name` (an instance name; a
/// `name` has no `@`, so it is never the unit of another name).
pub fn follower_name(name: &str) -> String {
    format!("{PREFIX}firewalld@{name}.service")
}

/// The follower's file.
pub fn follower_path(name: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(follower_name(name))
}

/// The unit's file.
pub fn unit_path(name: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(unit_name(name))
}

/// The link in `BOOT_TARGET.wants/` that starts the unit at boot.
pub fn link_path(name: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(format!("{BOOT_TARGET}.wants")).join(unit_name(name))
}

/// The module's drop-in in a firewall service.
pub fn dropin_path(name: &str, service: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(format!("{service}.d")).join(format!("{PREFIX}{name}.conf"))
}

/// The services of [`RESTORE_AFTER`] that are installed: the first file of
/// that name in the unit search path is a unit of its own. A link to a unit of another
/// name is an alias (Debian's netfilter-persistent is also `iptables.service`
/// and `ip6tables.service`), whose unit gets the drop-in under its own name;
/// a link to /dev/null is masked, and never starts.
pub fn installed_services() -> Vec<&'static str> {
    RESTORE_AFTER.iter().copied().filter(|service| is_unit_of_its_own(service)).collect()
}

fn is_unit_of_its_own(service: &str) -> bool {
    let Some(path) = UNIT_PATH.iter().map(|dir| Path::new(dir).join(service)).find(|p| p.symlink_metadata().is_ok())
    else {
        return false;
    };
    match std::fs::read_link(&path) {
        Ok(target) => target.file_name().is_some_and(|f| f == service),
        Err(_) => true,
    }
}

/// What the unit runs.
pub struct Command<'a> {
    /// The module's copy of itself.
    pub program: &'a Path,
    /// The saved request it restores.
    pub request: &'a Path,
    /// The state directory holding both (mounted before the unit runs).
    pub state_dir: &'a Path,
    /// The longest the restore may take, in seconds.
    pub timeout_secs: u64,
}

/// The unit's text. Its first line is the module's marker: a unit file of
/// this name without it belongs to someone else.
pub fn render(name: &str, marker: &str, version: &str, command: &Command) -> String {
    let services = FIREWALL_SERVICES.join(" ");
    let exec = format!("{} --restore {}", command.program.display(), command.request.display());
    let mut text = String::new();
    let _ = writeln!(text, "# {marker}");
    let _ = writeln!(
        text,
        "# Written by open_ports (portmatrix {version}); open_ports with name={name} and state: absent (or\n\
         # persist: false) removes it. Puts that name's firewall rules back at boot, before the\n\
         # network is configured, and right after a firewall service of the distribution\n\
         # (re)loads its ruleset (see the drop-ins in those services). Its journal holds each\n\
         # restore's result."
    );
    let _ = write!(
        text,
        "[Unit]\n\
         Description=Firewall rules of open_ports {name} (portmatrix)\n\
         DefaultDependencies=no\n\
         Wants=network-pre.target\n\
         Before=network-pre.target shutdown.target\n\
         After=local-fs.target {services}\n\
         Conflicts=shutdown.target\n\
         RequiresMountsFor={state}\n\
         StartLimitIntervalSec=0\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={exec}\n\
         ExecReload={exec}\n\
         TimeoutStartSec={timeout}\n\
         \n\
         [Install]\n\
         WantedBy={BOOT_TARGET}\n",
        state = command.state_dir.display(),
        timeout = command.timeout_secs,
    );
    text
}

/// The drop-in of a firewall service: `systemctl` (its absolute path)
/// restarts the unit after the service starts and, when `reloads`, after it
/// reloads. firewalld's only wants the follower, which restarts the unit
/// once firewalld has loaded its rules and after each reload: firewalld is
/// `Type=dbus`, started as soon as it has its bus name, before it loads its
/// rules, so a restart queued by `ExecStartPost=` could run under them (and
/// be flushed, or find no table to hook into).
pub fn render_dropin(name: &str, marker: &str, service: &str, systemctl: &Path, reloads: bool) -> String {
    let unit = unit_name(name);
    if service == super::follow::FIREWALLD {
        let follower = follower_name(name);
        return format!(
            "# {marker}\n\
             # Written by open_ports: while {service} runs, {follower}\n\
             # has {unit} put the rules of open_ports name={name} back after each reload.\n\
             [Unit]\n\
             Wants={follower}\n"
        );
    }
    let restart = format!("-{} restart --no-block {unit}", systemctl.display());
    let mut text = format!(
        "# {marker}\n\
         # Written by open_ports: after {service} loads its ruleset, which flushes the\n\
         # firewall, {unit} puts the rules of open_ports name={name} back.\n\
         [Service]\n\
         ExecStartPost={restart}\n"
    );
    if reloads {
        let _ = writeln!(text, "ExecReload={restart}");
    }
    text
}

/// The follower's text: `program --follow-firewalld UNIT` while firewalld
/// runs: wanted by its drop-in, and `BindsTo=` it, so that it ends whenever
/// firewalld does (a stop, a restart, a crash or a kill: `PartOf=` would
/// miss the last two, and a follower left from a firewalld that died would
/// wait for the signals of one that never comes back), and the next
/// firewalld's start brings a fresh one. Started again should it fail. No
/// `[Install]`: firewalld pulls it in. No start limit: firewalld restarted
/// a few times in a row starts it as often, and a follower refused by the
/// limit would leave the rules out after the next reload.
pub fn render_follower(name: &str, marker: &str, version: &str, command: &Command) -> String {
    let unit = unit_name(name);
    format!(
        "# {marker}\n\
         # Written by open_ports (portmatrix {version}); open_ports with name={name} and state: absent (or\n\
         # persist: false) removes it. firewall-cmd --reload replaces the firewall over D-Bus,\n\
         # which systemd never sees: this restarts {unit} after each reload.\n\
         [Unit]\n\
         Description=Rules of open_ports {name} back after each firewalld reload (portmatrix)\n\
         After=dbus.service firewalld.service\n\
         BindsTo=firewalld.service\n\
         RequiresMountsFor={state}\n\
         StartLimitIntervalSec=0\n\
         \n\
         [Service]\n\
         ExecStart={program} --follow-firewalld {unit}\n\
         Restart=on-failure\n\
         RestartSec=5\n",
        state = command.state_dir.display(),
        program = command.program.display(),
    )
}

/// Whether a service has an `ExecReload=` of its own, from `systemctl cat`
/// output (every file of the unit under a `# PATH` line), leaving out the
/// module's own drop-ins (of any name).
pub fn reloads(cat: &str) -> bool {
    let mut ours = false;
    for line in cat.lines() {
        if let Some(path) = line.strip_prefix("# /") {
            ours = path.rsplit('/').next().is_some_and(|f| f.starts_with(PREFIX));
        } else if !ours && line.trim_start().strip_prefix("ExecReload=").is_some_and(|v| !v.trim().is_empty()) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command of the name `web`, as `Plan::new` makes it with the defaults.
    fn web_command() -> Command<'static> {
        Command {
            program: Path::new("/var/lib/portmatrix/open_ports/web/open_ports"),
            request: Path::new("/var/lib/portmatrix/open_ports/web/request.json"),
            state_dir: Path::new("/var/lib/portmatrix/open_ports/web"),
            timeout_secs: 420,
        }
    }

    #[test]
    fn the_unit_runs_before_the_network_and_after_every_firewall_service() {
        let command = web_command();
        let text = render("web", "portmatrix open_ports web", "0.1.0", &command);
        assert!(text.starts_with("# portmatrix open_ports web\n"));
        let lines: Vec<&str> = text.lines().collect();
        let services =
            "nftables.service netfilter-persistent.service iptables.service ip6tables.service firewalld.service";
        for line in [
            "DefaultDependencies=no".to_string(),
            "Wants=network-pre.target".into(),
            "Before=network-pre.target shutdown.target".into(),
            format!("After=local-fs.target {services}"),
            "ExecStart=/var/lib/portmatrix/open_ports/web/open_ports --restore \
             /var/lib/portmatrix/open_ports/web/request.json"
                .into(),
            "RequiresMountsFor=/var/lib/portmatrix/open_ports/web".into(),
            "TimeoutStartSec=420".into(),
            "StartLimitIntervalSec=0".into(),
            "WantedBy=multi-user.target".into(),
        ] {
            assert!(lines.contains(&line.as_str()), "{line}\n{text}");
        }
        assert!(!text.contains("Requires=") && !text.contains("BindsTo="), "nothing waits on the unit's success");
        assert_eq!(
            link_path("web"),
            Path::new("/etc/systemd/system/multi-user.target.wants/portmatrix-open_ports-web.service")
        );
    }

    #[test]
    fn the_follower_runs_with_firewalld_and_restarts_the_unit() {
        let command = web_command();
        let text = render_follower("web", "portmatrix open_ports web", "0.1.0", &command);
        assert!(text.starts_with("# portmatrix open_ports web\n"));
        let lines: Vec<&str> = text.lines().collect();
        for line in [
            "BindsTo=firewalld.service",
            "StartLimitIntervalSec=0",
            "After=dbus.service firewalld.service",
            "ExecStart=/var/lib/portmatrix/open_ports/web/open_ports --follow-firewalld portmatrix-open_ports-web.service",
            "Restart=on-failure",
        ] {
            assert!(lines.contains(&line), "{line}\n{text}");
        }
        assert!(!text.contains("[Install]"));
        // The follower of web would be the unit of the name firewalld@web,
        // which no name can be.
        assert_eq!(follower_name("web"), unit_name("firewalld@web"));
        assert!(!crate::options::valid_name("firewalld@web"));
    }

    #[test]
    fn the_firewall_services_are_all_restored_after_and_only_they_order_the_unit() {
        assert!(FIREWALL_SERVICES.iter().all(|s| RESTORE_AFTER.contains(s)));
        assert!(!FIREWALL_SERVICES.contains(&"docker.service"), "docker comes after the network: a cycle");
    }

    #[test]
    fn a_dropin_restarts_the_unit_after_the_service_without_waiting_and_reloads_only_if_it_can() {
        let systemctl = Path::new("/bin/systemctl");
        let text = render_dropin("web", "portmatrix open_ports web", "nftables.service", systemctl, true);
        assert!(text.starts_with("# portmatrix open_ports web\n"));
        let restart = "-/bin/systemctl restart --no-block portmatrix-open_ports-web.service";
        assert!(text.contains(&format!("\nExecStartPost={restart}\n")), "{text}");
        assert!(text.contains(&format!("\nExecReload={restart}\n")), "{text}");
        assert!(!render_dropin("web", "m", "netfilter-persistent.service", systemctl, false).contains("ExecReload"));
        assert!(!text.contains("Wants="), "only firewalld's wants the follower");
        let firewalld = render_dropin("web", "m", "firewalld.service", systemctl, true);
        assert!(firewalld.ends_with("[Unit]\nWants=portmatrix-open_ports-firewalld@web.service\n"), "{firewalld}");
        assert!(!firewalld.contains("Exec"), "the follower restarts the unit once firewalld is ready: {firewalld}");
        assert_eq!(
            dropin_path("web", "nftables.service"),
            Path::new("/etc/systemd/system/nftables.service.d/portmatrix-open_ports-web.conf")
        );
        let cat = "# /lib/systemd/system/nftables.service\n[Service]\nExecReload=/usr/sbin/nft -f /etc/nftables.conf\n";
        assert!(reloads(cat));
        let only_ours = "# /lib/systemd/system/np.service\n[Service]\nExecStart=/x\n\n\
            # /etc/systemd/system/np.service.d/portmatrix-open_ports-web.conf\n[Service]\nExecReload=-/bin/x\n";
        assert!(!reloads(only_ours), "the module's own ExecReload does not count");
    }
}
