//! A single inclusive range of ports.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::PortError;

/// An inclusive range of ports `start..=end`, with `1 <= start <= end <= 65535`.
///
/// A single port is a range whose start equals its end. Parse one from text
/// with [`str::parse`] (`"8080"`, `"1025-2180"`, `" 1025 - 2180 "`) or from a
/// JSON integer with [`PortRange::from_number`]. `Display` prints `8080` or
/// `1025-2180`, never with leading zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// Every valid port: 1-65535.
    pub const ALL: PortRange = PortRange { start: 1, end: u16::MAX };

    /// The range `start..=end`.
    ///
    /// Fails with [`PortError::OutOfRange`] if either bound is 0 and with
    /// [`PortError::Reversed`] if `start > end`.
    pub fn new(start: u16, end: u16) -> Result<Self, PortError> {
        if start == 0 || end == 0 {
            return Err(PortError::OutOfRange { value: "0".into() });
        }
        if start > end {
            return Err(PortError::Reversed { start, end });
        }
        Ok(Self { start, end })
    }

    /// The range holding the single port `port`; fails for port 0.
    pub fn single(port: u16) -> Result<Self, PortError> {
        Self::new(port, port)
    }

    /// The single port given as a JSON integer of any width (`i64` or
    /// `u64`, as JSON parsers hand them over); fails with
    /// [`PortError::OutOfRange`] unless `1 <= n <= 65535`, quoting `n`
    /// exactly (18446744073709551615 stays 18446744073709551615).
    pub fn from_number(n: impl Into<i128>) -> Result<Self, PortError> {
        let n: i128 = n.into();
        match u16::try_from(n) {
            Ok(port) if port != 0 => Ok(Self { start: port, end: port }),
            _ => Err(PortError::OutOfRange { value: n.to_string() }),
        }
    }

    /// The single port given as a JSON number with a fraction or an
    /// exponent (`8080.0`, `1e30`), or an integer too wide for 64 bits,
    /// which JSON parsers without big-number support hand over as a float.
    /// A whole number 1-65535 is that port (Ansible's `int` type accepts
    /// `8080.0` too); any other whole number fails with
    /// [`PortError::OutOfRange`], any other value with
    /// [`PortError::NotWhole`]. Both quote `f` in the shortest form that
    /// reads back as the same float, as `serde_json` prints it (`1e+30`,
    /// `80.5`): digits beyond a float's precision are gone by then, so
    /// `99999999999999999999` is quoted as `1e+20`.
    pub fn from_float(f: f64) -> Result<Self, PortError> {
        let value = || zmij::Buffer::new().format(f).to_string();
        if f.fract() != 0.0 || !f.is_finite() {
            return Err(PortError::NotWhole { value: value() });
        }
        if (1.0..=65535.0).contains(&f) {
            #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a whole number 1-65535")]
            let port = f as u16;
            return Ok(Self { start: port, end: port });
        }
        Err(PortError::OutOfRange { value: value() })
    }

    /// The range `start..=end` from wider integers, or `None` unless
    /// `1 <= start <= end <= 65535`. Lets set arithmetic work in `u32` without
    /// overflow at 65535.
    pub(crate) fn from_u32(start: u32, end: u32) -> Option<Self> {
        let start = u16::try_from(start).ok()?;
        let end = u16::try_from(end).ok()?;
        Self::new(start, end).ok()
    }

    /// The first port of the range.
    pub const fn start(self) -> u16 {
        self.start
    }

    /// The last port of the range (inclusive).
    pub const fn end(self) -> u16 {
        self.end
    }

    /// The number of ports in the range, 1-65535.
    #[expect(clippy::len_without_is_empty, reason = "a range always holds at least one port")]
    pub const fn len(self) -> u32 {
        self.end as u32 - self.start as u32 + 1
    }

    /// Whether `port` lies within the range.
    pub const fn contains(self, port: u16) -> bool {
        self.start <= port && port <= self.end
    }

    /// The ports of the range, in ascending order.
    pub fn ports(self) -> RangeInclusive<u16> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    /// `8080` for a single port, `1025-2180` for a longer range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end { write!(f, "{}", self.start) } else { write!(f, "{}-{}", self.start, self.end) }
    }
}

impl FromStr for PortRange {
    type Err = PortError;

    /// Parses `"8080"` or `"1025-2180"`; whitespace around the text and
    /// around the `-` is ignored. Numbers are decimal; leading zeros are read
    /// as decimal (`"08080"` is 8080).
    fn from_str(text: &str) -> Result<Self, PortError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PortError::Empty);
        }
        if text.starts_with(['+', '-']) {
            return Err(PortError::NotANumber { text: text.into() });
        }
        match text.split_once('-') {
            None => {
                let port = parse_port(text)?;
                Ok(Self { start: port, end: port })
            }
            Some((start, end)) => {
                let (start, end) = (start.trim(), end.trim());
                if start.is_empty() || end.is_empty() || end.contains('-') {
                    return Err(PortError::BadRange { text: text.into() });
                }
                let start = parse_port(start)?;
                let end = parse_port(end)?;
                Self::new(start, end)
            }
        }
    }
}

/// Parses one port number: trimmed, non-empty text of decimal digits whose
/// value is 1-65535. Never overflows, however many digits there are.
fn parse_port(text: &str) -> Result<u16, PortError> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber { text: text.into() });
    }
    let out_of_range = || PortError::OutOfRange { value: text.into() };
    let digits = text.trim_start_matches('0');
    if digits.len() > 5 {
        return Err(out_of_range());
    }
    // At most five digits: at most 99999, far from overflowing a u32.
    let value = digits.bytes().fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    match u16::try_from(value) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(out_of_range()),
    }
}

#[cfg(test)]
mod tests {
    use super::PortRange;
    use crate::PortError;

    fn parse(text: &str) -> Result<PortRange, PortError> {
        text.parse()
    }

    fn range(start: u16, end: u16) -> PortRange {
        PortRange::new(start, end).expect("valid range")
    }

    fn not_a_number(text: &str) -> PortError {
        PortError::NotANumber { text: text.into() }
    }

    fn out_of_range(value: &str) -> PortError {
        PortError::OutOfRange { value: value.into() }
    }

    fn bad_range(text: &str) -> PortError {
        PortError::BadRange { text: text.into() }
    }

    #[test]
    fn parses_single_ports_and_ranges() {
        assert_eq!(parse("8080"), Ok(range(8080, 8080)));
        assert_eq!(parse("1025-2180"), Ok(range(1025, 2180)));
        assert_eq!(parse("1"), Ok(range(1, 1)));
        assert_eq!(parse("65535"), Ok(range(65535, 65535)));
        assert_eq!(parse("1-65535"), Ok(PortRange::ALL));
        assert_eq!(parse("7-7"), Ok(range(7, 7)));
    }

    #[test]
    fn trims_whitespace_around_numbers_and_the_dash() {
        assert_eq!(parse("  8080\n"), Ok(range(8080, 8080)));
        assert_eq!(parse("\t1025 - 2180 "), Ok(range(1025, 2180)));
        assert_eq!(parse("1025 -2180"), Ok(range(1025, 2180)));
        assert_eq!(parse("1025-  2180"), Ok(range(1025, 2180)));
    }

    #[test]
    fn leading_zeros_are_decimal_and_never_printed() {
        assert_eq!(parse("08080"), Ok(range(8080, 8080)));
        assert_eq!(parse("01025"), Ok(range(1025, 1025)));
        assert_eq!(parse("010-020"), Ok(range(10, 20)));
        assert_eq!(parse("0000000000000000000000065535"), Ok(range(65535, 65535)));
        assert_eq!(parse("01025").map(|r| r.to_string()), Ok("1025".into()));
    }

    #[test]
    fn empty_text_is_an_error() {
        assert_eq!(parse(""), Err(PortError::Empty));
        assert_eq!(parse("   "), Err(PortError::Empty));
        assert_eq!(parse("\n"), Err(PortError::Empty));
    }

    #[test]
    fn signs_are_errors() {
        assert_eq!(parse("+80"), Err(not_a_number("+80")));
        assert_eq!(parse("-80"), Err(not_a_number("-80")));
        assert_eq!(parse(" -5-3"), Err(not_a_number("-5-3")));
        assert_eq!(parse("1-+3"), Err(not_a_number("+3")));
        assert_eq!(parse("+1-3"), Err(not_a_number("+1-3")));
    }

    #[test]
    fn non_decimal_text_is_an_error() {
        assert_eq!(parse("0x10"), Err(not_a_number("0x10")));
        assert_eq!(parse("0o17"), Err(not_a_number("0o17")));
        assert_eq!(parse("http"), Err(not_a_number("http")));
        assert_eq!(parse("80 80"), Err(not_a_number("80 80")));
        assert_eq!(parse("10 25-2180"), Err(not_a_number("10 25")));
        assert_eq!(parse("8080,9000"), Err(not_a_number("8080,9000")));
        assert_eq!(parse("8080;9000"), Err(not_a_number("8080;9000")));
        assert_eq!(parse("80.0"), Err(not_a_number("80.0")));
        assert_eq!(parse("1e3"), Err(not_a_number("1e3")));
        assert_eq!(parse("٣"), Err(not_a_number("٣")), "non-ASCII digit");
        assert_eq!(parse("８０"), Err(not_a_number("８０")), "full-width digits");
        assert_eq!(parse("1025-abc"), Err(not_a_number("abc")));
    }

    #[test]
    fn malformed_ranges_are_errors() {
        assert_eq!(parse("8080-"), Err(bad_range("8080-")));
        assert_eq!(parse("8080 - "), Err(bad_range("8080 -")));
        assert_eq!(parse("1-2-3"), Err(bad_range("1-2-3")));
        assert_eq!(parse("5--3"), Err(bad_range("5--3")));
        assert_eq!(parse("-"), Err(not_a_number("-")));
    }

    #[test]
    fn out_of_range_values_are_errors() {
        assert_eq!(parse("0"), Err(out_of_range("0")));
        assert_eq!(parse("000"), Err(out_of_range("000")));
        assert_eq!(parse("65536"), Err(out_of_range("65536")));
        assert_eq!(parse("70000"), Err(out_of_range("70000")));
        assert_eq!(parse("99999"), Err(out_of_range("99999")));
        assert_eq!(parse("100000"), Err(out_of_range("100000")));
        assert_eq!(parse("0-5"), Err(out_of_range("0")));
        assert_eq!(parse("1-70000"), Err(out_of_range("70000")));
        assert_eq!(
            parse("1-65536").map_err(|e| e.to_string()),
            Err(r#""65536" is not a valid port: ports are 1-65535"#.into())
        );
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let huge = "99999999999999999999";
        assert_eq!(parse(huge), Err(out_of_range(huge)));
        let longer = "1".repeat(10_000);
        assert_eq!(parse(&longer), Err(out_of_range(&longer)));
        assert_eq!(parse("18446744073709551616"), Err(out_of_range("18446744073709551616")));
    }

    #[test]
    fn reversed_ranges_are_errors() {
        assert_eq!(parse("5-3"), Err(PortError::Reversed { start: 5, end: 3 }));
        assert_eq!(parse("65535-1"), Err(PortError::Reversed { start: 65535, end: 1 }));
        assert_eq!(PortRange::new(9, 8), Err(PortError::Reversed { start: 9, end: 8 }));
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(PortRange::new(0, 5), Err(out_of_range("0")));
        assert_eq!(PortRange::new(5, 0), Err(out_of_range("0")));
        assert_eq!(PortRange::single(0), Err(out_of_range("0")));
        assert_eq!(PortRange::single(22), Ok(range(22, 22)));
        assert_eq!(PortRange::new(1, 65535), Ok(PortRange::ALL));
    }

    #[test]
    fn from_number_accepts_only_valid_ports() {
        assert_eq!(PortRange::from_number(1), Ok(range(1, 1)));
        assert_eq!(PortRange::from_number(65535), Ok(range(65535, 65535)));
        assert_eq!(PortRange::from_number(0), Err(out_of_range("0")));
        assert_eq!(PortRange::from_number(-5), Err(out_of_range("-5")));
        assert_eq!(PortRange::from_number(65536), Err(out_of_range("65536")));
        assert_eq!(PortRange::from_number(i64::MIN), Err(out_of_range("-9223372036854775808")));
        assert_eq!(PortRange::from_number(i64::MAX), Err(out_of_range("9223372036854775807")));
        assert_eq!(PortRange::from_number(u64::MAX), Err(out_of_range("18446744073709551615")));
        assert_eq!(PortRange::from_number(1u64 << 63), Err(out_of_range("9223372036854775808")));
        assert_eq!(PortRange::from_number(8080u64), Ok(range(8080, 8080)));
    }

    #[test]
    fn from_float_accepts_whole_ports_and_quotes_the_rest() {
        let not_whole = |value: &str| PortError::NotWhole { value: value.into() };
        assert_eq!(PortRange::from_float(8080.0), Ok(range(8080, 8080)));
        assert_eq!(PortRange::from_float(1.0), Ok(range(1, 1)));
        assert_eq!(PortRange::from_float(65535.0), Ok(range(65535, 65535)));
        assert_eq!(PortRange::from_float(0.0), Err(out_of_range("0.0")));
        assert_eq!(PortRange::from_float(-1.0), Err(out_of_range("-1.0")));
        assert_eq!(PortRange::from_float(65536.0), Err(out_of_range("65536.0")));
        assert_eq!(PortRange::from_float(1e30), Err(out_of_range("1e+30")));
        // 2^64: the first integer serde_json reads as a float.
        assert_eq!(PortRange::from_float(18_446_744_073_709_551_616.0), Err(out_of_range("1.8446744073709552e+19")));
        assert_eq!(PortRange::from_float(80.5), Err(not_whole("80.5")));
        assert_eq!(PortRange::from_float(0.5), Err(not_whole("0.5")));
        assert_eq!(PortRange::from_float(f64::NAN), Err(not_whole("NaN")));
        assert_eq!(PortRange::from_float(f64::INFINITY), Err(not_whole("inf")));
    }

    #[test]
    fn from_u32_rejects_what_does_not_fit() {
        assert_eq!(PortRange::from_u32(1, 65535), Some(PortRange::ALL));
        assert_eq!(PortRange::from_u32(65536, 65536), None);
        assert_eq!(PortRange::from_u32(1, 65536), None);
        assert_eq!(PortRange::from_u32(0, 3), None);
        assert_eq!(PortRange::from_u32(4, 3), None);
    }

    #[test]
    fn accessors() {
        let r = range(1025, 2180);
        assert_eq!((r.start(), r.end(), r.len()), (1025, 2180, 1156));
        assert_eq!(range(8080, 8080).len(), 1);
        assert_eq!(PortRange::ALL.len(), 65535);
        assert!(r.contains(1025) && r.contains(2180) && r.contains(1500));
        assert!(!r.contains(1024) && !r.contains(2181) && !r.contains(0));
        assert_eq!(range(65534, 65535).ports().collect::<Vec<_>>(), [65534, 65535]);
    }

    #[test]
    fn display() {
        assert_eq!(range(8080, 8080).to_string(), "8080");
        assert_eq!(range(1025, 2180).to_string(), "1025-2180");
        assert_eq!(range(8080, 8081).to_string(), "8080-8081");
        assert_eq!(PortRange::ALL.to_string(), "1-65535");
    }
}
