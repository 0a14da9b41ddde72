//! Real traffic between namespaces of the test's own (veth pairs,
//! 198.18.0.0/15): enforce lets the allowed source in and keeps an outsider
//! out, leaves unrelated ports alone and keeps loopback-only ports on
//! loopback; an established connection survives a re-apply; on a host whose
//! input drops by default the opened port becomes reachable and no other.

use portmatrix_tests::firewall::{EchoServer, HeldConnection, Network, ToolDir, Variant, reachable, run_open_ports};
use serde_json::json;

use super::per_variant;

per_variant!(enforce_admits_the_allowed_source_only);
fn enforce_admits_the_allowed_source_only(variant: Variant) {
    let net = Network::new(2);
    let tools = ToolDir::new(variant);
    let _servers = EchoServer::start(&net.server, &["8080/tcp", "9000/tcp", "7070/tcp", "5353/udp"]);
    let (friend, outsider) = (&net.clients[0], &net.clients[1]);
    let (to_friend, to_outsider) = (net.server_addr(0), net.server_addr(1));
    assert!(reachable(outsider, &to_outsider, 8080, "tcp"), "open before the module runs");

    let run = run_open_ports(
        &net.server,
        &tools.path_var(),
        None,
        &json!({"backend": variant.backend(), "enforce": true, "rules": [
            {"ports": [8080], "sources": [format!("{}/32", net.client_addr(0))]},
            {"ports": [5353], "proto": "udp", "sources": [net.client_addr(0)]},
            {"ports": [7070], "sources": ["loopback"]},
        ]}),
    );
    run.assert_ok();

    assert!(reachable(friend, &to_friend, 8080, "tcp"), "the allowed source connects");
    assert!(!reachable(outsider, &to_outsider, 8080, "tcp"), "an outsider does not");
    assert!(reachable(friend, &to_friend, 5353, "udp"), "udp from the allowed source");
    assert!(!reachable(outsider, &to_outsider, 5353, "udp"), "udp from an outsider");
    assert!(reachable(outsider, &to_outsider, 9000, "tcp"), "an unrelated port is unaffected");
    assert!(reachable(&net.server, "127.0.0.1", 7070, "tcp"), "the loopback-only port answers over loopback");
    assert!(!reachable(friend, &to_friend, 7070, "tcp"), "and over nothing else");
}

per_variant!(an_established_connection_survives_a_reapply);
fn an_established_connection_survives_a_reapply(variant: Variant) {
    let net = Network::new(1);
    let tools = ToolDir::new(variant);
    let _server = EchoServer::start(&net.server, &["8080/tcp"]);
    let client = &net.clients[0];
    let apply = |sources: serde_json::Value| {
        let args =
            json!({"backend": variant.backend(), "enforce": true, "rules": [{"ports": [8080], "sources": sources}]});
        let run = run_open_ports(&net.server, &tools.path_var(), None, &args);
        run.assert_ok();
        assert!(run.changed());
    };
    apply(json!([net.client_addr(0)]));
    let mut held = HeldConnection::open(client, &net.server_addr(0), 8080);
    assert_eq!(held.echo("one"), "one");
    // The new rules no longer admit the client: new connections fail, the
    // established one goes on.
    apply(json!(["198.19.0.0/16"]));
    assert!(!reachable(client, &net.server_addr(0), 8080, "tcp"), "new connections are refused now");
    assert_eq!(held.echo("two"), "two", "the established connection survived the re-apply");
}

#[test]
fn iptables_input_policy_drop_host_gets_the_opened_port_and_no_other() {
    for variant in [Variant::IptablesNft, Variant::IptablesLegacy] {
        let net = Network::new(1);
        let tools = ToolDir::new(variant);
        let _servers = EchoServer::start(&net.server, &["8080/tcp", "9000/tcp"]);
        let (client, server) = (&net.clients[0], net.server_addr(0));
        net.server.sh(&format!("{} -P INPUT DROP", variant.iptables(false)));
        assert!(!reachable(client, &server, 8080, "tcp"), "{variant:?}: the host drops by default");
        let run = run_open_ports(&net.server, &tools.path_var(), None, &json!({"rules": [{"ports": [8080]}]}));
        run.assert_ok();
        assert_eq!(run.json["backend"], variant.label());
        assert!(reachable(client, &server, 8080, "tcp"), "{variant:?}: the opened port is reachable");
        assert!(!reachable(client, &server, 9000, "tcp"), "{variant:?}: no other port is");
    }
}

#[test]
fn nftables_drop_policy_host_needs_jump_from_and_then_gets_the_opened_port_and_no_other() {
    let net = Network::new(1);
    let tools = ToolDir::new(Variant::Nftables);
    let _servers = EchoServer::start(&net.server, &["8080/tcp", "9000/tcp"]);
    let (client, server) = (&net.clients[0], net.server_addr(0));
    net.server.sh(
        "nft add table inet filter && nft add chain inet filter input '{ type filter hook input priority 0; policy drop; }'",
    );
    let own_table = run_open_ports(&net.server, &tools.path_var(), None, &json!({"rules": [{"ports": [8080]}]}));
    own_table.assert_ok();
    assert!(!own_table.warnings().is_empty(), "warned that the accept cannot override the other table's drop");
    assert!(!reachable(client, &server, 8080, "tcp"), "as warned: an accept in another table does not help");
    run_open_ports(&net.server, &tools.path_var(), None, &json!({"state": "absent", "backend": "nftables"}))
        .assert_ok();

    let hooked = json!({"jump_from": "inet filter input", "rules": [{"ports": [8080]}]});
    run_open_ports(&net.server, &tools.path_var(), None, &hooked).assert_ok();
    assert!(reachable(client, &server, 8080, "tcp"), "the opened port is reachable");
    assert!(!reachable(client, &server, 9000, "tcp"), "no other port is");
}
