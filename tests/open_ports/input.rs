//! Bad input: a clean `failed` naming the option and the problem, exit
//! status 1, nothing applied (checked in a sandbox with both tools present).

use portmatrix_tests::firewall::{ToolDir, Variant, run_open_ports};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

fn cases() -> Vec<(Value, &'static str)> {
    vec![
        (json!({}), "rules is required when state=present"),
        (json!({"rules": [{"ports": []}]}), "rules[0].ports is empty"),
        (json!({"rules": [{"ports": [80, "9000-8000"]}]}), "rules[0].ports[1]: range \"9000-8000\" is reversed"),
        (json!({"rules": [{"ports": [70000]}]}), "rules[0].ports[0]: \"70000\" is not a valid port"),
        (json!({"rules": [{"ports": [65536]}]}), "rules[0].ports[0]: \"65536\" is not a valid port"),
        (json!({"rules": [{"ports": [-1]}]}), "rules[0].ports[0]: \"-1\" is not a valid port"),
        (json!({"rules": [{"ports": [u64::MAX]}]}), "rules[0].ports[0]: \"18446744073709551615\" is not a valid port"),
        (json!({"rules": [{"ports": [1u64 << 63]}]}), "rules[0].ports[0]: \"9223372036854775808\" is not a valid port"),
        (json!({"rules": [{"ports": [1e30]}]}), "rules[0].ports[0]: \"1e+30\" is not a valid port"),
        (json!({"rules": [{"ports": [80.5]}]}), "rules[0].ports[0]: \"80.5\" is not a whole number"),
        (
            json!({"rules": [{"ports": [80], "proto": "icmp"}]}),
            "value of rules[0].proto must be one of: tcp, udp, got: icmp",
        ),
        (
            json!({"rules": [{"ports": [80]}, {"ports": [81], "sources": ["198.18.0.0/16", "10.0.0.300"]}]}),
            "rules[1].sources[1]: \"10.0.0.300\" is not an IPv4/IPv6 address or CIDR",
        ),
        (
            json!({"rules": [{"ports": [80], "sources": ["198.18.0.1/16"]}]}),
            "has host bits set: did you mean 198.18.0.0/16?",
        ),
        (json!({"rules": [{"ports": [80], "sources": ["2001:db8::/129"]}]}), "has a prefix length over 128"),
        (json!({"rules": [{"ports": [80], "sources": []}]}), "rules[0].sources is empty"),
        (json!({"rules": [{"ports": [80], "comment": "say \"hi\""}]}), "rules[0].comment"),
        (json!({"rules": [{"ports": [80]}], "name": "a_chain_name_longer_than_28ch"}), "1 to 28 characters"),
        (json!({"rules": [{"ports": [80]}], "name": "bad name"}), "name \"bad name\" cannot be used"),
        (
            json!({"rules": [{"ports": [80], "port": 81}]}),
            "Unsupported parameters for (open_ports) module: rules[0].port",
        ),
        (
            json!({"rules": [{"ports": [80]}], "colour": "red"}),
            "Unsupported parameters for (open_ports) module: colour",
        ),
        (
            json!({"rules": [{"ports": [80]}], "backend": "firewalld"}),
            "value of backend must be one of: auto, nftables, iptables",
        ),
        (json!({"rules": [{"ports": [80]}], "backend": "nftables", "jump_from": "filter input"}), "has two words"),
        (
            json!({"rules": [{"ports": [80]}], "backend": "nftables", "jump_from": "bridge filter input"}),
            "is not an nftables base chain",
        ),
        (
            json!({"rules": [{"ports": [80]}], "backend": "iptables", "jump_from": "inet filter input"}),
            "names an nftables chain",
        ),
        (json!({"rules": [{"ports": [80]}], "backend": "iptables", "jump_from": "NOPE"}), "chain NOPE does not exist"),
        (
            json!({"rules": [{"ports": [80]}], "jump_from": "inet filter input"}),
            "chain inet filter input does not exist",
        ),
        (json!({"rules": [{"ports": [80]}], "jump_from": "input; flush ruleset"}), "is not a chain name"),
    ]
}

#[test]
fn bad_input_fails_cleanly_and_applies_nothing() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    for (args, expected) in cases() {
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &args);
        run.assert_failed_with(expected);
        assert!(!run.msg().contains("panicked") && !run.msg().contains("internal error"), "{}", run.msg());
    }
    assert_eq!(sandbox.sh("nft list ruleset"), "", "nothing applied");
}
