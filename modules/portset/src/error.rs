//! The error type of this crate.

/// Why a port, a port range or a port list was rejected.
///
/// Every message is written for an operator and names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// The port text was empty or only whitespace.
    #[error("empty port: expected a port 1-65535 or a range such as 1025-2180")]
    Empty,

    /// A comma-separated list had an empty entry, such as `"8080,,9000"` or
    /// `"8080,"`.
    #[error("port list {list:?} has an empty entry: separate ports and ranges with single commas")]
    EmptyEntry {
        /// The whole list, trimmed, as it was given.
        list: String,
    },

    /// The text is not a plain decimal number: a sign, a `0x` prefix, a space
    /// inside the number, or any other character than `0`-`9`.
    #[error(
        "{text:?} is not a port number: expected decimal digits only (1-65535), \
         without sign, prefix or inner spaces"
    )]
    NotANumber {
        /// The offending text, trimmed.
        text: String,
    },

    /// The text has a `-` but is not `START-END`: a side is missing (`"8080-"`)
    /// or there is more than one `-` (`"1-2-3"`).
    #[error("{text:?} is not a valid port range: expected START-END such as 1025-2180")]
    BadRange {
        /// The offending range text, trimmed.
        text: String,
    },

    /// A number outside 1-65535 (0, more than 65535, or a negative JSON
    /// number).
    #[error("{value:?} is not a valid port: ports are 1-65535")]
    OutOfRange {
        /// The offending number as it was written (leading zeros kept), or a
        /// float's shortest round-trip form (see `PortRange::from_float`).
        value: String,
    },

    /// A JSON number with a fraction, such as `80.5`.
    #[error("{value:?} is not a whole number: ports are 1-65535")]
    NotWhole {
        /// The number in its shortest round-trip form, as `serde_json` prints it.
        value: String,
    },

    /// A range whose start is greater than its end, such as `"5-3"`.
    #[error("range \"{start}-{end}\" is reversed: the start must not exceed the end")]
    Reversed {
        /// The start as written.
        start: u16,
        /// The end as written.
        end: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::PortError;

    #[test]
    fn messages_name_the_offending_text() {
        let cases = [
            (PortError::Empty, "empty port: expected a port 1-65535 or a range such as 1025-2180"),
            (
                PortError::EmptyEntry { list: "8080,,9000".into() },
                r#"port list "8080,,9000" has an empty entry: separate ports and ranges with single commas"#,
            ),
            (
                PortError::NotANumber { text: "0x10".into() },
                r#""0x10" is not a port number: expected decimal digits only (1-65535), without sign, prefix or inner spaces"#,
            ),
            (
                PortError::BadRange { text: "8080-".into() },
                r#""8080-" is not a valid port range: expected START-END such as 1025-2180"#,
            ),
            (PortError::OutOfRange { value: "70000".into() }, r#""70000" is not a valid port: ports are 1-65535"#),
            (PortError::NotWhole { value: "80.5".into() }, r#""80.5" is not a whole number: ports are 1-65535"#),
            (PortError::Reversed { start: 5, end: 3 }, r#"range "5-3" is reversed: the start must not exceed the end"#),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn control_characters_are_escaped_in_messages() {
        let error = PortError::NotANumber { text: "8080\n9000".into() };
        assert!(error.to_string().starts_with(r#""8080\n9000" is not"#));
    }
}
