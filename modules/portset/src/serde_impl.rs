//! `PortRange` from an Ansible argument: a JSON integer (`8080`) or a string
//! (`"8080"`, `"1025-2180"`), validated with the same rules as the text form.

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
        PortRange::from_number(i64::try_from(n).unwrap_or(i64::MAX)).map_err(E::custom)
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
        assert!(parse("80.5").unwrap_err().contains("expected a port 1-65535"));
    }
}
