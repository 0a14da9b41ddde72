//! The test node images: booting one never changes a setting of the machine.
//! A node's /proc/sys is writable for its network settings (its own network
//! namespace); every other key is the machine's, so the systemd-sysctl of a
//! booting node must set none.

use portmatrix_tests::container::{Node, NodeImage};

#[test]
fn a_booting_node_sets_only_its_own_network_namespaces_sysctls() {
    for image in [NodeImage::Python, NodeImage::NoPython, NodeImage::Legacy, NodeImage::Firewalld] {
        let node = Node::start(image);
        let config = node.exec_ok(&["/lib/systemd/systemd-sysctl", "--cat-config"]);
        let keys: Vec<&str> = config
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .filter_map(|l| l.split_once('=').map(|(key, _)| key.trim().trim_start_matches('-')))
            .collect();
        let global: Vec<&&str> = keys.iter().filter(|k| !(k.starts_with("net.") || k.starts_with("net/"))).collect();
        assert!(global.is_empty(), "{image:?} boots with machine-wide sysctls set: {global:?}\n{config}");
    }
}
