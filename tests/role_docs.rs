//! The `dcos_ports` role's documentation says what the role declares: `ansible-doc -t role`
//! shows its argument specs, every phase's entry point takes the same variables, the
//! README's variables table lists exactly them, and each default in the specs is the
//! one in defaults/main.yml.

use std::collections::{BTreeMap, BTreeSet};

use portmatrix_tests::{repo_root, venv_tool};
use serde_json::Value;

const ROLE: &str = "roles/dcos_ports";
const PHASES: &[&str] = &["preflight", "reserve", "firewall", "verify"];

/// `ansible-doc -t role -r roles -j dcos_ports`: the role's entry points.
fn entry_points() -> Value {
    let out = std::process::Command::new(venv_tool("ansible-doc"))
        .current_dir(repo_root())
        .args(["-t", "role", "-r", "roles", "-j", "dcos_ports"])
        .output()
        .expect("ansible-doc runs");
    assert!(out.status.success(), "ansible-doc failed: {}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc -j prints JSON");
    doc["dcos_ports"]["entry_points"].clone()
}

fn option_names(entry_point: &Value) -> BTreeSet<String> {
    entry_point["options"].as_object().expect("options").keys().cloned().collect()
}

/// The variable names in the first column of the README's tables.
fn readme_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join(ROLE).join("README.md")).unwrap();
    readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `dcos_ports_"))
        .map(|rest| format!("dcos_ports_{}", rest.split('`').next().unwrap()))
        .collect()
}

/// defaults/main.yml, as JSON values.
fn defaults() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(repo_root().join(ROLE).join("defaults/main.yml")).unwrap();
    serde_norway::from_str(&text).expect("defaults/main.yml is YAML")
}

#[test]
fn ansible_doc_shows_the_role_and_every_phase_takes_the_same_variables() {
    let entry_points = entry_points();
    let main = option_names(&entry_points["main"]);
    assert!(main.contains("dcos_ports_version") && main.len() > 10, "main's options: {main:?}");
    for phase in PHASES {
        assert_eq!(option_names(&entry_points[*phase]), main, "entry point {phase}");
    }
}

#[test]
fn the_readme_tables_exactly_the_declared_variables() {
    let declared = option_names(&entry_points()["main"]);
    assert_eq!(readme_variables(), declared, "README's variables table vs meta/argument_specs.yml");
}

#[test]
fn the_declared_defaults_are_the_role_defaults() {
    let main = entry_points()["main"].clone();
    let defaults = defaults();
    let declared = option_names(&main);
    for name in defaults.keys() {
        assert!(declared.contains(name), "defaults/main.yml sets {name}, which argument_specs does not declare");
    }
    for (name, option) in main["options"].as_object().unwrap() {
        if let Some(default) = option.get("default").filter(|d| !d.is_null()) {
            assert_eq!(Some(default), defaults.get(name), "{name}: argument_specs' default vs defaults/main.yml");
        }
    }
}
