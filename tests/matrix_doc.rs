//! docs/dcos-ports.md is what `scripts/matrix_doc.py` renders from the matrix files:
//! the ports page is never edited by hand, so it cannot drift from the data the role
//! applies.

use portmatrix_tests::{repo_root, venv_tool};

#[test]
fn the_ports_page_is_rendered_from_the_matrix_files() {
    let out = std::process::Command::new(venv_tool("python3"))
        .arg(repo_root().join("scripts/matrix_doc.py"))
        .output()
        .expect("scripts/matrix_doc.py runs");
    assert!(out.status.success(), "matrix_doc.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(repo_root().join("docs/dcos-ports.md")).unwrap();
    assert!(rendered.contains("| 5050 | tcp | Mesos Master |"), "the page lacks the master's 5050:\n{rendered}");
    assert!(
        rendered == committed,
        "docs/dcos-ports.md differs from the matrix files: run `.venv/bin/python3 scripts/matrix_doc.py --write`"
    );
}
