//! `ansible-doc -M library MODULE` works for every module and documents
//! exactly the options the module declares.

use portmatrix_tests::docs::{ansible_doc, mismatches};

#[test]
fn reserved_ports_documentation_matches_its_declared_options() {
    let doc = ansible_doc("reserved_ports");
    assert_eq!(doc["doc"]["module"], "reserved_ports");
    let problems = mismatches(&::reserved_ports::SPEC, &doc["doc"]);
    assert!(problems.is_empty(), "documentation and declaration differ:\n{}", problems.join("\n"));
    assert!(doc["examples"].as_str().is_some_and(|e| e.contains("reserved_ports:")), "examples are shown");
    assert!(doc["return"]["reserved"].is_object(), "return values are shown");
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
