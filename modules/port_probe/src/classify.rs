//! What an answer from the network means, as nmap reads it: `open` (a TCP
//! handshake, or a UDP reply), `refused` (nmap's closed: a TCP reset or an
//! ICMP port unreachable, so the packet got through and nothing listens),
//! `filtered` (no answer, or an ICMP error saying a router or firewall kept
//! the packet), and for UDP without a reply and without an ICMP error,
//! `open|filtered`: either may be true, and it is reported as that, never
//! guessed.
//!
//! The kernel hands ICMP errors to a socket as errno values (Linux
//! `icmp_err_convert` for IPv4, `icmpv6_err_convert` for IPv6): port
//! unreachable is `ECONNREFUSED`; administratively prohibited is
//! `EHOSTUNREACH` (IPv4 codes 9, 10, 13) or `EACCES` (`ICMPv6` code 1);
//! network unreachable and its prohibited form are `ENETUNREACH`.

use std::io;

use serde::Serialize;

use crate::options::{Expected, Proto};

/// What the network answered to one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Observed {
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "refused")]
    Refused,
    #[serde(rename = "filtered")]
    Filtered,
    /// UDP: no reply, no ICMP error.
    #[serde(rename = "open|filtered")]
    OpenFiltered,
    /// The probe could not be sent (this node's own problem: no free local
    /// port, too many open files); says nothing about the network.
    #[serde(rename = "error")]
    Error,
}

impl Observed {
    /// As in results and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Observed::Open => "open",
            Observed::Refused => "refused",
            Observed::Filtered => "filtered",
            Observed::OpenFiltered => "open|filtered",
            Observed::Error => "error",
        }
    }

    /// Final: another attempt would not change it (a filtered probe may
    /// have lost its packet; a UDP reply or an ICMP error may have been
    /// rate-limited).
    pub fn is_final(self) -> bool {
        matches!(self, Observed::Open | Observed::Refused | Observed::Error)
    }
}

/// An observation and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub observed: Observed,
    pub reason: String,
}

impl Classified {
    pub fn new(observed: Observed, reason: impl Into<String>) -> Self {
        Classified { observed, reason: reason.into() }
    }
}

/// What a failed connect (TCP) or receive (UDP) says about the network.
pub fn from_error(proto: Proto, error: &io::Error, timeout_ms: u128) -> Classified {
    if matches!(error.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
        return match proto {
            Proto::Tcp => Classified::new(Observed::Filtered, format!("no answer in {timeout_ms} ms")),
            Proto::Udp => {
                Classified::new(Observed::OpenFiltered, format!("no reply and no ICMP error in {timeout_ms} ms"))
            }
        };
    }
    let (observed, reason) = match error.raw_os_error() {
        Some(ECONNREFUSED) => match proto {
            Proto::Tcp => (Observed::Refused, "connection refused (a TCP reset or ICMP port unreachable)"),
            Proto::Udp => (Observed::Refused, "ICMP port unreachable"),
        },
        Some(EHOSTUNREACH) => (Observed::Filtered, "ICMP host unreachable or administratively prohibited"),
        Some(EACCES) => (Observed::Filtered, "ICMPv6 administratively prohibited"),
        Some(ENETUNREACH) => (Observed::Filtered, "network unreachable (no route here, or ICMP network unreachable)"),
        Some(EHOSTDOWN | ENONET) => (Observed::Filtered, "host down or isolated (ICMP)"),
        // A local OUTPUT rule that drops or rejects makes the socket call fail.
        Some(EPERM) => (Observed::Filtered, "this node's own firewall does not let the packet out (EPERM)"),
        _ => return Classified::new(Observed::Error, format!("the probe could not be made: {error}")),
    };
    Classified::new(observed, reason)
}

// Linux errno values (asm-generic/errno-base.h, errno.h); the same on
// every architecture portmatrix builds for.
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const ENONET: i32 = 64;
const ENETUNREACH: i32 = 101;
const ECONNREFUSED: i32 = 111;
const EHOSTDOWN: i32 = 112;
const EHOSTUNREACH: i32 = 113;

/// How a probe compares with what was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Mismatch,
    /// Neither: `open|filtered` could be either.
    Ambiguous,
}

/// What a responder's token said, when one was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Nothing was read (not asked for, or the port is not open).
    NotRead,
    /// The port answered, but not with a responder's line.
    Missing,
    /// A responder answered, as `node` on `port`.
    Node { node: String, port: u16 },
}

/// The verdict, and for a mismatch the words after `observed,` in its
/// message (`expected reachable`).
pub fn judge(
    expected: Expected,
    classified: &Classified,
    port: u16,
    want_node: Option<&str>,
    token: &Token,
) -> (Verdict, String) {
    let observed = classified.observed;
    let verdict = match (expected, observed) {
        (_, Observed::OpenFiltered) => return (Verdict::Ambiguous, format!("expected {}", word(expected))),
        (_, Observed::Error) => return (Verdict::Mismatch, format!("expected {}", word(expected))),
        (Expected::Reachable, Observed::Open | Observed::Refused) | (Expected::Blocked, Observed::Filtered) => {
            Verdict::Ok
        }
        _ => Verdict::Mismatch,
    };
    let plain = format!("expected {}", word(expected));
    let Some(want) = want_node.filter(|_| expected == Expected::Reachable && verdict == Verdict::Ok) else {
        return (verdict, plain);
    };
    // The port must be open, and the responder on it the one meant.
    let problem = match (observed, token) {
        (Observed::Refused, _) => format!("expected {want}'s responder to answer (nothing listens there)"),
        (_, Token::Node { node, port: theirs }) if node == want && *theirs == port => return (Verdict::Ok, plain),
        (_, Token::Node { node, port: theirs }) if node == want => {
            format!("answered by {node}'s responder on port {theirs} (a DNAT rule?), expected port {port}")
        }
        (_, Token::Node { node, .. }) => {
            format!("answered by {node}'s responder, expected {want}'s (another node behind a NAT?)")
        }
        _ => format!("answered without a responder's token, expected {want}'s responder"),
    };
    (Verdict::Mismatch, problem)
}

fn word(expected: Expected) -> &'static str {
    match expected {
        Expected::Reachable => "reachable",
        Expected::Blocked => "blocked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errors_read_as_nmap_reads_them() {
        let cases = [
            (Proto::Tcp, os(ECONNREFUSED), Observed::Refused),
            (Proto::Udp, os(ECONNREFUSED), Observed::Refused),
            (Proto::Tcp, os(EHOSTUNREACH), Observed::Filtered),
            (Proto::Udp, os(EACCES), Observed::Filtered),
            (Proto::Tcp, os(ENETUNREACH), Observed::Filtered),
            (Proto::Tcp, os(EPERM), Observed::Filtered),
            (Proto::Tcp, io::Error::from(io::ErrorKind::TimedOut), Observed::Filtered),
            (Proto::Udp, io::Error::from(io::ErrorKind::WouldBlock), Observed::OpenFiltered),
            (Proto::Tcp, os(99), Observed::Error),
        ];
        for (proto, error, observed) in cases {
            assert_eq!(from_error(proto, &error, 1000).observed, observed, "{proto:?} {error}");
        }
    }

    #[test]
    fn reachable_is_open_or_refused_and_blocked_is_filtered() {
        let c = |o| Classified::new(o, "");
        let v = |e, o| judge(e, &c(o), 80, None, &Token::NotRead).0;
        assert_eq!(v(Expected::Reachable, Observed::Open), Verdict::Ok);
        assert_eq!(v(Expected::Reachable, Observed::Refused), Verdict::Ok);
        assert_eq!(v(Expected::Reachable, Observed::Filtered), Verdict::Mismatch);
        assert_eq!(v(Expected::Blocked, Observed::Filtered), Verdict::Ok);
        assert_eq!(v(Expected::Blocked, Observed::Open), Verdict::Mismatch);
        assert_eq!(v(Expected::Blocked, Observed::Refused), Verdict::Mismatch);
        assert_eq!(v(Expected::Blocked, Observed::OpenFiltered), Verdict::Ambiguous);
        assert_eq!(v(Expected::Reachable, Observed::OpenFiltered), Verdict::Ambiguous);
        assert_eq!(v(Expected::Reachable, Observed::Error), Verdict::Mismatch);
    }

    #[test]
    fn with_a_node_only_its_own_responder_on_that_port_is_ok() {
        let open = Classified::new(Observed::Open, "");
        let node = |n: &str, p| Token::Node { node: n.into(), port: p };
        let j = |token: &Token| judge(Expected::Reachable, &open, 2181, Some("m1"), token);
        assert_eq!(j(&node("m1", 2181)).0, Verdict::Ok);
        assert!(j(&node("m2", 2181)).1.contains("answered by m2's responder, expected m1's"));
        assert!(j(&node("m1", 2182)).1.contains("on port 2182"));
        assert!(j(&Token::Missing).1.contains("without a responder's token"));
        let refused = Classified::new(Observed::Refused, "");
        assert_eq!(judge(Expected::Reachable, &refused, 2181, Some("m1"), &Token::NotRead).0, Verdict::Mismatch);
        // Blocked is blocked, whoever would have answered.
        let filtered = Classified::new(Observed::Filtered, "");
        assert_eq!(judge(Expected::Blocked, &filtered, 2181, Some("m1"), &Token::NotRead).0, Verdict::Ok);
    }
}
