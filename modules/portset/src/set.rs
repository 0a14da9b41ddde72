//! A normalised set of ports.

use std::fmt;
use std::str::FromStr;

use crate::{PortError, PortRange};

/// A set of ports, kept normalised: sorted ranges that neither overlap nor
/// touch (`8080` and `8081` are stored as `8080-8081`).
///
/// Because the representation is canonical, two sets are equal exactly when
/// they hold the same ports, and `Display` prints the kernel's form of
/// `net.ipv4.ip_local_reserved_ports`: `8080-8082,9000`, or nothing for an
/// empty set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortSet {
    ranges: Vec<PortRange>,
}

impl PortSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self { ranges: Vec::new() }
    }

    /// The set of all ports in `ranges`, which may be unsorted, overlapping or
    /// adjacent.
    pub fn from_ranges<I: IntoIterator<Item = PortRange>>(ranges: I) -> Self {
        Self { ranges: normalise(ranges.into_iter().collect()) }
    }

    /// Parses a comma-separated list of ports and ranges, the format of
    /// `net.ipv4.ip_local_reserved_ports`: `"8080-8082,9000"`.
    ///
    /// Whitespace around the list (such as the kernel's trailing newline) and
    /// around each entry is ignored; an empty or blank list is the empty set.
    /// Entries may be unsorted, overlapping or adjacent; the result is
    /// normalised. An empty entry (`"8080,,9000"`, `"8080,"`) is an error, as
    /// is any entry that [`PortRange`]'s `FromStr` rejects.
    pub fn parse_list(text: &str) -> Result<Self, PortError> {
        let list = text.trim();
        if list.is_empty() {
            return Ok(Self::new());
        }
        let mut ranges = Vec::new();
        for entry in list.split(',') {
            if entry.trim().is_empty() {
                return Err(PortError::EmptyEntry { list: list.into() });
            }
            ranges.push(entry.parse()?);
        }
        Ok(Self::from_ranges(ranges))
    }

    /// Adds every port of `range` to the set.
    pub fn insert(&mut self, range: PortRange) {
        let (start, end) = (u32::from(range.start()), u32::from(range.end()));
        // The stored ranges that overlap or touch `range` are exactly
        // `self.ranges[first..past]`.
        let first = self.ranges.partition_point(|r| u32::from(r.end()) + 1 < start);
        let past = self.ranges.partition_point(|r| u32::from(r.start()) <= end + 1);
        let touching = self.ranges.get(first..past).unwrap_or_default();
        let merged = match (touching.first(), touching.last()) {
            (Some(lo), Some(hi)) => {
                PortRange::from_u32(start.min(u32::from(lo.start())), end.max(u32::from(hi.end()))).unwrap_or(range)
            }
            _ => range,
        };
        self.ranges.splice(first..past.max(first), [merged]);
    }

    /// Removes every port of `range` from the set.
    pub fn remove(&mut self, range: PortRange) {
        *self = self.difference(&Self::from(range));
    }

    /// The ports in `self`, in `other` or in both.
    pub fn union(&self, other: &PortSet) -> PortSet {
        Self::from_ranges(self.ranges.iter().chain(&other.ranges).copied())
    }

    /// The ports in both `self` and `other`.
    pub fn intersection(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while let (Some(a), Some(b)) = (self.ranges.get(i), other.ranges.get(j)) {
            out.extend(PortRange::from_u32(u32::from(a.start().max(b.start())), u32::from(a.end().min(b.end()))));
            if a.end() < b.end() {
                i += 1;
            } else {
                j += 1;
            }
        }
        // Pieces of two normalised sets never touch, but normalising keeps
        // the invariant local to this type whatever the loop above does.
        Self::from_ranges(out)
    }

    /// The ports in `self` that are not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        let mut out = Vec::new();
        let mut j = 0;
        for a in &self.ranges {
            // Ranges of `other` wholly below `a` are wholly below every later
            // range of `self` too.
            while other.ranges.get(j).is_some_and(|b| b.end() < a.start()) {
                j += 1;
            }
            let end = u32::from(a.end());
            let mut next = u32::from(a.start());
            for b in other.ranges.get(j..).unwrap_or_default() {
                if u32::from(b.start()) > end {
                    break;
                }
                if u32::from(b.start()) > next {
                    out.extend(PortRange::from_u32(next, u32::from(b.start()) - 1));
                }
                next = next.max(u32::from(b.end()) + 1);
            }
            out.extend(PortRange::from_u32(next, end));
        }
        Self::from_ranges(out)
    }

    /// The ports of `range` that are not in the set; for example the
    /// ephemeral ports (32768-60999) that remain unreserved.
    pub fn complement_within(&self, range: PortRange) -> PortSet {
        Self::from(range).difference(self)
    }

    /// How many ports of `range` are in the set.
    pub fn count_within(&self, range: PortRange) -> u32 {
        self.intersection(&Self::from(range)).len()
    }

    /// Whether every port of `self` is also in `other`.
    pub fn is_subset(&self, other: &PortSet) -> bool {
        // Ranges of `other` never touch, so a range of `self` lies within
        // `other` only if it lies within a single range of `other`: the last
        // one starting at or before it.
        self.ranges.iter().all(|a| {
            let candidates = other.ranges.partition_point(|b| b.start() <= a.start());
            candidates.checked_sub(1).and_then(|i| other.ranges.get(i)).is_some_and(|b| a.end() <= b.end())
        })
    }

    /// Whether `self` and `other` have no port in common.
    pub fn is_disjoint(&self, other: &PortSet) -> bool {
        self.intersection(other).is_empty()
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        let i = self.ranges.partition_point(|r| r.end() < port);
        self.ranges.get(i).is_some_and(|r| r.contains(port))
    }

    /// The number of ports in the set, 0-65535.
    pub fn len(&self) -> u32 {
        self.ranges.iter().map(|r| r.len()).sum()
    }

    /// Whether the set holds no port.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The normalised ranges: sorted, neither overlapping nor touching.
    pub fn ranges(&self) -> &[PortRange] {
        &self.ranges
    }

    /// Every port of the set, in ascending order.
    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.ranges.iter().flat_map(|r| r.ports())
    }
}

/// Sorts `ranges` and merges those that overlap or touch.
fn normalise(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort_unstable();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        let merged = match out.last() {
            Some(last) if u32::from(range.start()) <= u32::from(last.end()) + 1 => {
                PortRange::from_u32(u32::from(last.start()), u32::from(last.end().max(range.end())))
            }
            _ => None,
        };
        match (merged, out.last_mut()) {
            (Some(merged), Some(last)) => *last = merged,
            _ => out.push(range),
        }
    }
    out
}

impl From<PortRange> for PortSet {
    /// The set of the ports of one range.
    fn from(range: PortRange) -> Self {
        Self { ranges: vec![range] }
    }
}

impl FromIterator<PortRange> for PortSet {
    /// The set of all ports of the ranges, normalised.
    fn from_iter<I: IntoIterator<Item = PortRange>>(ranges: I) -> Self {
        Self::from_ranges(ranges)
    }
}

impl Extend<PortRange> for PortSet {
    /// Adds every port of the ranges.
    fn extend<I: IntoIterator<Item = PortRange>>(&mut self, ranges: I) {
        let all = self.ranges.drain(..).chain(ranges).collect();
        self.ranges = normalise(all);
    }
}

impl FromStr for PortSet {
    type Err = PortError;

    /// The same as [`PortSet::parse_list`].
    fn from_str(text: &str) -> Result<Self, PortError> {
        Self::parse_list(text)
    }
}

impl fmt::Display for PortSet {
    /// The kernel's form, without its trailing newline: `8080-8082,9000`,
    /// nothing for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::PortSet;
    use crate::{PortError, PortRange};

    fn set(text: &str) -> PortSet {
        PortSet::parse_list(text).expect("valid list")
    }

    fn range(start: u16, end: u16) -> PortRange {
        PortRange::new(start, end).expect("valid range")
    }

    fn canonical(text: &str) -> String {
        set(text).to_string()
    }

    #[test]
    fn kernel_examples_read_back_as_the_kernel_prints_them() {
        assert_eq!(canonical("9000,8082,8080,8081"), "8080-8082,9000");
        assert_eq!(canonical("100-200,150-300"), "100-300");
        assert_eq!(canonical("8080-8082,9000\n"), "8080-8082,9000");
        assert_eq!(canonical("8080,8081"), "8080-8081");
        assert_eq!(canonical("8080"), "8080");
        assert_eq!(canonical("1-10,11-20,22"), "1-20,22");
        assert_eq!(canonical("5,4,3,2,1"), "1-5");
        assert_eq!(canonical("65535,65534,1"), "1,65534-65535");
        assert_eq!(canonical("1-65535,80"), "1-65535");
        assert_eq!(canonical("01025,08080"), "1025,8080");
        assert_eq!(canonical(" 8080 , 9000 - 9001 "), "8080,9000-9001");
    }

    #[test]
    fn empty_lists_are_the_empty_set() {
        for text in ["", "\n", "  ", " \n\t"] {
            assert_eq!(PortSet::parse_list(text), Ok(PortSet::new()), "{text:?}");
        }
        assert_eq!(PortSet::new().to_string(), "");
        assert!(PortSet::new().is_empty());
        assert_eq!(PortSet::new().len(), 0);
    }

    #[test]
    fn list_errors() {
        let empty_entry = |list: &str| PortError::EmptyEntry { list: list.into() };
        assert_eq!(PortSet::parse_list("8080,,9000"), Err(empty_entry("8080,,9000")));
        assert_eq!(PortSet::parse_list("8080,\n"), Err(empty_entry("8080,")));
        assert_eq!(PortSet::parse_list(",8080"), Err(empty_entry(",8080")));
        assert_eq!(PortSet::parse_list(","), Err(empty_entry(",")));
        assert_eq!(PortSet::parse_list("8080, ,9000"), Err(empty_entry("8080, ,9000")));
        assert_eq!(PortSet::parse_list("8080;9000"), Err(PortError::NotANumber { text: "8080;9000".into() }));
        assert_eq!(PortSet::parse_list("8080 9000"), Err(PortError::NotANumber { text: "8080 9000".into() }));
        assert_eq!(PortSet::parse_list("80,5-3"), Err(PortError::Reversed { start: 5, end: 3 }));
        assert_eq!(PortSet::parse_list("80,70000"), Err(PortError::OutOfRange { value: "70000".into() }));
        assert_eq!(PortSet::parse_list("80,0x10"), Err(PortError::NotANumber { text: "0x10".into() }));
        assert_eq!("80,-5".parse::<PortSet>(), Err(PortError::NotANumber { text: "-5".into() }));
    }

    #[test]
    fn insert_merges() {
        let mut s = PortSet::new();
        s.insert(range(8080, 8080));
        s.insert(range(9000, 9000));
        s.insert(range(8082, 8082));
        assert_eq!(s.to_string(), "8080,8082,9000");
        s.insert(range(8081, 8081));
        assert_eq!(s.to_string(), "8080-8082,9000");
        s.insert(range(8083, 8999));
        assert_eq!(s.to_string(), "8080-9000");
        s.insert(range(1, 1));
        s.insert(range(65535, 65535));
        assert_eq!(s.to_string(), "1,8080-9000,65535");
        s.insert(range(2, 65534));
        assert_eq!(s.to_string(), "1-65535");
        assert_eq!(s.ranges(), [PortRange::ALL]);
        s.insert(range(10, 20));
        assert_eq!(s.ranges(), [PortRange::ALL]);
    }

    #[test]
    fn remove_splits() {
        let mut s = set("1-100");
        s.remove(range(50, 50));
        assert_eq!(s.to_string(), "1-49,51-100");
        s.remove(range(1, 1));
        s.remove(range(100, 200));
        assert_eq!(s.to_string(), "2-49,51-99");
        s.remove(PortRange::ALL);
        assert!(s.is_empty());
    }

    #[test]
    fn set_operations() {
        let a = set("1-10,20-30,65535");
        let b = set("5-25,65534");
        assert_eq!(a.union(&b).to_string(), "1-30,65534-65535");
        assert_eq!(a.intersection(&b).to_string(), "5-10,20-25");
        assert_eq!(a.difference(&b).to_string(), "1-4,26-30,65535");
        assert_eq!(b.difference(&a).to_string(), "11-19,65534");
        assert!(set("5-8,21").is_subset(&a));
        assert!(!set("5-11").is_subset(&a));
        assert!(PortSet::new().is_subset(&PortSet::new()));
        assert!(!set("1").is_subset(&PortSet::new()));
        assert!(a.is_disjoint(&set("11-19,65534")));
        assert!(!a.is_disjoint(&b));
    }

    #[test]
    fn ephemeral_range_arithmetic() {
        let ephemeral = range(32768, 60999);
        let reserved = set("10000-32767,61000-65535");
        assert_eq!(reserved.count_within(ephemeral), 0);
        assert_eq!(reserved.complement_within(ephemeral).len(), 28232);

        let reserved = set("30000-40000,50000,60999-61010");
        assert_eq!(reserved.count_within(ephemeral), 7233 + 1 + 1);
        assert_eq!(reserved.complement_within(ephemeral).to_string(), "40001-49999,50001-60998");
        assert_eq!(reserved.complement_within(ephemeral).len(), 28232 - 7235);
    }

    #[test]
    fn queries() {
        let s = set("8080-8082,9000");
        assert_eq!(s.len(), 4);
        assert!(!s.is_empty());
        assert!(s.contains(8080) && s.contains(8081) && s.contains(9000));
        assert!(!s.contains(8079) && !s.contains(8083) && !s.contains(0));
        assert!(!s.contains(65535));
        assert_eq!(s.ports().collect::<Vec<_>>(), [8080, 8081, 8082, 9000]);
        assert_eq!(s.ranges(), [range(8080, 8082), range(9000, 9000)]);
        assert_eq!(set("1-65535").len(), 65535);
    }

    #[test]
    fn construction() {
        let from_iter: PortSet = [range(9, 9), range(1, 3), range(4, 5)].into_iter().collect();
        assert_eq!(from_iter.to_string(), "1-5,9");
        assert_eq!(PortSet::from_ranges([range(2, 2), range(1, 1)]).to_string(), "1-2");
        assert_eq!(PortSet::from(range(7, 9)).to_string(), "7-9");
        let mut extended = set("1");
        extended.extend([range(3, 3), range(2, 2)]);
        assert_eq!(extended.to_string(), "1-3");
        assert_eq!(PortSet::default(), PortSet::new());
    }

    #[test]
    fn equal_sets_compare_equal_whatever_the_input_order() {
        assert_eq!(set("9000,8080-8082"), set("8082,8081,9000,8080"));
        assert_ne!(set("8080"), set("8081"));
    }
}
