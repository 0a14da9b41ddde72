//! The desired content, independent of any backend: rules in the order
//! given, each with its ports as a normalised set and its sources sorted,
//! de-duplicated and split by address family.

use std::collections::BTreeSet;
use std::net::IpAddr;

use portmatrix_portset::PortSet;
use serde_json::{Value, json};

use crate::source::{Cidr, Family, Source, merge_intervals};
use crate::ssh::SshConnection;

pub use portmatrix_netfilter::Proto;

/// A rule's sources, normalised: `any` swallows everything else.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sources {
    pub any: bool,
    pub loopback: bool,
    /// Sorted, without networks that another one in the list contains.
    pub nets: Vec<Cidr>,
}

impl Sources {
    pub fn from_list(list: &[Source]) -> Sources {
        if list.contains(&Source::Any) {
            return Sources { any: true, ..Sources::default() };
        }
        let all: BTreeSet<Cidr> = list
            .iter()
            .filter_map(|s| match s {
                Source::Net(c) => Some(*c),
                _ => None,
            })
            .collect();
        let nets =
            all.iter().filter(|c| !all.iter().any(|other| other != *c && contains_net(other, c))).copied().collect();
        Sources { any: false, loopback: list.contains(&Source::Loopback), nets }
    }

    pub fn nets_of(&self, family: Family) -> impl Iterator<Item = &Cidr> + '_ {
        self.nets.iter().filter(move |c| c.family() == family)
    }

    /// The addresses of `family` as merged intervals (for nftables sets).
    pub fn intervals(&self, family: Family) -> Vec<(u128, u128)> {
        merge_intervals(self.nets_of(family).map(Cidr::interval).collect())
    }

    /// Whether a packet from `ip` is accepted by these sources.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.any || (self.loopback && ip.is_loopback()) || self.nets.iter().any(|c| c.contains(ip))
    }

    pub fn to_list(&self) -> Vec<String> {
        if self.any {
            return vec!["any".into()];
        }
        let lo = self.loopback.then(|| "loopback".to_string());
        lo.into_iter().chain(self.nets.iter().map(Cidr::to_string)).collect()
    }
}

fn contains_net(outer: &Cidr, inner: &Cidr) -> bool {
    let (a, b) = outer.interval();
    let (c, d) = inner.interval();
    outer.family() == inner.family() && a <= c && d <= b
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub ports: PortSet,
    pub proto: Proto,
    pub sources: Sources,
    pub comment: Option<String>,
}

impl Rule {
    /// Whether the rule has anything to accept in `family`.
    pub fn applies_to(&self, family: Family) -> bool {
        self.sources.any || self.sources.loopback || self.sources.nets_of(family).next().is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub rules: Vec<Rule>,
    pub enforce: bool,
    /// The same accepts and drops for forwarded packets that were DNAT'd
    /// (published task and container ports), by their original destination
    /// port, before the DNAT.
    pub forward: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to apply: with enforce=true, new SSH connections from {client} to port {port}/tcp (this session's \
     SSH_CONNECTION) would be dropped, because port {port}/tcp is enforced and no rule allows {client}; add \
     {client} (or a network holding it) to the sources of a rule for port {port}/tcp. Nothing was changed"
)]
pub struct SshLockout {
    pub client: IpAddr,
    pub port: u16,
}

impl Ruleset {
    /// The ports dropped from everyone else, per protocol (empty without enforce).
    pub fn enforced(&self, proto: Proto) -> PortSet {
        if !self.enforce {
            return PortSet::new();
        }
        self.rules.iter().filter(|r| r.proto == proto).fold(PortSet::new(), |all, r| all.union(&r.ports))
    }

    /// Refuses a ruleset that would drop new SSH connections of this session.
    pub fn check_ssh(&self, ssh: &SshConnection) -> Result<(), SshLockout> {
        if !self.enforced(Proto::Tcp).contains(ssh.server_port) {
            return Ok(());
        }
        let allowed = self.rules.iter().any(|r| {
            r.proto == Proto::Tcp
                && r.ports.contains(ssh.server_port)
                && (r.sources.allow(ssh.client) || (r.sources.loopback && ssh.via_loopback()))
        });
        if allowed { Ok(()) } else { Err(SshLockout { client: ssh.client, port: ssh.server_port }) }
    }

    /// The rules as the module understood them (the `rules` return value).
    pub fn to_json(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "ports": r.ports.ranges().iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "proto": r.proto,
                    "sources": r.sources.to_list(),
                    "comment": r.comment,
                })
            })
            .collect();
        Value::Array(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(list: &[&str]) -> Sources {
        Sources::from_list(&list.iter().map(|s| s.parse().unwrap()).collect::<Vec<_>>())
    }

    fn rule(ports: &str, proto: Proto, list: &[&str]) -> Rule {
        Rule { ports: ports.parse().unwrap(), proto, sources: sources(list), comment: None }
    }

    #[test]
    fn sources_normalise() {
        assert_eq!(sources(&["198.18.0.0/16", "any", "loopback"]).to_list(), ["any"]);
        let s = sources(&["198.18.3.0/24", "loopback", "198.18.0.0/16", "2001:db8::1", "198.18.0.0/16"]);
        assert_eq!(s.to_list(), ["loopback", "198.18.0.0/16", "2001:db8::1/128"]);
        assert_eq!(s.intervals(Family::V6), vec![(u128::from(0x2001_0db8u32) << 96 | 1, (0x2001_0db8u128 << 96) | 1)]);
    }

    #[test]
    fn enforced_ports_are_the_union_per_protocol() {
        let set = Ruleset {
            rules: vec![
                rule("80,443", Proto::Tcp, &["any"]),
                rule("2181", Proto::Tcp, &["198.18.0.0/16"]),
                rule("53", Proto::Udp, &["any"]),
            ],
            enforce: true,
            forward: false,
        };
        assert_eq!(set.enforced(Proto::Tcp).to_string(), "80,443,2181");
        assert_eq!(set.enforced(Proto::Udp).to_string(), "53");
        assert!(Ruleset { enforce: false, ..set }.enforced(Proto::Tcp).is_empty());
    }

    #[test]
    fn the_ssh_guard_refuses_only_an_enforced_port_without_the_client() {
        let ssh = SshConnection::parse("198.18.5.9 50000 198.18.0.1 22").unwrap().unwrap();
        let locked = Ruleset { rules: vec![rule("22", Proto::Tcp, &["198.19.0.0/16"])], enforce: true, forward: false };
        let err = locked.check_ssh(&ssh).unwrap_err();
        assert!(err.to_string().contains("new SSH connections from 198.18.5.9 to port 22/tcp"), "{err}");
        let allowed =
            Ruleset { rules: vec![rule("1-100", Proto::Tcp, &["198.18.0.0/16"])], enforce: true, forward: false };
        assert!(allowed.check_ssh(&ssh).is_ok());
        assert!(Ruleset { enforce: false, ..locked.clone() }.check_ssh(&ssh).is_ok());
        let udp_only =
            Ruleset { rules: vec![rule("22", Proto::Udp, &["198.19.0.0/16"])], enforce: true, forward: false };
        assert!(udp_only.check_ssh(&ssh).is_ok(), "a udp rule does not enforce tcp");
    }

    #[test]
    fn loopback_sessions_are_let_in_by_a_loopback_rule() {
        let lo_only = Ruleset { rules: vec![rule("22", Proto::Tcp, &["loopback"])], enforce: true, forward: false };
        for session in [
            "127.0.0.1 50000 127.0.0.1 22",
            "::ffff:127.0.0.1 50000 ::ffff:127.0.0.1 22",
            "::1 50000 ::1 22",
            "198.18.0.1 50000 198.18.0.1 22",
        ] {
            assert!(lo_only.check_ssh(&SshConnection::parse(session).unwrap().unwrap()).is_ok(), "{session}");
        }
        let remote = SshConnection::parse("198.18.5.9 50000 198.18.0.1 22").unwrap().unwrap();
        assert!(lo_only.check_ssh(&remote).is_err());
        let mapped = SshConnection::parse("::ffff:198.18.5.9 50000 ::ffff:198.18.0.1 22").unwrap().unwrap();
        let v4_rule =
            Ruleset { rules: vec![rule("22", Proto::Tcp, &["198.18.5.0/24"])], enforce: true, forward: false };
        assert!(v4_rule.check_ssh(&mapped).is_ok(), "a mapped client is its IPv4 address");
    }
}
