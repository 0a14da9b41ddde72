//! Socket activation: systemd (PID 1) opens the listening socket of a
//! `.socket` unit and holds it until, and after, the service it activates
//! starts. Which unit a socket of PID 1's belongs to is known to the manager
//! only: the kernel keeps no unit, PID 1's `/proc/1/fd` entries and fdinfo
//! carry no name, and unit files alone do not say (drop-ins, generators,
//! templates and units made at run time all change `Listen*=`).
//!
//! So the module asks the manager, once, with `systemctl list-sockets --all
//! --show-types --full --no-legend`: every socket unit's listening addresses
//! with their type and the units each activates, one row per address (the
//! columns of systemd 252, which the container test reads; `list-sockets`
//! and `--show-types` are older than any systemd still shipped). It needs no Python
//! and no D-Bus client (the D-Bus way, `busctl`, takes a call per unit), and
//! exists wherever systemd is PID 1. Only IP sockets (`Stream`: TCP,
//! `Datagram`: UDP) are kept; a row whose address is not `ADDR:PORT` (a
//! path, `audit 1`) is no port.

use std::net::{IpAddr, SocketAddr};

use portmatrix_host::tools::{ToolError, Tools};

use crate::options::Proto;

/// The most `systemctl list-sockets` may print: a row per listening address
/// of every socket unit is a few KiB on any host.
const MAX_OUTPUT: usize = 16 << 20;

/// The types `systemctl list-sockets --show-types` prints (systemd's
/// `socket_port_type_to_string`), by which its columns are told apart: a
/// listening address may hold a space (`audit 1`).
const TYPES: &[&str] =
    &["Stream", "Datagram", "SequentialPacket", "FIFO", "Special", "MessageQueue", "Netlink", "USBFunction"];

/// One listening IP address of a socket unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketUnit {
    pub proto: Proto,
    pub address: IpAddr,
    pub port: u16,
    /// The `.socket` unit.
    pub unit: String,
    /// The units it activates (`Service=`, by default the `.service` of the
    /// same name; a template for `Accept=yes`).
    pub activates: Vec<String>,
}

/// The socket units' IP addresses, from the running system manager
/// (systemctl found on the module's PATH, run with `tools`' time bound).
pub fn read(tools: &Tools) -> Result<Vec<SocketUnit>, ToolError> {
    let args = ["list-sockets", "--all", "--show-types", "--full", "--no-legend", "--no-pager"];
    let text = tools.clone().with_max_output(MAX_OUTPUT).run("systemctl", &args, None)?;
    Ok(parse(&text))
}

/// The IP rows of `systemctl list-sockets --all --show-types --full
/// --no-legend` output: `LISTEN TYPE UNIT ACTIVATES...`.
pub fn parse(text: &str) -> Vec<SocketUnit> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let kind = words.iter().position(|w| TYPES.contains(w))?;
            let proto = match words[kind] {
                "Stream" => Proto::Tcp,
                "Datagram" => Proto::Udp,
                _ => return None,
            };
            let listen: SocketAddr = words[..kind].join(" ").parse().ok()?;
            let unit = (*words.get(kind + 1)?).to_string();
            let activates = words[kind + 2..]
                .iter()
                .flat_map(|w| w.split(','))
                .filter(|w| !w.is_empty() && *w != "-")
                .map(str::to_string)
                .collect();
            Some(SocketUnit { proto, address: listen.ip(), port: listen.port(), unit, activates })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_rows_with_their_units_and_what_they_activate() {
        // systemd 252 (Debian 12), as printed.
        let text = "\
/run/dbus/system_bus_socket  Stream   dbus.socket                     dbus.service
/run/systemd/journal/dev-log Datagram systemd-journald-dev-log.socket systemd-journald.service
0.0.0.0:9092                 Datagram demo.socket                     demo.service
127.0.0.1:9091               Stream   demo.socket                     demo.service
[::]:9090                    Stream   demo.socket                     demo.service other.service
[::]:22                      Stream   sshd.socket                     sshd@.service
audit 1                      Netlink  systemd-journald-audit.socket   systemd-journald.service
[::]:7                       Stream   idle.socket
";
        let units = parse(text);
        let shown: Vec<(Proto, String, u16, &str, Vec<String>)> = units
            .iter()
            .map(|u| (u.proto, u.address.to_string(), u.port, u.unit.as_str(), u.activates.clone()))
            .collect();
        let v = |names: &[&str]| names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>();
        assert_eq!(
            shown,
            [
                (Proto::Udp, "0.0.0.0".to_string(), 9092, "demo.socket", v(&["demo.service"])),
                (Proto::Tcp, "127.0.0.1".to_string(), 9091, "demo.socket", v(&["demo.service"])),
                (Proto::Tcp, "::".to_string(), 9090, "demo.socket", v(&["demo.service", "other.service"])),
                (Proto::Tcp, "::".to_string(), 22, "sshd.socket", v(&["sshd@.service"])),
                (Proto::Tcp, "::".to_string(), 7, "idle.socket", v(&[])),
            ]
        );
    }
}
