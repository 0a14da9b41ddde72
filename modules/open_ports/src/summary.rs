//! Keeping the result a reasonable size whatever the ruleset: a script or a
//! diff text of thousands of lines (5,000 ports x 2,000 sources become
//! millions of iptables rules) is summarised as its head and tail with a line
//! saying how much was left out; `full_script: true` returns it whole.

use std::fmt::Write;

/// Texts up to this many lines are returned whole.
pub const MAX_LINES: usize = 1000;
const HEAD: usize = 500;
const TAIL: usize = 100;

/// `text` itself, or its first and last lines around a note, when it is
/// longer than [`MAX_LINES`] lines and `full` is false.
pub fn summarise(text: &str, full: bool) -> String {
    let total = text.lines().count();
    if full || total <= MAX_LINES {
        return text.to_string();
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity((HEAD + TAIL + 1) * 80);
    for line in &lines[..HEAD] {
        out.push_str(line);
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "# ... {} of {total} lines not shown (full_script: true returns them all) ...",
        total - HEAD - TAIL
    );
    for line in &lines[total - TAIL..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_keep_head_and_tail_and_say_what_is_left_out() {
        let lines = |n: usize, prefix: &str| {
            (1..=n).fold(String::new(), |mut s, i| {
                let _ = writeln!(s, "{prefix}{i}");
                s
            })
        };
        let text = lines(5000, "line ");
        let short = summarise(&text, false);
        assert_eq!(short.lines().count(), HEAD + TAIL + 1);
        assert!(short.starts_with("line 1\n") && short.ends_with("line 5000\n"));
        assert!(short.contains("# ... 4400 of 5000 lines not shown (full_script: true returns them all) ...\n"));
        assert_eq!(summarise(&text, true), text);
        let small = lines(MAX_LINES, "");
        assert_eq!(summarise(&small, false), small);
    }
}
