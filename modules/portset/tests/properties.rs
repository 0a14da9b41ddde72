//! Property tests: the set algebra, the kernel text format, and agreement of
//! every operation with a plain `BTreeSet<u16>` model.
//!
//! Ports are drawn from 1..=300 and from near 65535, so that ranges collide
//! often and the top edge (where `end + 1` would overflow a `u16`) is hit.

use std::collections::BTreeSet;

use portmatrix_portset::{PortError, PortRange, PortSet};
use proptest::prelude::*;

type Model = BTreeSet<u16>;

/// A port, mostly small or near the top edge.
fn port() -> impl Strategy<Value = u16> {
    prop_oneof![1u16..=300, 65_236u16..=65_535, Just(1), Just(65_535)]
}

/// A range starting at `port()`, mostly short, clipped at 65535.
fn range() -> impl Strategy<Value = PortRange> {
    let length = prop_oneof![4 => 0u16..8, 2 => 0u16..40, 1 => 0u16..400];
    (port(), length).prop_map(|(start, length)| {
        PortRange::new(start, start.saturating_add(length)).expect("start >= 1, end >= start")
    })
}

/// A few ranges, unsorted, possibly overlapping or adjacent.
fn ranges() -> impl Strategy<Value = Vec<PortRange>> {
    prop::collection::vec(range(), 0..8)
}

/// A small set: ports 1..=700 and 65236..=65535 only, so that the model
/// stays cheap.
fn small_set() -> impl Strategy<Value = PortSet> {
    ranges().prop_map(PortSet::from_ranges)
}

/// A set, with the occasional full set (too big for the model tests).
fn set() -> impl Strategy<Value = PortSet> {
    prop_oneof![
        20 => ranges().prop_map(PortSet::from_ranges),
        1 => Just(PortSet::from(PortRange::ALL)),
    ]
}

/// The ports of `ranges`, computed without the library's set logic.
fn model_of(ranges: &[PortRange]) -> Model {
    ranges.iter().flat_map(|r| r.start()..=r.end()).collect()
}

fn model(set: &PortSet) -> Model {
    model_of(set.ranges())
}

/// Ports worth probing: both edges, and every port near a range boundary.
fn probes(sets: &[&PortSet]) -> Model {
    let mut probes: Model = [1, 2, 299, 300, 301, 65_534, 65_535].into();
    for set in sets {
        for r in set.ranges() {
            for p in [r.start(), r.end()] {
                probes.extend([p.saturating_sub(1).max(1), p, p.saturating_add(1)]);
            }
        }
    }
    probes
}

/// Checks the representation invariant: sorted, non-empty ranges with at
/// least one port missing between neighbours.
fn assert_normalised(set: &PortSet) -> Result<(), TestCaseError> {
    for r in set.ranges() {
        prop_assert!(1 <= r.start() && r.start() <= r.end(), "bad range {r:?}");
    }
    for pair in set.ranges().windows(2) {
        prop_assert!(u32::from(pair[0].end()) + 1 < u32::from(pair[1].start()), "ranges overlap or touch: {pair:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // ---- the kernel text format ----

    #[test]
    fn display_then_parse_round_trips(s in set()) {
        prop_assert_eq!(PortSet::parse_list(&s.to_string()), Ok(s.clone()));
        // The kernel's own output carries a trailing newline.
        prop_assert_eq!(PortSet::parse_list(&format!("{s}\n")), Ok(s));
    }

    #[test]
    fn display_is_canonical(s in set()) {
        let text = s.to_string();
        if s.is_empty() {
            prop_assert_eq!(text, "");
            return Ok(());
        }
        let mut previous_end: Option<u32> = None;
        for entry in text.split(',') {
            let bounds: Vec<&str> = entry.split('-').collect();
            prop_assert!(bounds.len() == 1 || bounds.len() == 2, "entry {:?}", entry);
            let mut numbers = Vec::new();
            for number in &bounds {
                prop_assert!(!number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(!number.starts_with('0'), "leading zero in {:?}", text);
                numbers.push(number.parse::<u32>().expect("digits"));
            }
            let (start, end) = (numbers[0], numbers[numbers.len() - 1]);
            if bounds.len() == 2 {
                prop_assert!(start < end, "{:?} should be written as one port", entry);
            }
            if let Some(previous_end) = previous_end {
                prop_assert!(previous_end + 1 < start, "adjacent or overlapping in {:?}", text);
            }
            previous_end = Some(end);
        }
    }

    #[test]
    fn parse_list_accepts_any_order_and_overlap(input in ranges(), sep in "[ \t]{0,2}") {
        let text = input
            .iter()
            .map(|r| format!("{sep}{r}{sep}"))
            .collect::<Vec<_>>()
            .join(",");
        let parsed = PortSet::parse_list(&text);
        prop_assert_eq!(&parsed, &Ok(PortSet::from_ranges(input.clone())));
        let parsed = parsed.expect("checked above");
        prop_assert_eq!(model(&parsed), model_of(&input));
        assert_normalised(&parsed)?;
    }

    #[test]
    fn leading_zeros_are_decimal(p in 1u16..=65_535, zeros in 0usize..6) {
        let text = format!("{}{p}", "0".repeat(zeros));
        prop_assert_eq!(text.parse::<PortRange>(), PortRange::single(p));
        prop_assert_eq!(PortSet::parse_list(&text).map(|s| s.to_string()), Ok(p.to_string()));
    }

    #[test]
    fn digit_strings_parse_like_big_integers(digits in "[0-9]{1,30}") {
        let value: u128 = digits.parse().expect("at most 30 digits fit a u128");
        let expected = match u16::try_from(value) {
            Ok(p) if p != 0 => PortRange::single(p),
            _ => Err(PortError::OutOfRange { value: digits.clone() }),
        };
        prop_assert_eq!(digits.parse::<PortRange>(), expected);
    }

    #[test]
    fn ranges_parse_with_whitespace_around_the_dash(
        a in 1u16..=65_535,
        b in 1u16..=65_535,
        ws in prop::collection::vec("[ \t\n]{0,2}", 4),
    ) {
        let text = format!("{}{a}{}-{}{b}{}", ws[0], ws[1], ws[2], ws[3]);
        let expected = if a <= b {
            PortRange::new(a, b)
        } else {
            Err(PortError::Reversed { start: a, end: b })
        };
        prop_assert_eq!(text.parse::<PortRange>(), expected);
    }

    #[test]
    fn from_number_matches_the_valid_port_range(n in any::<i64>()) {
        let result = PortRange::from_number(n);
        if (1..=65_535).contains(&n) {
            let port = u16::try_from(n).expect("checked");
            prop_assert_eq!(result, PortRange::single(port));
        } else {
            prop_assert_eq!(result, Err(PortError::OutOfRange { value: n.to_string() }));
        }
    }

    #[test]
    fn parsing_never_panics(text in "[0-9xX+ ,\t\n-]{0,24}") {
        // Errors are fine; panics are not. Whatever parses is canonical on output.
        let _ = text.parse::<PortRange>();
        if let Ok(s) = PortSet::parse_list(&text) {
            assert_normalised(&s)?;
            prop_assert_eq!(PortSet::parse_list(&s.to_string()), Ok(s));
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = text.parse::<PortRange>();
        let _ = PortSet::parse_list(&text);
    }

    // ---- normalisation ----

    #[test]
    fn normalise_is_idempotent(input in ranges()) {
        let once = PortSet::from_ranges(input.clone());
        assert_normalised(&once)?;
        let twice = PortSet::from_ranges(once.ranges().iter().copied());
        prop_assert_eq!(twice.ranges(), once.ranges());
        prop_assert_eq!(model(&once), model_of(&input));
    }

    #[test]
    fn construction_routes_agree(input in ranges()) {
        let from_ranges = PortSet::from_ranges(input.clone());
        let collected: PortSet = input.iter().copied().collect();
        let mut inserted = PortSet::new();
        for r in &input {
            inserted.insert(*r);
            assert_normalised(&inserted)?;
        }
        let mut extended = PortSet::new();
        extended.extend(input.iter().copied());
        let unions = input
            .iter()
            .fold(PortSet::new(), |acc, r| acc.union(&PortSet::from(*r)));
        prop_assert_eq!(&collected, &from_ranges);
        prop_assert_eq!(&inserted, &from_ranges);
        prop_assert_eq!(&extended, &from_ranges);
        prop_assert_eq!(&unions, &from_ranges);
    }

    // ---- algebra ----

    #[test]
    fn union_is_commutative_and_associative(a in set(), b in set(), c in set()) {
        prop_assert_eq!(a.union(&b), b.union(&a));
        prop_assert_eq!(a.union(&b).union(&c), a.union(&b.union(&c)));
    }

    #[test]
    fn empty_set_is_the_identity_of_union(a in set()) {
        prop_assert_eq!(a.union(&PortSet::new()), a.clone());
        prop_assert_eq!(PortSet::new().union(&a), a);
    }

    #[test]
    fn difference_and_intersection_split_a_set(a in set(), b in set()) {
        prop_assert!(a.difference(&b).intersection(&b).is_empty());
        prop_assert_eq!(a.difference(&b).union(&a.intersection(&b)), a.clone());
        prop_assert_eq!(a.intersection(&b), b.intersection(&a));
        prop_assert_eq!(a.difference(&a), PortSet::new());
        prop_assert_eq!(a.intersection(&a), a.clone());
        prop_assert_eq!(a.difference(&PortSet::new()), a);
    }

    #[test]
    fn inclusion_exclusion(a in set(), b in set()) {
        prop_assert_eq!(
            a.union(&b).len(),
            a.len() + b.len() - a.intersection(&b).len()
        );
    }

    #[test]
    fn is_subset_is_consistent_with_union(a in set(), b in set()) {
        prop_assert_eq!(a.is_subset(&b), a.union(&b) == b);
        prop_assert_eq!(a.is_subset(&b), a.difference(&b).is_empty());
        prop_assert!(a.is_subset(&a.union(&b)));
        prop_assert!(a.intersection(&b).is_subset(&a));
        prop_assert!(PortSet::new().is_subset(&a));
    }

    #[test]
    fn complement_within_partitions_the_range(a in set(), r in range()) {
        let inside = PortSet::from(r);
        let complement = a.complement_within(r);
        prop_assert!(complement.is_subset(&inside));
        prop_assert!(complement.is_disjoint(&a));
        prop_assert_eq!(complement.len() + a.count_within(r), r.len());
        prop_assert_eq!(complement.union(&a.intersection(&inside)), inside);
    }

    // ---- agreement with the BTreeSet model ----

    #[test]
    fn operations_agree_with_the_model(a in small_set(), b in small_set()) {
        let (ma, mb) = (model(&a), model(&b));
        let results = [
            (a.union(&b), &ma | &mb),
            (a.intersection(&b), &ma & &mb),
            (a.difference(&b), &ma - &mb),
            (b.difference(&a), &mb - &ma),
        ];
        for (result, expected) in results {
            assert_normalised(&result)?;
            prop_assert_eq!(model(&result), expected.clone());
            prop_assert_eq!(result.ports().collect::<Model>(), expected.clone());
            prop_assert_eq!(result.len() as usize, expected.len());
            prop_assert_eq!(result.is_empty(), expected.is_empty());
        }
        prop_assert_eq!(a.is_subset(&b), ma.is_subset(&mb));
        prop_assert_eq!(a.is_disjoint(&b), ma.is_disjoint(&mb));
        prop_assert_eq!(a == b, ma == mb);
    }

    #[test]
    fn queries_agree_with_the_model(a in small_set(), r in range()) {
        let ma = model(&a);
        for p in probes(&[&a]).into_iter().chain([r.start(), r.end()]) {
            prop_assert_eq!(a.contains(p), ma.contains(&p), "port {}", p);
        }
        prop_assert_eq!(a.ports().collect::<Vec<_>>(), ma.iter().copied().collect::<Vec<_>>());
        let mr: Model = (r.start()..=r.end()).collect();
        prop_assert_eq!(a.count_within(r) as usize, ma.intersection(&mr).count());
        prop_assert_eq!(model(&a.complement_within(r)), &mr - &ma);
    }

    #[test]
    fn insert_and_remove_agree_with_the_model(a in small_set(), r in range()) {
        let (ma, mr) = (model(&a), model_of(&[r]));
        let mut inserted = a.clone();
        inserted.insert(r);
        assert_normalised(&inserted)?;
        prop_assert_eq!(model(&inserted), &ma | &mr);
        let mut removed = a.clone();
        removed.remove(r);
        assert_normalised(&removed)?;
        prop_assert_eq!(model(&removed), &ma - &mr);
    }
}
