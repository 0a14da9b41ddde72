//! The persistent side: sysctl configuration files in systemd-sysctl's
//! syntax (`key = value`, `#` or `;` comments, keys with dots or slashes, an
//! optional leading `-` meaning "ignore errors").

use crate::kernel::RESERVED_KEY;

/// One assignment found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment<'a> {
    pub key: String,
    pub value: &'a str,
}

/// Parses one line; `None` for blanks, comments and lines without `=`.
pub fn parse_line(line: &str) -> Option<Assignment<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    let (key, value) = line.split_once('=')?;
    let key = key.trim().trim_start_matches('-').trim();
    Some(Assignment { key: normalize_key(key), value: value.trim() })
}

/// systemd-sysctl accepts `net/ipv4/x` for `net.ipv4.x`: when the first
/// separator is a slash, slashes and dots swap.
pub fn normalize_key(key: &str) -> String {
    let first_separator = key.find(['.', '/']);
    match first_separator.map(|i| &key[i..=i]) {
        Some("/") => key
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                other => other,
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// The value the file gives the reservation key (the last assignment wins).
pub fn reserved_value(content: &str) -> Option<&str> {
    content.lines().rev().filter_map(parse_line).find(|a| a.key == RESERVED_KEY).map(|a| a.value)
}

const HEADER: &str = "# Written by portmatrix reserved_ports: ports kept out of the kernel's\n\
                      # ephemeral port allocator. Other lines in this file are left as they are.\n";

/// The file's new content: every line that sets the reservation key is
/// replaced by one line holding `value` (at the place of the first), every
/// other line stays as it was. A missing file gets a short header.
pub fn render(existing: Option<&str>, value: &str) -> String {
    let ours = if value.is_empty() { format!("{RESERVED_KEY} =") } else { format!("{RESERVED_KEY} = {value}") };
    let Some(existing) = existing else {
        return format!("{HEADER}{ours}\n");
    };
    let mut out = String::with_capacity(existing.len() + ours.len() + 1);
    let mut placed = false;
    for line in existing.split_inclusive('\n') {
        let sets_key = parse_line(line).is_some_and(|a| a.key == RESERVED_KEY);
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

    #[test]
    fn lines_are_parsed_as_systemd_sysctl_does() {
        assert_eq!(parse_line("  net/ipv4/ip_local_reserved_ports=80 ").unwrap().key, RESERVED_KEY);
        assert_eq!(parse_line("-net.ipv4.ip_local_reserved_ports = 80").unwrap().value, "80");
        assert_eq!(parse_line("kernel.pid_max = 4194304").unwrap().key, "kernel.pid_max");
        assert_eq!(parse_line("# net.ipv4.ip_local_reserved_ports = 1"), None);
        assert_eq!(parse_line("; comment"), None);
        assert_eq!(parse_line(""), None);
        // A slash-first key with a dot inside swaps (interface names like eth0.100).
        assert_eq!(normalize_key("net/ipv4/conf/eth0.100/rp_filter"), "net.ipv4.conf.eth0/100.rp_filter");
    }

    #[test]
    fn new_file_gets_header_and_value() {
        let text = render(None, "8080-8082");
        assert!(text.starts_with("# Written by portmatrix"));
        assert!(text.ends_with("\nnet.ipv4.ip_local_reserved_ports = 8080-8082\n"));
        assert_eq!(reserved_value(&text), Some("8080-8082"));
    }

    #[test]
    fn other_lines_stay_and_every_assignment_collapses_into_one() {
        let existing = "# mine\nvm.swappiness = 10\nnet/ipv4/ip_local_reserved_ports = 1\n\
                        kernel.pid_max=1000\n-net.ipv4.ip_local_reserved_ports=2";
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
