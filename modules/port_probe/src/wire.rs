//! What `port_probe` and `port_responder` say to each other, written once
//! for both: one ASCII line each way, so that a prober knows it reached the
//! node it meant (not another one behind a NAT) and the port it meant (not
//! one a DNAT rule sent it to).
//!
//! - TCP: on accept, the responder sends `PORTMATRIX-RESPONDER/1 node=NAME port=PORT\n`
//!   and closes; the prober sends nothing.
//! - UDP: the prober sends `PORTMATRIX-PROBE/1 nonce=HEX\n`; the responder
//!   answers `PORTMATRIX-RESPONDER/1 node=NAME port=PORT nonce=HEX\n`, so that
//!   a late answer to an earlier attempt is not taken for this one.

use std::fmt::Write as _;

const RESPONDER: &str = "PORTMATRIX-RESPONDER/1";
const PROBE: &str = "PORTMATRIX-PROBE/1";

/// Longer than any line either side sends (a node name is at most 253 bytes).
pub const MAX_LINE: usize = 512;

/// What a responder said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub node: String,
    pub port: u16,
    pub nonce: Option<String>,
}

/// The line a TCP responder sends on accept.
pub fn greeting(node: &str, port: u16) -> String {
    format!("{RESPONDER} node={node} port={port}\n")
}

/// A UDP responder's answer to a probe carrying `nonce`.
pub fn answer(node: &str, port: u16, nonce: &str) -> String {
    format!("{RESPONDER} node={node} port={port} nonce={nonce}\n")
}

/// A probe datagram's length: padded with spaces to more than any answer
/// (a node name is at most 253 bytes), so that a responder, which answers
/// only probes at least this long, never sends more than it receives and
/// cannot amplify spoofed traffic.
pub const PROBE_LEN: usize = 340;

/// The datagram a UDP probe sends, [`PROBE_LEN`] bytes.
pub fn probe(nonce: u64) -> String {
    let mut line = format!("{PROBE} nonce=");
    let _ = write!(line, "{nonce:016x}");
    while line.len() < PROBE_LEN - 1 {
        line.push(' ');
    }
    line.push('\n');
    line
}

/// The nonce of a probe datagram; `None` for anything else, a shorter one
/// included (a responder answers nothing else, so it cannot be used to
/// reflect or amplify traffic).
pub fn parse_probe(bytes: &[u8]) -> Option<String> {
    if bytes.len() < PROBE_LEN {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?.trim_end_matches(' ');
    let nonce = text.strip_prefix(PROBE)?.strip_prefix(" nonce=")?;
    (nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_hexdigit())).then(|| nonce.to_string())
}

/// A responder's line; `None` when the bytes are not one (a real service
/// answered, or something else did).
pub fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let text = std::str::from_utf8(bytes).ok()?;
    let line = text.split('\n').next()?;
    let mut words = line.split(' ');
    if words.next()? != RESPONDER {
        return None;
    }
    let (mut node, mut port, mut nonce) = (None, None, None);
    for word in words {
        match word.split_once('=')? {
            ("node", v) if check_node_name(v).is_ok() => node = Some(v.to_string()),
            ("port", v) => port = v.parse().ok(),
            ("nonce", v) => nonce = Some(v.to_string()),
            _ => return None,
        }
    }
    Some(Answer { node: node?, port: port?, nonce })
}

/// Why a node name cannot be a responder's token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeNameError {
    #[error("is empty")]
    Empty,
    #[error("{0:?} is longer than 253 characters (a host name's limit)")]
    TooLong(String),
    #[error(
        "{0:?} has characters other than letters, digits, '.', '_', ':' and '-' (the characters of host names and addresses)"
    )]
    BadCharacters(String),
}

/// A node name as a token: a host name, an inventory name or an address.
pub fn check_node_name(name: &str) -> Result<(), NodeNameError> {
    if name.is_empty() {
        return Err(NodeNameError::Empty);
    }
    if name.len() > 253 {
        return Err(NodeNameError::TooLong(name.chars().take(40).collect::<String>() + "..."));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        return Err(NodeNameError::BadCharacters(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greeting_and_an_answer_read_back() {
        let tcp = parse_answer(greeting("master-1.zone_a", 2181).as_bytes()).unwrap();
        assert_eq!(tcp, Answer { node: "master-1.zone_a".into(), port: 2181, nonce: None });
        let nonce = parse_probe(probe(0xdead_beef).as_bytes()).unwrap();
        assert_eq!(nonce, "00000000deadbeef");
        let udp = parse_answer(answer("fd00::1", 53, &nonce).as_bytes()).unwrap();
        assert_eq!(udp, Answer { node: "fd00::1".into(), port: 53, nonce: Some(nonce) });
    }

    #[test]
    fn anything_else_is_not_an_answer_or_a_probe() {
        for bytes in [
            &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
            b"PORTMATRIX-RESPONDER/1 port=80\n",
            b"PORTMATRIX-RESPONDER/1 node=a port=99999\n",
            b"PORTMATRIX-RESPONDER/1 node=a b port=80\n",
            b"PORTMATRIX-RESPONDER/1 node=a port=80 extra=1\n",
            b"\xff\xfe",
        ] {
            assert_eq!(parse_answer(bytes), None, "{bytes:?}");
        }
        let padded = |line: &str| format!("{line:<width$}\n", width = PROBE_LEN - 1);
        for line in ["PORTMATRIX-PROBE/1 nonce=00", "PORTMATRIX-PROBE/1 nonce=000000000000000g", "x"] {
            assert_eq!(parse_probe(padded(line).as_bytes()), None, "{line}");
        }
        // Unpadded, a probe could be answered with more than it carries.
        assert_eq!(parse_probe(b"PORTMATRIX-PROBE/1 nonce=00000000deadbeef\n"), None);
        assert_eq!(probe(1).len(), PROBE_LEN);
        let longest = answer(&"n".repeat(253), 65535, "00000000deadbeef");
        assert!(longest.len() < PROBE_LEN, "{}", longest.len());
    }

    #[test]
    fn node_names_are_host_names_or_addresses() {
        for good in ["a", "master-1.example.com", "198.18.20.1", "fd00::1", "node_2"] {
            assert_eq!(check_node_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_node_name(""), Err(NodeNameError::Empty));
        assert!(matches!(check_node_name("a b"), Err(NodeNameError::BadCharacters(_))));
        assert!(matches!(check_node_name("a\nport=1"), Err(NodeNameError::BadCharacters(_))));
        assert!(matches!(check_node_name(&"a".repeat(254)), Err(NodeNameError::TooLong(_))));
    }
}
