//! Running the firewall's own tools: found on the module's PATH (as Ansible
//! runs it), fed a script on stdin, their stderr kept for the message.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Used when the module's environment has no PATH at all.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    #[error("{tool} was not found on PATH ({path})")]
    Missing { tool: String, path: String },
    #[error("cannot run {command}: {reason}")]
    Spawn { command: String, reason: String },
    #[error("{command} failed ({status}): {stderr}")]
    Failed { command: String, status: String, stderr: String },
}

impl ToolError {
    /// nft and iptables say "No such file or directory" for a missing table or chain.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ToolError::Failed { stderr, .. } if stderr.contains("No such file or directory"))
    }
}

/// Where tools are looked up.
#[derive(Debug, Clone)]
pub struct Tools {
    path: OsString,
}

impl Tools {
    pub fn new(path: Option<OsString>) -> Tools {
        Tools { path: path.unwrap_or_else(|| DEFAULT_PATH.into()) }
    }

    pub fn find(&self, tool: &str) -> Result<PathBuf, ToolError> {
        std::env::split_paths(&self.path).map(|dir| dir.join(tool)).find(|p| is_executable(p)).ok_or_else(|| {
            ToolError::Missing { tool: tool.to_string(), path: self.path.to_string_lossy().into_owned() }
        })
    }

    /// The PATH searched, for messages.
    pub fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    pub fn has(&self, tool: &str) -> bool {
        self.find(tool).is_ok()
    }

    /// Runs `tool args`, with `input` on stdin; its stdout on success.
    pub fn run(&self, tool: &str, args: &[&str], input: Option<&str>) -> Result<String, ToolError> {
        let program = self.find(tool)?;
        let command = std::iter::once(tool).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        let spawn_error = |e: std::io::Error| ToolError::Spawn { command: command.clone(), reason: e.to_string() };
        let mut child = Command::new(&program)
            .args(args)
            .env("PATH", &self.path)
            .env("LC_ALL", "C")
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            // A tool that exits early closes the pipe; its status tells why.
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_error)?;
        if !out.status.success() {
            return Err(ToolError::Failed {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tools_on_the_given_path_only() {
        let tools = Tools::new(Some("/nonexistent:/bin:/usr/bin".into()));
        assert!(tools.has("sh"));
        let missing = Tools::new(Some("/nonexistent".into())).find("sh").unwrap_err();
        assert_eq!(missing.to_string(), "sh was not found on PATH (/nonexistent)");
    }

    #[test]
    fn stdin_goes_in_and_failures_keep_stderr() {
        let tools = Tools::new(Some("/bin:/usr/bin".into()));
        assert_eq!(tools.run("cat", &[], Some("hello")).unwrap(), "hello");
        let err = tools.run("sh", &["-c", "echo 'No such file or directory' >&2; exit 3"], None).unwrap_err();
        assert!(err.is_not_found());
        assert!(err.to_string().starts_with("sh -c echo"), "{err}");
    }
}
