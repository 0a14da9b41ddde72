//! Where a packet may come from: `any`, `loopback` (the `lo` interface), or
//! an IPv4/IPv6 address or network in CIDR form, parsed with std only.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0:?} is not an IPv4/IPv6 address or CIDR, `any` or `loopback`")]
    NotAnAddress(String),
    #[error("{text:?} has a prefix length over {max}")]
    PrefixTooLong { text: String, max: u8 },
    #[error("{text:?} has host bits set: did you mean {network}?")]
    HostBits { text: String, network: Cidr },
}

/// An address family of the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// A network: address with all host bits zero, and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    family: Family,
    /// The address as a number (IPv4 in the low 32 bits).
    addr: u128,
    len: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether this is every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.len == 0
    }

    /// The first and last address, as numbers.
    pub fn interval(&self) -> (u128, u128) {
        (self.addr, self.addr | host_span(self.family.bits() - self.len))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (family, value) = ip_value(ip);
        let (first, last) = self.interval();
        family == self.family && first <= value && value <= last
    }
}

/// The largest number that fits in `host_bits` bits.
fn host_span(host_bits: u8) -> u128 {
    if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 }
}

fn ip_value(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (Family::V4, u128::from(u32::from(v4))),
            None => (Family::V6, u128::from(v6)),
        },
    }
}

/// Prints an address of `family` given as a number.
pub fn format_addr(family: Family, value: u128) -> String {
    match family {
        #[expect(clippy::cast_possible_truncation, reason = "an IPv4 value sits in the low 32 bits")]
        Family::V4 => Ipv4Addr::from(value as u32).to_string(),
        Family::V6 => Ipv6Addr::from(value).to_string(),
    }
}

impl fmt::Display for Cidr {
    /// iptables-save's form: always with the prefix length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", format_addr(self.family, self.addr), self.len)
    }
}

impl FromStr for Cidr {
    type Err = SourceError;

    fn from_str(text: &str) -> Result<Cidr, SourceError> {
        let bad = || SourceError::NotAnAddress(text.to_string());
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let family = match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        let value = match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        let max = family.bits();
        let len = match len {
            None => max,
            Some(len) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) && len.len() <= 3 => {
                len.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if len > max {
            return Err(SourceError::PrefixTooLong { text: text.to_string(), max });
        }
        let network = Cidr { family, addr: value & !host_span(max - len), len };
        if network.addr != value {
            return Err(SourceError::HostBits { text: text.to_string(), network });
        }
        Ok(network)
    }
}

/// One entry of a rule's `sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Any,
    Loopback,
    Net(Cidr),
}

impl FromStr for Source {
    type Err = SourceError;

    fn from_str(text: &str) -> Result<Source, SourceError> {
        match text.trim() {
            "any" => Ok(Source::Any),
            "loopback" => Ok(Source::Loopback),
            other => other.parse().map(Source::Net),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Any => f.write_str("any"),
            Source::Loopback => f.write_str("loopback"),
            Source::Net(cidr) => cidr.fmt(f),
        }
    }
}

/// Merged, sorted closed intervals (adjacent and overlapping ones joined).
pub fn merge_intervals(mut intervals: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    intervals.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if last.1 == u128::MAX || start <= last.1 + 1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// An address interval as nftables prints it: one address, a prefix when the
/// interval is exactly one network, else `first-last`.
pub fn format_interval(family: Family, (first, last): (u128, u128)) -> String {
    if first == last {
        return format_addr(family, first);
    }
    let span = last - first;
    let bits = family.bits();
    if span.checked_add(1).is_some_and(u128::is_power_of_two) || (span == u128::MAX) {
        let host_bits = if span == u128::MAX { 128 } else { (span + 1).trailing_zeros() };
        if first.trailing_zeros() >= host_bits || first == 0 {
            return format!("{}/{}", format_addr(family, first), u32::from(bits) - host_bits);
        }
    }
    format!("{}-{}", format_addr(family, first), format_addr(family, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_and_networks_parse_and_print_as_iptables_save_does() {
        assert_eq!(cidr("198.18.0.0/16").to_string(), "198.18.0.0/16");
        assert_eq!(cidr("198.18.0.5").to_string(), "198.18.0.5/32");
        assert_eq!(cidr("2001:DB8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("2001:db8::5").to_string(), "2001:db8::5/128");
        assert_eq!(cidr("0.0.0.0/0").interval(), (0, u128::from(u32::MAX)));
        assert_eq!(cidr("::/0").interval(), (0, u128::MAX));
    }

    #[test]
    fn bad_sources_are_named() {
        let err = |t: &str| t.parse::<Source>().unwrap_err().to_string();
        assert_eq!(err("10.0.0.300"), "\"10.0.0.300\" is not an IPv4/IPv6 address or CIDR, `any` or `loopback`");
        assert_eq!(err("198.18.0.0/33"), "\"198.18.0.0/33\" has a prefix length over 32");
        assert_eq!(err("198.18.0.5/16"), "\"198.18.0.5/16\" has host bits set: did you mean 198.18.0.0/16?");
        assert!(err("198.18.0.0/").contains("is not an IPv4"));
        assert!(err("198.18.0.0/+8").contains("is not an IPv4"));
        assert!(err("everyone").contains("is not an IPv4"));
    }

    #[test]
    fn containment_knows_families_and_mapped_addresses() {
        let net = cidr("198.18.0.0/15");
        assert!(net.contains("198.19.255.255".parse().unwrap()));
        assert!(net.contains("::ffff:198.18.0.1".parse().unwrap()));
        assert!(!net.contains("198.20.0.0".parse().unwrap()));
        assert!(!cidr("::/0").contains("198.18.0.1".parse().unwrap()));
    }

    #[test]
    fn intervals_merge_and_print_like_nft() {
        let merged = merge_intervals(vec![(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]);
        assert_eq!(merged, vec![(1, 9), (20, 30)]);
        assert_eq!(format_interval(Family::V4, cidr("198.18.0.0/16").interval()), "198.18.0.0/16");
        assert_eq!(format_interval(Family::V4, (3_323_068_416, 3_323_068_416)), "198.18.0.0");
        assert_eq!(format_interval(Family::V4, (3_323_068_417, 3_323_068_418)), "198.18.0.1-198.18.0.2");
        assert_eq!(format_interval(Family::V4, cidr("0.0.0.0/0").interval()), "0.0.0.0/0");
        assert_eq!(format_interval(Family::V6, cidr("::/0").interval()), "::/0");
    }
}
