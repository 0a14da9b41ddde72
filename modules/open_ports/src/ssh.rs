//! The SSH session that runs the module, from `SSH_CONNECTION`, so that
//! `enforce` never drops the session's own new connections.
//!
//! sshd sets `SSH_CONNECTION` to `CLIENT_ADDRESS CLIENT_PORT SERVER_ADDRESS
//! SERVER_PORT` (OpenSSH's session.c: `"%s %d %s %d"`). Addresses come from
//! `getnameinfo(NI_NUMERICHOST)`: dotted IPv4, IPv6 text with a `%zone` for a
//! link-local address, and, where a dual-stack socket is not normalised, an
//! IPv4-mapped IPv6 address. Brackets (`[2001:db8::1]`), as other tools write
//! addresses with ports, are accepted too. sshd writes `UNKNOWN 65535 UNKNOWN
//! 65535` for a session that is not on a network socket (a `ProxyCommand`
//! pipe, inetd): no packet of it crosses the firewall. A value that is set
//! but has none of these forms is an error: the guard must not guess "no
//! SSH" and lock the session out.
//!
//! `become` (sudo) drops `SSH_CONNECTION` from the environment (sudo's
//! `env_reset` keeps a short list without it), so the value is looked for in
//! the module's own environment first, then in its ancestors' (`/proc/PID/
//! environ`; the module runs as root): sudo itself, started from the SSH
//! session's shell, still has it.

use std::net::IpAddr;

/// A parsed `SSH_CONNECTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshConnection {
    /// The client's address; an IPv4-mapped IPv6 address is given as IPv4
    /// (the packets on the wire are IPv4).
    pub client: IpAddr,
    /// The address the client connected to.
    pub server: IpAddr,
    /// The port sshd listens on.
    pub server_port: u16,
}

/// `SSH_CONNECTION` is set but cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to apply: enforce=true and SSH_CONNECTION is set to {value:?}, which is not \
     \"CLIENT_ADDRESS CLIENT_PORT SERVER_ADDRESS SERVER_PORT\" ({problem}), so the module cannot tell whether \
     the rules would lock this session out; unset SSH_CONNECTION if this is not an SSH session. Nothing was changed"
)]
pub struct Unreadable {
    /// The value as it was set.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SshConnection {
    /// Parses a value in any form sshd produces (see the module doc); `None`
    /// for a session that is not on a network socket.
    pub fn parse(value: &str) -> Result<Option<SshConnection>, Unreadable> {
        let unreadable = |problem: String| Unreadable { value: value.to_string(), problem };
        let fields: Vec<&str> = value.split_ascii_whitespace().collect();
        if fields == ["UNKNOWN", "65535", "UNKNOWN", "65535"] {
            return Ok(None);
        }
        let [client, client_port, server, server_port] = fields.as_slice() else {
            return Err(unreadable(format!("{} fields instead of 4", fields.len())));
        };
        let client = address(client).ok_or_else(|| unreadable(format!("{client:?} is not an address")))?;
        let server = address(server).ok_or_else(|| unreadable(format!("{server:?} is not an address")))?;
        port(client_port).ok_or_else(|| unreadable(format!("{client_port:?} is not a port")))?;
        let server_port = port(server_port).ok_or_else(|| unreadable(format!("{server_port:?} is not a port")))?;
        Ok(Some(SshConnection { client, server, server_port }))
    }

    /// Whether the session's packets arrive on the loopback interface: from a
    /// loopback address, or from one of the host's own addresses (the kernel
    /// routes a connection to itself over `lo`).
    pub fn via_loopback(&self) -> bool {
        self.client.is_loopback() || self.client == self.server
    }
}

/// An address as sshd prints it, with optional brackets and `%zone`.
fn address(text: &str) -> Option<IpAddr> {
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    let (ip, zone) = match bare.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (bare, None),
    };
    let ip: IpAddr = ip.parse().ok()?;
    match (ip, zone) {
        // A zone only qualifies an IPv6 address, and names an interface.
        (IpAddr::V4(_), Some(_)) => None,
        (_, Some(zone)) if zone.is_empty() || !zone.bytes().all(|b| b.is_ascii_graphic()) => None,
        (IpAddr::V6(v6), _) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        (v4, None) => Some(v4),
    }
}

/// `SSH_CONNECTION` of this process, or of its nearest ancestor that has it
/// (see the module doc: sudo drops it). `None` when no ancestor has it.
pub fn session_value() -> Option<String> {
    if let Some(value) = std::env::var_os("SSH_CONNECTION") {
        return Some(value.to_string_lossy().into_owned());
    }
    let mut pid = parent_of("self")?;
    // A bound on the walk, whatever /proc says: no real chain is this deep.
    for _ in 0..64 {
        if pid <= 1 {
            return None;
        }
        if let Some(value) = environment_value(pid, "SSH_CONNECTION") {
            return Some(value);
        }
        pid = parent_of(&pid.to_string())?;
    }
    None
}

/// The parent pid from `/proc/PID/stat`: the fourth field, counted after
/// the command name, which is in parentheses and may hold spaces.
fn parent_of(pid: &str) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// One variable of a process's environment, read with a bound.
fn environment_value(pid: u32, name: &str) -> Option<String> {
    use std::io::Read;
    let mut environ = Vec::new();
    let file = std::fs::File::open(format!("/proc/{pid}/environ")).ok()?;
    file.take(1 << 20).read_to_end(&mut environ).ok()?;
    let prefix = format!("{name}=");
    environ
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

fn port(text: &str) -> Option<u16> {
    text.bytes().all(|b| b.is_ascii_digit()).then(|| text.parse().ok()).flatten().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SshConnection, Unreadable> {
        SshConnection::parse(text).map(|c| c.expect("a network session"))
    }

    #[test]
    fn a_session_not_on_a_socket_has_no_packets_to_guard() {
        assert_eq!(SshConnection::parse("UNKNOWN 65535 UNKNOWN 65535"), Ok(None));
        assert!(SshConnection::parse("UNKNOWN 65535 198.18.0.1 22").is_err());
    }

    #[test]
    fn parents_and_environments_are_read_from_proc() {
        assert_eq!(parent_of("self"), Some(std::os::unix::process::parent_id()));
        let me = std::process::id();
        assert_eq!(environment_value(me, "PATH"), std::env::var("PATH").ok());
        assert_eq!(environment_value(me, "PORTMATRIX_NOT_SET_ANYWHERE"), None);
    }

    #[test]
    fn every_form_sshd_prints_is_understood() {
        let ok = |text: &str, client: &str, server_port: u16| {
            let conn = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((conn.client, conn.server_port), (client.parse().unwrap(), server_port), "{text}");
        };
        ok("198.18.5.9 50000 198.18.5.1 22", "198.18.5.9", 22);
        ok("2001:db8::5 50000 2001:db8::1 2222", "2001:db8::5", 2222);
        ok("[2001:db8::5] 50000 [2001:db8::1] 22", "2001:db8::5", 22);
        ok("fe80::5%eth0 50000 fe80::1%eth0 22", "fe80::5", 22);
        ok("fe80::5%2 50000 fe80::1%2 22", "fe80::5", 22);
        ok("::ffff:198.18.5.9 50000 ::ffff:198.18.5.1 22", "198.18.5.9", 22);
        ok("  198.18.5.9\t50000 198.18.5.1 22\n", "198.18.5.9", 22);
    }

    #[test]
    fn anything_else_is_an_error_quoting_the_value() {
        for bad in [
            "",
            "garbage",
            "198.18.5.9 50000 198.18.5.1",
            "198.18.5.9 50000 198.18.5.1 22 extra",
            "198.18.5.9 50000 198.18.5.1 99999",
            "198.18.5.9 50000 198.18.5.1 0",
            "198.18.5.9 50000 198.18.5.1 -22",
            "198.18.5.9 50000 198.18.5.1 +22",
            "198.18.5.300 50000 198.18.5.1 22",
            "host.example 50000 198.18.5.1 22",
            "198.18.5.9%eth0 50000 198.18.5.1 22",
            "fe80::5% 50000 fe80::1 22",
            "[2001:db8::5 50000 2001:db8::1 22",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("SSH_CONNECTION is set to {bad:?}")), "{err}");
        }
    }

    #[test]
    fn loopback_sessions_are_recognised() {
        assert!(parse("127.0.0.1 50000 127.0.0.1 22").unwrap().via_loopback());
        assert!(parse("::ffff:127.0.0.1 50000 ::ffff:127.0.0.1 22").unwrap().via_loopback());
        assert!(parse("::1 50000 ::1 22").unwrap().via_loopback());
        assert!(parse("198.18.5.1 50000 198.18.5.1 22").unwrap().via_loopback(), "to its own address");
        assert!(!parse("198.18.5.9 50000 198.18.5.1 22").unwrap().via_loopback());
    }
}
