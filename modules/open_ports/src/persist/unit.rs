//! The systemd unit that puts the module's rules back: its name, its text
//! and where it is linked from. Facts about systemd's ordering are from
//! systemd.unit(5), systemd.special(7) (network-pre.target: "used by
//! services that want to run before any network is configured, such as
//! firewalls") and the firewall services' own units as Debian 12 and RHEL
//! ship them, each `Before=network-pre.target`.
//!
//! - At boot: `Before=network-pre.target` with `Wants=` it (so the target is
//!   in the boot transaction even where no network service pulls it in), and
//!   `DefaultDependencies=no`, as a firewall unit must be to run that early.
//!   Ordered after every firewall service of the distribution, since each
//!   loads or flushes the whole ruleset: the module's rules go in on top of
//!   the host's, never under a flush. A failure or a hang (bounded by
//!   `TimeoutStartSec`) delays nothing else: no unit requires this one, so a
//!   host whose own rules drop by default keeps exactly those rules.
//! - After a firewall service restarts, reloads or starts again: `PartOf=`
//!   (its stop and restart propagate here), `ReloadPropagatedFrom=` (its
//!   reload does, run as `ExecReload=` after it), and a `.wants` link of
//!   each installed one (its start starts this one again, which a stop left
//!   stopped). `After=` orders all of these after the service's own job.
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

/// Where the module writes its unit and links: the administrator's directory.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// The firewall services of the distributions that load, reload or flush
/// the whole ruleset: nftables (`flush ruleset` in its stock config),
/// netfilter-persistent (Debian's iptables-persistent), iptables and
/// ip6tables (RHEL's iptables-services), firewalld.
pub const FIREWALL_SERVICES: &[&str] =
    &["nftables.service", "netfilter-persistent.service", "iptables.service", "ip6tables.service", "firewalld.service"];

/// The boot target whose `.wants` link starts the unit at boot.
pub const BOOT_TARGET: &str = "multi-user.target";

/// The unit of the module's objects of `name`.
pub fn unit_name(name: &str) -> String {
    format!("portmatrix-open_ports-{name}.service")
}

/// The unit's file.
pub fn unit_path(name: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(unit_name(name))
}

/// The link in `WANTER.wants/` that pulls the unit in.
pub fn link_path(name: &str, wanter: &str) -> PathBuf {
    Path::new(UNIT_DIR).join(format!("{wanter}.wants")).join(unit_name(name))
}

/// The firewall services that are installed (a unit file of that name in
/// the unit search path, masked ones included).
pub fn installed_firewall_services() -> Vec<&'static str> {
    FIREWALL_SERVICES
        .iter()
        .copied()
        .filter(|service| UNIT_PATH.iter().any(|dir| Path::new(dir).join(service).symlink_metadata().is_ok()))
        .collect()
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
/// this name without it belongs to someone else. `wanted_by` are the units
/// whose `.wants` links the module makes, repeated in `[Install]` so that
/// `systemctl enable`/`disable` agree with them.
pub fn render(name: &str, marker: &str, version: &str, command: &Command, wanted_by: &[&str]) -> String {
    let services = FIREWALL_SERVICES.join(" ");
    let exec = format!("{} --restore {}", command.program.display(), command.request.display());
    let mut text = String::new();
    let _ = writeln!(text, "# {marker}");
    let _ = writeln!(
        text,
        "# Written by open_ports (portmatrix {version}); open_ports with name={name} and state: absent (or\n\
         # persist: false) removes it. Puts that name's firewall rules back at boot, before the\n\
         # network is configured, and right after a firewall service of the distribution\n\
         # (re)loads or flushes its ruleset. Its journal holds each restore's result."
    );
    let _ = write!(
        text,
        "[Unit]\n\
         Description=Firewall rules of open_ports {name} (portmatrix)\n\
         DefaultDependencies=no\n\
         Wants=network-pre.target\n\
         Before=network-pre.target shutdown.target\n\
         After=local-fs.target {services}\n\
         PartOf={services}\n\
         ReloadPropagatedFrom={services}\n\
         Conflicts=shutdown.target\n\
         RequiresMountsFor={state}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart={exec}\n\
         ExecReload={exec}\n\
         TimeoutStartSec={timeout}\n\
         \n\
         [Install]\n\
         WantedBy={wanted}\n",
        state = command.state_dir.display(),
        timeout = command.timeout_secs,
        wanted = wanted_by.join(" "),
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_before_the_network_and_after_every_firewall_service() {
        let command = Command {
            program: Path::new("/var/lib/portmatrix/open_ports/web/open_ports"),
            request: Path::new("/var/lib/portmatrix/open_ports/web/request.json"),
            state_dir: Path::new("/var/lib/portmatrix/open_ports/web"),
            timeout_secs: 420,
        };
        let text =
            render("web", "portmatrix open_ports web", "0.1.0", &command, &["multi-user.target", "nftables.service"]);
        assert!(text.starts_with("# portmatrix open_ports web\n"));
        let lines: Vec<&str> = text.lines().collect();
        let services =
            "nftables.service netfilter-persistent.service iptables.service ip6tables.service firewalld.service";
        for line in [
            "DefaultDependencies=no".to_string(),
            "Wants=network-pre.target".into(),
            "Before=network-pre.target shutdown.target".into(),
            format!("After=local-fs.target {services}"),
            format!("PartOf={services}"),
            format!("ReloadPropagatedFrom={services}"),
            "ExecStart=/var/lib/portmatrix/open_ports/web/open_ports --restore /var/lib/portmatrix/open_ports/web/request.json".into(),
            "RequiresMountsFor=/var/lib/portmatrix/open_ports/web".into(),
            "TimeoutStartSec=420".into(),
            "WantedBy=multi-user.target nftables.service".into(),
        ] {
            assert!(lines.contains(&line.as_str()), "{line}\n{text}");
        }
        assert!(!text.contains("Requires=") && !text.contains("BindsTo="), "nothing waits on the unit's success");
        assert_eq!(
            link_path("web", "nftables.service"),
            Path::new("/etc/systemd/system/nftables.service.wants/portmatrix-open_ports-web.service")
        );
    }
}
