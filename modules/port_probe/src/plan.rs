//! Which probes a request makes: every port given alone, and of each range
//! either every port or a sample (its first, its last, the rest spread
//! evenly between), so that a task range of thousands of ports costs a
//! handful of probes and still finds a gap at either end.

use std::collections::BTreeMap;

use portmatrix_portset::PortRange;

use crate::options::Request;

/// One probe to make: a port of `request.targets[target]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub target: usize,
    pub port: u16,
    /// The port stands for a range that was sampled, not probed whole.
    pub sampled: bool,
}

/// The ports of `range` to probe: every port when `sample` is `None` or the
/// range has no more ports than that; else `sample` ports (at least 2)
/// spread evenly from its first to its last, in order.
pub fn sample(range: PortRange, sample: Option<usize>) -> Vec<u16> {
    let ports = range.ports();
    let (first, last) = (*ports.start(), *ports.end());
    let len = usize::from(last - first) + 1;
    match sample {
        Some(n) if n < len => {
            let n = n.max(2);
            let span = len - 1;
            // Rounded to the nearest port, so the spread is symmetric.
            (0..n)
                .map(|i| {
                    let offset = (i * span + (n - 1) / 2) / (n - 1);
                    first + u16::try_from(offset).unwrap_or(u16::MAX - first)
                })
                .collect()
        }
        _ => ports.collect(),
    }
}

/// Every probe of the request, per target in port order, each port once.
pub fn probes(request: &Request) -> Vec<Probe> {
    let mut out = Vec::new();
    for (index, target) in request.targets.iter().enumerate() {
        // A port any range gives whole is not sampled, whatever else gives it.
        let mut ports: BTreeMap<u16, bool> = BTreeMap::new();
        for &range in &target.ports {
            let chosen = sample(range, request.sample);
            let sampled = chosen.len() < range.ports().len();
            for port in chosen {
                let entry = ports.entry(port).or_insert(sampled);
                *entry &= sampled;
            }
        }
        out.extend(ports.into_iter().map(|(port, sampled)| Probe { target: index, port, sampled }));
    }
    out
}

/// At least as many probes as [`probes`] makes (ports given twice count
/// twice), without making them: the bound on a request's size.
pub fn count(request: &Request) -> usize {
    request
        .targets
        .iter()
        .flat_map(|t| &t.ports)
        .map(|range| {
            let len = range.ports().len();
            request.sample.map_or(len, |n| n.min(len))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(a: u16, b: u16) -> PortRange {
        PortRange::new(a, b).unwrap()
    }

    #[test]
    fn a_sample_has_the_first_the_last_and_an_even_spread() {
        assert_eq!(sample(range(1025, 2180), Some(8)), [1025, 1190, 1355, 1520, 1685, 1850, 2015, 2180]);
        assert_eq!(sample(range(1, 65535), Some(2)), [1, 65535]);
        assert_eq!(sample(range(10, 14), Some(3)), [10, 12, 14]);
    }

    #[test]
    fn a_range_no_longer_than_the_sample_is_probed_whole() {
        assert_eq!(sample(range(5050, 5051), Some(8)), [5050, 5051]);
        assert_eq!(sample(range(8, 15), Some(8)), (8..=15).collect::<Vec<_>>());
        assert_eq!(sample(range(1, 100), None).len(), 100);
        assert_eq!(sample(range(80, 80), Some(2)), [80]);
    }

    #[test]
    fn every_sample_is_in_order_inside_the_range_and_without_repeats() {
        for (a, b) in [(1, 65535), (1025, 2180), (100, 108), (60000, 65535)] {
            for n in [2, 3, 7, 8, 100, 4096] {
                let s = sample(range(a, b), Some(n));
                assert_eq!(s.first(), Some(&a));
                assert_eq!(s.last(), Some(&b));
                assert!(s.windows(2).all(|w| w[0] < w[1]), "{a}-{b} by {n}: {s:?}");
                assert_eq!(s.len(), n.min(usize::from(b - a) + 1));
            }
        }
    }
}
