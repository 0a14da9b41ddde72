//! Shared helpers for the integration tests in tests/: where the built
//! modules and tools are, private network namespaces to run them in, and
//! (container.rs) systemd containers reached through Ansible.

pub mod container;
pub mod docs;
pub mod firewall;
pub mod listeners;
pub mod module;
pub mod sandbox;

use std::path::{Path, PathBuf};

/// Every module the project ships (as in the Makefile's MODULES), by its
/// declared options.
pub static MODULES: &[&portmatrix_ansible::ModuleSpec] =
    &[&reserved_ports::SPEC, &unit_bindings::SPEC, &open_ports::SPEC, &port_probe::SPEC, &port_responder::SPEC];

/// The repository's root (where Cargo.toml and library/ are).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A built module binary in library/, as Ansible uses it. The suite runs the
/// shipped static binary, not a debug build: `make test` builds it first.
pub fn module_binary(name: &str) -> PathBuf {
    let path = repo_root().join("library").join(name);
    assert!(path.exists(), "{} is missing: run `make library` (or `make test`) first", path.display());
    path
}

/// A tool from the project's virtualenv (ansible-playbook, ansible-doc).
pub fn venv_tool(name: &str) -> PathBuf {
    let path = repo_root().join(".venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run `make setup` (or `make test`) first", path.display());
    path
}
