//! `reserved_ports` through ansible-playbook against real systemd containers
//! (connection containers.podman.podman): changed, then ok; the persisted
//! file is what systemd-sysctl applies; and a host without Python.

use portmatrix_tests::container::{Node, NodeImage, run_playbook};

const RANGES: &str = "1025-2180,2182-3887,3889-5049,5052-8079,8082-8180,8182-32000";
const TASK: &str = "reserve the Mesos task ranges";

fn playbook() -> String {
    format!(
        r"
- hosts: all
  gather_facts: false
  tasks:
    - name: {TASK}
      reserved_ports:
        ports: [1025-2180, 2182-3887, 3889-5049, 5052-8079, 8082-8180, 8182-32000]
"
    )
}

fn reserved(node: &Node) -> String {
    node.exec_ok(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"]).trim_end().to_string()
}

/// The same checks on either image: first run changed, second ok, and the
/// persisted file restores the value when systemd-sysctl runs (as at boot).
fn reserve_twice_and_reapply(image: NodeImage) {
    let node = Node::start(image);
    node.exec_ok(&["sh", "-c", "echo 40000 > /proc/sys/net/ipv4/ip_local_reserved_ports"]);

    let first = run_playbook(&node, &playbook(), &["--diff"]);
    assert!(first.success(), "{}", first.diagnostics());
    let result = first.task_result(&node, TASK);
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["reserved"], format!("{RANGES},40000"));
    assert_eq!(reserved(&node), format!("{RANGES},40000"), "merged with the existing 40000");

    let second = run_playbook(&node, &playbook(), &[]);
    assert!(second.success(), "{}", second.diagnostics());
    assert_eq!(second.task_result(&node, TASK)["changed"], false);
    assert_eq!(second.stats(&node)["changed"], 0);

    let file = node.exec_ok(&["cat", "/etc/sysctl.d/90-reserved-ports.conf"]);
    assert!(file.ends_with(&format!("net.ipv4.ip_local_reserved_ports = {RANGES},40000\n")), "{file}");
    node.exec_ok(&["sh", "-c", "echo > /proc/sys/net/ipv4/ip_local_reserved_ports"]);
    assert_eq!(reserved(&node), "");
    node.exec_ok(&["systemctl", "restart", "systemd-sysctl"]);
    assert_eq!(reserved(&node), format!("{RANGES},40000"), "systemd-sysctl re-applied the persisted value");
}

#[test]
fn through_ansible_on_a_systemd_container() {
    reserve_twice_and_reapply(NodeImage::Python);
}

#[test]
fn through_ansible_on_a_container_without_python() {
    let probe = Node::start(NodeImage::NoPython);
    assert!(!probe.sh("command -v python3").success(), "the image really has no Python");
    drop(probe);
    reserve_twice_and_reapply(NodeImage::NoPython);
}

#[test]
fn bad_input_through_ansible_fails_the_task_and_changes_nothing() {
    let node = Node::start(NodeImage::NoPython);
    let run = run_playbook(
        &node,
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: a reversed range
      reserved_ports:
        ports: [8080, "9000-8000"]
"#,
        &[],
    );
    assert!(!run.success());
    let result = run.task_result(&node, "a reversed range");
    assert_eq!(result["failed"], true);
    assert!(result["msg"].as_str().unwrap().contains("ports[1]: range \"9000-8000\" is reversed"), "{result}");
    assert_eq!(reserved(&node), "");
    assert!(!node.exec(&["test", "-e", "/etc/sysctl.d/90-reserved-ports.conf"]).success());
}
