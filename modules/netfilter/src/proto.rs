//! The two transport protocols whose ports netfilter rules match.

use std::fmt;

use serde::{Deserialize, Serialize};

/// TCP or UDP, named as iptables' `-p` and nft's `tcp`/`udp` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// Both, TCP first.
    pub const ALL: [Proto; 2] = [Proto::Tcp, Proto::Udp];
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}
