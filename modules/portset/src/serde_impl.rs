//! `PortRange` from an Ansible argument: a JSON integer (`8080`) or a string
//! (`"8080"`, `"1025-2180"`), validated with the same rules as the text form.
//!
//! A rejected number is quoted as given: integers exactly, whatever their
//! width (`serde_json` hands them over as `i64` or `u64`). `serde_json` reads a
//! number with a fraction or an exponent, and an integer beyond 64 bits, as
//! an `f64` (big integers would need its `arbitrary_precision` feature, which
//! routes every number through a string and costs memory on long lists), so
//! those are quoted in the float's shortest round-trip form, as `serde_json`
//! prints it: `1e+30`, `80.5`, and `1.8446744073709552e+19` for
//! 18446744073709551616.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::PortRange;

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PortRangeVisitor)
    }
}

struct PortRangeVisitor;

impl Visitor<'_> for PortRangeVisitor {
    type Value = PortRange;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a port 1-65535 or a range such as \"1025-2180\"")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortRange, E> {
        PortRange::from_number(n).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortRange, E> {
        PortRange::from_number(n).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<PortRange, E> {
        PortRange::from_float(f).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<PortRange, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use crate::PortRange;

    fn parse(json: &str) -> Result<PortRange, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_strings_become_ranges() {
        assert_eq!(parse("8080").unwrap().to_string(), "8080");
        assert_eq!(parse("\"1025-2180\"").unwrap().to_string(), "1025-2180");
    }

    #[test]
    fn invalid_values_keep_the_port_message() {
        assert!(parse("0").unwrap_err().starts_with("\"0\" is not a valid port: ports are 1-65535"));
        assert!(parse("\"5-3\"").unwrap_err().starts_with("range \"5-3\" is reversed"));
        assert!(parse("true").unwrap_err().contains("expected a port 1-65535"));
    }

    #[test]
    fn every_number_is_quoted_as_given() {
        let cases = [
            ("18446744073709551615", r#""18446744073709551615" is not a valid port: ports are 1-65535"#),
            ("9223372036854775808", r#""9223372036854775808" is not a valid port: ports are 1-65535"#),
            ("9223372036854775807", r#""9223372036854775807" is not a valid port: ports are 1-65535"#),
            ("-9223372036854775808", r#""-9223372036854775808" is not a valid port: ports are 1-65535"#),
            ("-1", r#""-1" is not a valid port: ports are 1-65535"#),
            ("65536", r#""65536" is not a valid port: ports are 1-65535"#),
            ("1e30", r#""1e+30" is not a valid port: ports are 1-65535"#),
            ("18446744073709551616", r#""1.8446744073709552e+19" is not a valid port: ports are 1-65535"#),
            ("-1.0", r#""-1.0" is not a valid port: ports are 1-65535"#),
            ("80.5", r#""80.5" is not a whole number: ports are 1-65535"#),
        ];
        for (json, message) in cases {
            assert!(parse(json).unwrap_err().starts_with(message), "{json}: {:?}", parse(json));
        }
        assert_eq!(parse("8080.0").unwrap().to_string(), "8080");
        assert_eq!(parse("8.08e3").unwrap().to_string(), "8080");
    }
}
