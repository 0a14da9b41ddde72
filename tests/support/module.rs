//! Running a module binary the way Ansible does: arguments in a file, one
//! JSON object back.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// What one module run returned.
#[derive(Debug, Clone)]
pub struct ModuleRun {
    pub json: Value,
    pub exit_code: i32,
    pub stderr: String,
}

impl ModuleRun {
    pub fn failed(&self) -> bool {
        self.json["failed"] == true
    }

    pub fn changed(&self) -> bool {
        self.json["changed"] == true
    }

    pub fn msg(&self) -> &str {
        self.json["msg"].as_str().unwrap_or("")
    }

    pub fn warnings(&self) -> Vec<String> {
        self.json["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    /// Asserts a clean failure: `failed`, exit status 1, a message containing `expected`.
    pub fn assert_failed_with(&self, expected: &str) {
        assert_eq!(self.exit_code, 1, "exit status of a failure: {self:?}");
        assert!(self.failed(), "expected failed: {self:?}");
        assert!(self.msg().contains(expected), "message {:?} should contain {expected:?}", self.msg());
    }

    pub fn assert_ok(&self) {
        assert_eq!(self.exit_code, 0, "{self:?}");
        assert!(!self.failed(), "{self:?}");
    }
}

/// Runs `command` (a module binary, possibly behind nsenter) with `args_text`
/// written to an args file, and checks that stdout is exactly one JSON object.
pub fn run_with_args_text(mut command: Command, args_text: &str) -> ModuleRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let args_file = dir.path().join("args");
    std::fs::write(&args_file, args_text).expect("write args file");
    command.arg(&args_file);
    run(command)
}

/// A module that has not answered by then is hung: fail instead of waiting.
const MODULE_TIMEOUT: Duration = Duration::from_mins(1);

/// Runs a module command whose arguments are already complete.
pub fn run(command: Command) -> ModuleRun {
    let out = assert_cmd::Command::from_std(command).timeout(MODULE_TIMEOUT).output().expect("module runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "a module prints exactly one line: {stdout:?}");
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?}"));
    assert!(json.is_object(), "one JSON object: {json}");
    ModuleRun {
        json,
        exit_code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Convenience: the module binary from library/, run directly.
pub fn command_for(module: &str) -> Command {
    Command::new(crate::module_binary(module))
}
