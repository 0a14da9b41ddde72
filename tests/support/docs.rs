//! The documentation test, written once for every module: what
//! `ansible-doc -M library -j MODULE` shows must equal the module's declared
//! options (names, types, element types, required, defaults, choices, and
//! the same for sub-options).

use portmatrix_ansible::{DefaultValue, Kind, ModuleSpec, OptionSpec};
use serde_json::{Map, Value, json};

/// Runs ansible-doc on the module and returns its DOCUMENTATION as JSON.
pub fn ansible_doc(module: &str) -> Value {
    crate::module_binary(module);
    let out = std::process::Command::new(crate::venv_tool("ansible-doc"))
        .current_dir(crate::repo_root())
        .args(["-M", "library", "-t", "module", "-j", module])
        .output()
        .expect("ansible-doc runs");
    assert!(out.status.success(), "ansible-doc failed: {}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc -j prints JSON");
    all[module].clone()
}

/// Every mismatch between the documented and the declared options.
pub fn mismatches(spec: &ModuleSpec, documentation: &Value) -> Vec<String> {
    let mut found = Vec::new();
    compare(spec.options, &documentation["options"], "", &mut found);
    found
}

fn compare(declared: &[OptionSpec], documented: &Value, prefix: &str, found: &mut Vec<String>) {
    let empty = Map::new();
    let documented = documented.as_object().unwrap_or(&empty);
    let mut declared_names: Vec<&str> = declared.iter().map(|o| o.name).collect();
    let mut documented_names: Vec<&str> = documented.keys().map(String::as_str).collect();
    declared_names.sort_unstable();
    documented_names.sort_unstable();
    if declared_names != documented_names {
        found.push(format!("{prefix}options: declared {declared_names:?}, documented {documented_names:?}"));
    }
    for option in declared {
        let Some(doc) = documented.get(option.name) else { continue };
        let name = format!("{prefix}{}", option.name);
        let expect = |found: &mut Vec<String>, what: &str, declared: Value, documented: &Value| {
            if &declared != documented {
                found.push(format!("{name}.{what}: declared {declared}, documented {documented}"));
            }
        };
        expect(found, "type", json!(option.kind.ansible_name()), &doc["type"]);
        if let Kind::List(elements) = option.kind {
            expect(found, "elements", json!(elements.ansible_name()), &doc["elements"]);
        }
        expect(found, "required", json!(option.required), &doc.get("required").cloned().unwrap_or(json!(false)));
        let default = match option.default {
            DefaultValue::None => Value::Null,
            other => other.to_json(),
        };
        expect(found, "default", default, &doc.get("default").cloned().unwrap_or(Value::Null));
        let choices = if option.choices.is_empty() { Value::Null } else { json!(option.choices) };
        expect(found, "choices", choices, &doc.get("choices").cloned().unwrap_or(Value::Null));
        if let Some(sub) = option.kind.suboptions() {
            compare(sub, &doc["suboptions"], &format!("{name}."), found);
        }
    }
}
