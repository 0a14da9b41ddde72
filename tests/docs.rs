//! `ansible-doc -M library MODULE` works for every module and documents
//! exactly the options the module declares.

use portmatrix_tests::docs::{ansible_doc, mismatches};
use portmatrix_tests::{MODULES, module_binary};

#[test]
fn every_module_documents_exactly_its_declared_options() {
    for spec in MODULES {
        let doc = ansible_doc(spec.name);
        assert_eq!(doc["doc"]["module"], spec.name);
        let problems = mismatches(spec, &doc["doc"]);
        assert!(problems.is_empty(), "{}: documentation and declaration differ:\n{}", spec.name, problems.join("\n"));
        let examples = doc["examples"].as_str().unwrap_or_default();
        assert!(examples.contains(&format!("{}:", spec.name)), "{}: examples are shown", spec.name);
        assert!(doc["return"].as_object().is_some_and(|r| !r.is_empty()), "{}: return values are shown", spec.name);
    }
}

#[test]
fn the_documentation_check_notices_a_difference() {
    // Guard against a comparison that passes whatever it is given.
    let mut doc = ansible_doc("reserved_ports")["doc"].clone();
    doc["options"]["state"]["default"] = "absent".into();
    doc["options"].as_object_mut().unwrap().remove("persist");
    let problems = mismatches(&::reserved_ports::SPEC, &doc);
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn help_and_version_list_what_the_module_declares() {
    for spec in MODULES {
        let module = spec.name;
        let run = |flag: &str| {
            let out = std::process::Command::new(module_binary(module)).arg(flag).output().unwrap();
            assert!(out.status.success(), "{module} {flag}");
            String::from_utf8(out.stdout).unwrap()
        };
        let help = run("--help");
        for option in spec.options {
            assert!(
                help.contains(&format!("\n  {} (", option.name)),
                "--help of {module} lacks {}:\n{help}",
                option.name
            );
        }
        assert!(help.contains(&format!("ansible-doc -M library {module}")));
        assert_eq!(run("--version"), format!("{module} {} (portmatrix)\n", env!("CARGO_PKG_VERSION")));
    }
}
