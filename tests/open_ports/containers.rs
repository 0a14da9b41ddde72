//! `open_ports` through ansible-playbook against real systemd containers
//! (their own network namespace, `--network none`): changed, then ok.

use portmatrix_tests::container::{Node, NodeImage, run_playbook};
use portmatrix_tests::firewall::iptables_hook;

const TASK: &str = "open the master ports";

fn playbook(backend: &str) -> String {
    format!(
        r#"
- hosts: all
  gather_facts: false
  tasks:
    - name: {TASK}
      open_ports:
        backend: {backend}
        enforce: true
        rules:
          - ports: [80, 443]
          - ports: [2181, 5050, "8080-8082"]
            sources: [198.18.0.0/16, "2001:db8::/32"]
          - ports: [61053]
            proto: udp
            sources: [198.18.0.0/16]
"#
    )
}

fn twice(image: NodeImage, backend: &str, expected_backend: &str, listing: &[&str]) -> String {
    let node = Node::start(image);
    let first = run_playbook(&node, &playbook(backend), &["--diff"]);
    assert!(first.success(), "{}", first.diagnostics());
    let result = first.task_result(&node, TASK);
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["backend"], expected_backend, "{result}");

    let second = run_playbook(&node, &playbook(backend), &[]);
    assert!(second.success(), "{}", second.diagnostics());
    assert_eq!(second.task_result(&node, TASK)["changed"], false);
    assert_eq!(second.stats(&node)["changed"], 0);
    node.exec_ok(listing)
}

#[test]
fn through_ansible_with_the_hosts_iptables() {
    let saved = twice(NodeImage::Python, "auto", "iptables-nft", &["iptables-save", "-t", "filter"]);
    assert_eq!(saved.matches(&iptables_hook("INPUT", "open_ports")).count(), 1, "{saved}");
    assert!(saved.contains("-A open_ports -s 198.18.0.0/16 -p udp -m multiport --dports 61053 -j ACCEPT"), "{saved}");
}

#[test]
fn through_ansible_with_nftables_on_a_host_without_python() {
    let listed = twice(NodeImage::NoPython, "nftables", "nftables", &["nft", "list", "table", "inet", "open_ports"]);
    assert!(listed.contains("tcp dport @enforce_tcp drop"), "{listed}");
}
