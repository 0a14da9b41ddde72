//! Running a host's own tools (nft, iptables-save, systemctl): found on the
//! module's PATH (as Ansible runs it), fed a script on stdin, each run
//! bounded in time and output ([`crate::command`]), their stderr kept for
//! the message.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::command::{self, Limits, RunError};

/// Used when the module's environment has no PATH at all.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The most a tool may print: `iptables-save` of the largest ruleset measured
/// (1,000 ports x 1,000 sources: 67,000 rules per family) prints about 6 MB.
const MAX_OUTPUT: usize = 256 << 20;

/// How much of a failed tool's stderr a message quotes: its first lines say
/// what went wrong; the rest would only swell the result.
const MAX_STDERR: usize = 4096;

/// Why a tool gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Not on PATH.
    #[error("{tool} was not found on PATH ({path})")]
    Missing {
        /// The tool's name.
        tool: String,
        /// The PATH searched.
        path: String,
    },
    /// Could not start, hung, or printed without end.
    #[error(transparent)]
    Run(#[from] RunError),
    /// Ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command as the user knows it (`nft -f -`).
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr, quoted short.
        stderr: String,
    },
}

impl ToolError {
    /// nft and iptables say "No such file or directory" for a missing table or chain.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ToolError::Failed { stderr, .. } if stderr.contains("No such file or directory"))
    }
}

/// Where tools are looked up, and how long each may take.
#[derive(Debug, Clone)]
pub struct Tools {
    path: OsString,
    timeout: Duration,
    max_output: usize,
}

impl Tools {
    /// Tools on `path` (the default PATH when `None`), each run bounded by `timeout`.
    pub fn new(path: Option<OsString>, timeout: Duration) -> Tools {
        Tools { path: path.unwrap_or_else(|| DEFAULT_PATH.into()), timeout, max_output: MAX_OUTPUT }
    }

    /// The same tools, each allowed to print at most `bytes` on stdout (and
    /// again on stderr) instead of the default bound.
    #[must_use]
    pub fn with_max_output(mut self, bytes: usize) -> Tools {
        self.max_output = bytes;
        self
    }

    /// The tool's path: the first executable of that name in a directory of
    /// PATH. Entries that are not absolute (an empty entry means the working
    /// directory to a shell) are skipped: a module running as root must not
    /// run whatever `./nft` the directory it was started in holds.
    pub fn find(&self, tool: &str) -> Result<PathBuf, ToolError> {
        std::env::split_paths(&self.path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(tool))
            .find(|p| is_executable(p))
            .ok_or_else(|| ToolError::Missing {
                tool: tool.to_string(),
                path: self.path.to_string_lossy().into_owned(),
            })
    }

    /// The PATH searched, for messages.
    pub fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Whether the tool is on PATH.
    pub fn has(&self, tool: &str) -> bool {
        self.find(tool).is_ok()
    }

    /// Runs `tool args`, with `input` on stdin; its stdout on success.
    pub fn run(&self, tool: &str, args: &[&str], input: Option<&str>) -> Result<String, ToolError> {
        let mut command = Command::new(self.find(tool)?);
        command.args(args).env("PATH", &self.path).env("LC_ALL", "C");
        // Messages name the tool as the user knows it, not its full path.
        let shown = std::iter::once(tool).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        let limits = Limits { timeout: self.timeout, max_output: self.max_output };
        let input = input.map(|text| text.as_bytes().to_vec());
        let out = command::run_shown_as(command, shown.clone(), input, limits)?;
        if !out.status.success() {
            return Err(ToolError::Failed {
                command: shown,
                status: out.status.to_string(),
                stderr: quoted_stderr(&out.stderr),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A tool's stderr for a message: trimmed, at most [`MAX_STDERR`] bytes.
fn quoted_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return "(nothing on stderr)".to_string();
    }
    if text.len() <= MAX_STDERR {
        return text.to_string();
    }
    let cut = (0..=MAX_STDERR).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    format!("{} ... ({} more bytes of stderr)", &text[..cut], text.len() - cut)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(path: &str) -> Tools {
        Tools::new(Some(path.into()), Duration::from_secs(5))
    }

    #[test]
    fn finds_tools_on_the_given_path_only() {
        assert!(tools("/nonexistent:/bin:/usr/bin").has("sh"));
        let missing = tools("/nonexistent").find("sh").unwrap_err();
        assert_eq!(missing.to_string(), "sh was not found on PATH (/nonexistent)");
    }

    #[test]
    fn stdin_goes_in_and_failures_keep_stderr() {
        let tools = tools("/bin:/usr/bin");
        assert_eq!(tools.run("cat", &[], Some("hello")).unwrap(), "hello");
        let err = tools.run("sh", &["-c", "echo 'No such file or directory' >&2; exit 3"], None).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().starts_with("sh -c echo"), "{err}");
    }

    #[test]
    fn stderr_is_quoted_short() {
        assert_eq!(quoted_stderr(b"  \n"), "(nothing on stderr)");
        let long = quoted_stderr("x".repeat(50_000).as_bytes());
        assert!(long.len() < MAX_STDERR + 100 && long.ends_with("(45904 more bytes of stderr)"), "{}", &long[4000..]);
    }

    #[test]
    fn a_hanging_tool_is_named_when_killed() {
        let tools = Tools::new(Some("/bin:/usr/bin".into()), Duration::from_millis(200));
        let err = tools.run("sleep", &["30"], None).unwrap_err();
        assert_eq!(err.to_string(), "sleep 30 did not finish within 0.2 s and was killed");
    }
}
