//! The persistent side: sysctl configuration files in systemd-sysctl's
//! syntax, parsed as systemd-sysctl (252) parses them: lines end at `\n`,
//! `\r` or NUL; `#` or `;` starts a comment; `key = value` with spaces,
//! tabs and CRs trimmed (a trailing backslash is kept: there are no
//! continuation lines); one leading `-` on the key means "ignore errors";
//! a `-key` line without `=` excludes the key from glob assignments and
//! cancels its earlier assignments; keys with dots or slashes.

use crate::kernel::{RESERVED_KEY, RESERVED_PATH};

/// One line that concerns a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// `key = value` (or `-key = value`).
    Assign { key: String, value: &'a str },
    /// `-key` alone: no value, and earlier assignments of the key are dropped.
    Exclude { key: String },
}

impl Line<'_> {
    /// The key in systemd's normal form (`net/ipv4/ip_local_reserved_ports`).
    pub fn key(&self) -> &str {
        match self {
            Line::Assign { key, .. } | Line::Exclude { key } => key,
        }
    }
}

/// What systemd's `strstrip` removes.
const WHITESPACE: &[char] = &[' ', '\t', '\n', '\r'];

/// Parses one line; `None` for blanks, comments and lines that are not
/// assignments (systemd warns about those and goes on).
pub fn parse_line(line: &str) -> Option<Line<'_>> {
    let line = line.trim_matches(WHITESPACE);
    if line.is_empty() || line.starts_with(['#', ';']) {
        return None;
    }
    let Some((key, value)) = line.split_once('=') else {
        let key = line.strip_prefix('-')?;
        return Some(Line::Exclude { key: normalize_key(key.trim_matches(WHITESPACE)) });
    };
    let key = key.strip_prefix('-').unwrap_or(key);
    Some(Line::Assign { key: normalize_key(key.trim_matches(WHITESPACE)), value: value.trim_matches(WHITESPACE) })
}

/// systemd's `sysctl_normalize`: when the first separator is a dot, dots
/// and slashes swap (`net.ipv4.x` is `net/ipv4/x`; `net/ipv4/eth0.100`
/// stays); then empty and `.` path components go, and a leading slash.
pub fn normalize_key(key: &str) -> String {
    let swapped: String = if key.find(['.', '/']).is_some_and(|i| key[i..].starts_with('.')) {
        key.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                other => other,
            })
            .collect()
    } else {
        key.to_string()
    };
    let parts: Vec<&str> = swapped.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() && swapped.starts_with('/') { "/".to_string() } else { parts.join("/") }
}

/// Whether the line assigns or excludes the reservation key.
pub fn concerns_reservation(line: &Line<'_>) -> bool {
    line.key() == RESERVED_PATH
}

/// The file's lines as systemd-sysctl splits them.
pub fn lines(content: &str) -> impl Iterator<Item = &str> {
    content.split(['\n', '\r', '\0'])
}

/// The lines of `content` that assign (`Some(value)`) or exclude (`None`)
/// the reservation key, in order; the last one decides.
pub fn reservation_lines(content: &str) -> impl Iterator<Item = Option<&str>> {
    lines(content).filter_map(parse_line).filter(concerns_reservation).map(|line| match line {
        Line::Assign { value, .. } => Some(value),
        Line::Exclude { .. } => None,
    })
}

/// Our key in the dotted form people write (and the file gets).
const OUR_KEY: &str = RESERVED_KEY;

const HEADER: &str = "# Written by portmatrix reserved_ports: ports kept out of the kernel's\n\
                      # ephemeral port allocator. Other lines in this file are left as they are.\n";

/// The file's new content: every line that sets (or excludes) the
/// reservation key is replaced by one line holding `value` (at the place of
/// the first), every other line stays as it was. A missing file gets a
/// short header.
pub fn render(existing: Option<&str>, value: &str) -> String {
    let ours = if value.is_empty() { format!("{OUR_KEY} =") } else { format!("{OUR_KEY} = {value}") };
    let Some(existing) = existing else {
        return format!("{HEADER}{ours}\n");
    };
    let mut out = String::with_capacity(existing.len() + ours.len() + 1);
    let mut placed = false;
    for line in existing.split_inclusive('\n') {
        let sets_key = parse_line(line).is_some_and(|l| concerns_reservation(&l));
        if !sets_key {
            out.push_str(line);
        } else if !placed {
            out.push_str(&ours);
            out.push('\n');
            placed = true;
        }
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&ours);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(line: &str) -> Option<(String, String)> {
        match parse_line(line)? {
            Line::Assign { key, value } => Some((key, value.to_string())),
            Line::Exclude { .. } => None,
        }
    }

    #[test]
    fn lines_are_parsed_as_systemd_sysctl_does() {
        let ours = |value: &str| Some((RESERVED_PATH.to_string(), value.to_string()));
        assert_eq!(assigned("  net/ipv4/ip_local_reserved_ports=80 "), ours("80"));
        assert_eq!(assigned("-net.ipv4.ip_local_reserved_ports = 80"), ours("80"));
        assert_eq!(assigned("- net.ipv4.ip_local_reserved_ports\t=\t80\r"), ours("80"));
        assert_eq!(assigned("net.ipv4..ip_local_reserved_ports = 80"), ours("80"));
        assert_eq!(assigned("/net/ipv4/ip_local_reserved_ports = 80"), ours("80"));
        // No continuation lines: the backslash is part of the value.
        assert_eq!(assigned("net.ipv4.ip_local_reserved_ports = 17\\"), ours("17\\"));
        // Only one leading dash is taken off.
        assert_eq!(assigned("--net.ipv4.ip_local_reserved_ports = 80").unwrap().0, "-net/ipv4/ip_local_reserved_ports");
        assert_eq!(assigned("kernel.pid_max = 4194304").unwrap().0, "kernel/pid_max");
        assert_eq!(
            parse_line("-net.ipv4.ip_local_reserved_ports"),
            Some(Line::Exclude { key: RESERVED_PATH.to_string() })
        );
        assert_eq!(parse_line("net.ipv4.ip_local_reserved_ports"), None, "not an assignment");
        assert_eq!(parse_line("# net.ipv4.ip_local_reserved_ports = 1"), None);
        assert_eq!(parse_line("; comment"), None);
        assert_eq!(parse_line(""), None);
        // A slash-first key keeps its dots (interface names like eth0.100).
        assert_eq!(normalize_key("net/ipv4/conf/eth0.100/rp_filter"), "net/ipv4/conf/eth0.100/rp_filter");
        assert_eq!(normalize_key("net.ipv4.conf.eth0/100.rp_filter"), "net/ipv4/conf/eth0.100/rp_filter");
    }

    #[test]
    fn the_last_line_about_the_key_decides_and_cr_or_nul_end_lines() {
        let text = "net.ipv4.ip_local_reserved_ports = 1\rnet.ipv4.ip_local_reserved_ports = 2\0-net.ipv4.ip_local_reserved_ports\n";
        assert_eq!(reservation_lines(text).collect::<Vec<_>>(), vec![Some("1"), Some("2"), None]);
    }

    #[test]
    fn new_file_gets_header_and_value() {
        let text = render(None, "8080-8082");
        assert!(text.starts_with("# Written by portmatrix"));
        assert!(text.ends_with("\nnet.ipv4.ip_local_reserved_ports = 8080-8082\n"));
        assert_eq!(reservation_lines(&text).last(), Some(Some("8080-8082")));
    }

    #[test]
    fn other_lines_stay_and_every_assignment_collapses_into_one() {
        let existing = "# mine\nvm.swappiness = 10\nnet/ipv4/ip_local_reserved_ports = 1\n\
                        kernel.pid_max=1000\n-net.ipv4.ip_local_reserved_ports=2\n-net.ipv4.ip_local_reserved_ports";
        assert_eq!(
            render(Some(existing), "1-2,9000"),
            "# mine\nvm.swappiness = 10\nnet.ipv4.ip_local_reserved_ports = 1-2,9000\nkernel.pid_max=1000\n"
        );
    }

    #[test]
    fn appends_when_absent_and_keeps_missing_final_newline_safe() {
        assert_eq!(
            render(Some("vm.swappiness = 10"), "80"),
            "vm.swappiness = 10\nnet.ipv4.ip_local_reserved_ports = 80\n"
        );
        assert_eq!(render(Some(""), ""), "net.ipv4.ip_local_reserved_ports =\n");
    }

    #[test]
    fn rendering_is_idempotent() {
        let once = render(Some("a = 1\nnet.ipv4.ip_local_reserved_ports = 5\n"), "80");
        assert_eq!(render(Some(&once), "80"), once);
    }
}
