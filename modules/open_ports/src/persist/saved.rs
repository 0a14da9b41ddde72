//! The saved request: what the boot restore applies. A JSON file holding the
//! module's marker, the version that wrote it, and the options of the run
//! that made it, normalised (rules as the `rules` return value shows them,
//! the backend that run chose instead of `auto`), so that the same request
//! written another way saves the same bytes.

use std::path::Path;

use std::time::Duration;

use portmatrix_ansible::Failure;
use portmatrix_host::file::read_regular;
use portmatrix_host::lock::{LOCK_DIR, ObjectLock};
use serde_json::{Map, Value, json};

use crate::options::Request;

/// The most a saved request may hold: as much as a module's arguments.
pub const MAX_BYTES: usize = portmatrix_ansible::MAX_ARGS_BYTES;

/// Why a saved request cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedError {
    #[error("cannot read the saved request {path}: {detail}")]
    Unreadable { path: String, detail: String },
    #[error("{path} is not JSON ({detail})")]
    NotJson { path: String, detail: String },
    #[error(
        "{path} is not a request saved by open_ports: it lacks its marker (\"marker\": \"portmatrix open_ports NAME\" \
         naming the args' name)"
    )]
    NoMarker { path: String },
}

/// The file's content for `request`, applied with `backend` (`nftables` or
/// `iptables`); ends in a newline.
pub fn render(request: &Request, backend: &str, marker: &str) -> String {
    let args = json!({
        "name": request.name,
        "state": "present",
        "backend": backend,
        "enforce": request.ruleset.enforce,
        "forward": request.ruleset.forward,
        "rules": request.ruleset.to_json(),
        "jump_from": request.jump_from,
        "lock_timeout": request.lock_timeout.as_secs(),
        "command_timeout": request.command_timeout.as_secs(),
    });
    let saved = json!({
        "marker": marker,
        "written_by": format!("open_ports {}", env!("CARGO_PKG_VERSION")),
        "args": args,
    });
    let mut text = serde_json::to_string_pretty(&saved).unwrap_or_default();
    text.push('\n');
    text
}

/// The options a saved request holds, checked to be the module's own: its
/// marker names the `name` among them. `path` is for messages.
pub fn parse(text: &str, path: &str) -> Result<Map<String, Value>, SavedError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| SavedError::NotJson { path: path.into(), detail: e.to_string() })?;
    let args = value.get("args").and_then(Value::as_object);
    let name = args.and_then(|a| a.get("name")).and_then(Value::as_str);
    let marker = value.get("marker").and_then(Value::as_str);
    match (args, name, marker) {
        (Some(args), Some(name), Some(marker)) if marker == crate::backend::owner::Marker::new(name).text() => {
            Ok(args.clone())
        }
        _ => Err(SavedError::NoMarker { path: path.into() }),
    }
}

/// The options of the saved request at `path`.
pub fn read(path: &Path) -> Result<Map<String, Value>, SavedError> {
    let shown = path.display().to_string();
    let bytes = read_regular(path, MAX_BYTES)
        .map_err(|e| SavedError::Unreadable { path: shown.clone(), detail: portmatrix_ansible::error_chain(&e) })?
        .ok_or_else(|| SavedError::Unreadable { path: shown.clone(), detail: "nothing is there".into() })?;
    parse(&String::from_utf8_lossy(&bytes), &shown)
}

/// The options of the saved request at `path`, read under the lock on its
/// `name`, and that lock. A task holding the lock may be rewriting the file:
/// it is read once to learn the name, and again, as that task left it, once
/// the lock is held, so a restore never applies a request a task replaced.
pub fn read_locked(path: &Path) -> Result<(Map<String, Value>, ObjectLock), Failure> {
    let first = read(path)?;
    let name = first.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    let wait = first
        .get("lock_timeout")
        .and_then(Value::as_i64)
        .and_then(portmatrix_host::lock::wait_from_seconds)
        .unwrap_or(Duration::from_secs(portmatrix_host::lock::DEFAULT_WAIT_SECS.unsigned_abs()));
    let lock = ObjectLock::acquire(Path::new(LOCK_DIR), "open_ports", &name, wait)?;
    let args = read(path)?;
    if args.get("name").and_then(Value::as_str) != Some(name.as_str()) {
        return Err(Failure::new(format!("{} changed its name while the restore waited for the lock", path.display())));
    }
    Ok((args, lock))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_with_the_marker_of_its_name_is_restored() {
        let good = r#"{"marker": "portmatrix open_ports web", "args": {"name": "web", "rules": []}}"#;
        assert_eq!(parse(good, "f").unwrap()["name"], "web");
        for bad in [
            r#"{"marker": "portmatrix open_ports other", "args": {"name": "web"}}"#,
            r#"{"args": {"name": "web"}}"#,
            r#"{"marker": "portmatrix open_ports web", "args": "web"}"#,
            r#"{"name": "web", "rules": []}"#,
        ] {
            assert_eq!(parse(bad, "f"), Err(SavedError::NoMarker { path: "f".into() }), "{bad}");
        }
        assert!(matches!(parse("{", "f"), Err(SavedError::NotJson { .. })));
    }
}
