//! The sockets that hold ports: listening TCP sockets and bound, unconnected
//! UDP sockets of the network namespace the module runs in.
//!
//! Read with netlink `sock_diag` (the kernel's `inet_diag`, what `ss` uses)
//! rather than by parsing `/proc/net/{tcp,tcp6,udp,udp6}`, because:
//! - the kernel filters by state: a dump of LISTEN sockets walks only the
//!   listening hash, while `/proc/net/tcp` prints every socket, established
//!   and `TIME_WAIT` included, and walks the whole connection hash table to do
//!   it. On a busy agent that is tens of thousands of lines to format and
//!   parse; even on an idle machine here it took ~6 ms against ~0.3 ms.
//! - the answer is binary (addresses, ports, inode, uid as numbers): no hex
//!   text in per-family layouts to get wrong.
//! - outbound and `TIME_WAIT` sockets never appear, so they cannot be mistaken
//!   for a conflict (DC/OS's own check greps `/proc/net/*` and counts them).
//!
//! The cost is three small crates (32 KiB, 5% of the static binary); the
//! message layout is theirs, the socket a plain blocking one.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla as _};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags, nlas::Nla};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket as NetlinkSocket, SocketAddr};

use crate::options::Proto;

/// A socket that holds a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub address: IpAddr,
    pub port: u16,
    /// The socket's inode, as in `/proc/PID/fd/N -> socket:[INODE]`. 0 for
    /// sockets the kernel itself holds (a VXLAN device's UDP port, nfsd).
    pub inode: u64,
    /// The socket's owner uid (who created it).
    pub uid: u32,
    /// The cgroup v2 id of the cgroup whose process created the socket
    /// (`INET_DIAG_CGROUP_ID`, Linux 5.7+; the inode number of that cgroup's
    /// directory), when the kernel gives it.
    pub cgroup_id: Option<u64>,
}

impl Socket {
    /// On 127.0.0.0/8, `::1` or `::ffff:127.0.0.0/104`: reachable only from this
    /// host. 0.0.0.0 and :: (a dual-stack socket accepts IPv4 too) are not.
    pub fn is_loopback(&self) -> bool {
        match self.address {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot open a netlink sock_diag socket")]
    Open(#[source] std::io::Error),
    #[error("cannot ask the kernel for the {what} sockets (netlink sock_diag)")]
    Io { what: String, source: std::io::Error },
    #[error(
        "the kernel refused to list the {what} sockets (netlink sock_diag error {code}); is the inet_diag / {module} kernel module available?"
    )]
    Refused { what: String, code: i32, module: &'static str },
    #[error("the kernel's answer about the {what} sockets could not be read: {detail}")]
    Garbled { what: String, detail: String },
}

/// TCP sockets in LISTEN; UDP sockets in the state ss calls UNCONN (the
/// kernel's `TCP_CLOSE)`: bound, not connected, so they receive from anyone.
/// A connected UDP socket is the local end of an outbound exchange.
pub fn read_sockets() -> Result<Vec<Socket>, SocketError> {
    let mut sockets = Vec::new();
    for proto in [Proto::Tcp, Proto::Udp] {
        for family in [AF_INET, AF_INET6] {
            dump(proto, family, &mut sockets)?;
        }
    }
    Ok(sockets)
}

/// Big enough for any dump message the kernel sends (it sizes them to the
/// reader's buffer, up to 32 KiB).
const RECEIVE_BUFFER: usize = 64 * 1024;

fn dump(proto: Proto, family: u8, into: &mut Vec<Socket>) -> Result<(), SocketError> {
    let what = format!("{proto}{}", if family == AF_INET { "" } else { "6" });
    let io = |source| SocketError::Io { what: what.clone(), source };
    let (protocol, states, module) = match proto {
        Proto::Tcp => (IPPROTO_TCP, StateFlags::LISTEN, "tcp_diag"),
        Proto::Udp => (IPPROTO_UDP, StateFlags::CLOSE, "udp_diag"),
    };
    let socket = NetlinkSocket::new(NETLINK_SOCK_DIAG).map_err(SocketError::Open)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(io)?;

    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET { SocketId::new_v4() } else { SocketId::new_v6() };
    let request = InetRequest { family, protocol, extensions: ExtensionFlags::empty(), states, socket_id };
    let mut packet = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
    packet.finalize();
    let mut out = vec![0; packet.buffer_len()];
    packet.serialize(&mut out);
    socket.send(&out, 0).map_err(io)?;

    let mut buffer = vec![0u8; RECEIVE_BUFFER];
    loop {
        let size = socket.recv(&mut &mut buffer[..], 0).map_err(io)?;
        let mut offset = 0;
        while offset < size {
            let message = <NetlinkMessage<SockDiagMessage>>::deserialize(&buffer[offset..size])
                .map_err(|e| SocketError::Garbled { what: what.clone(), detail: e.to_string() })?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                    let header = &response.header;
                    let id = &header.socket_id;
                    // A UDP socket that was never bound has no port; it holds nothing.
                    if id.source_port != 0 {
                        into.push(Socket {
                            proto,
                            address: id.source_address,
                            port: id.source_port,
                            inode: u64::from(header.inode),
                            uid: header.uid,
                            cgroup_id: cgroup_id(&response.nlas),
                        });
                    }
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(error) => {
                    let code = error.code.map_or(0, std::num::NonZero::get);
                    return Err(SocketError::Refused { what, code, module });
                }
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

/// `INET_DIAG_CGROUP_ID` (`include/uapi/linux/inet_diag.h`), which the crate
/// does not name: a u64 the kernel adds to every answer when it keeps
/// socket cgroup data.
const INET_DIAG_CGROUP_ID: u16 = 21;

fn cgroup_id(nlas: &[Nla]) -> Option<u64> {
    nlas.iter().find_map(|nla| match nla {
        Nla::Other(attr) if attr.kind() == INET_DIAG_CGROUP_ID && attr.value_len() == 8 => {
            let mut value = [0u8; 8];
            attr.emit_value(&mut value);
            Some(u64::from_ne_bytes(value))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(address: &str) -> Socket {
        Socket { proto: Proto::Tcp, address: address.parse().unwrap(), port: 1, inode: 1, uid: 0, cgroup_id: None }
    }

    #[test]
    fn loopback_means_reachable_only_from_this_host() {
        for address in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(socket(address).is_loopback(), "{address}");
        }
        for address in ["0.0.0.0", "::", "198.18.0.1", "::ffff:198.18.0.1", "fe80::1"] {
            assert!(!socket(address).is_loopback(), "{address}");
        }
    }
}
