//! `forward`: a task or container published through DNAT (Docker's iptables
//! DNAT, an nftables DNAT as netavark or CNI write it) is reached through the
//! forward path, which the input hook never sees. Real traffic: an agent
//! sandbox with a "container" sandbox behind it (198.18.100.0/24, routed by
//! the agent), a DNAT rule on the agent for a published port, an allowed
//! client and an outsider.

use portmatrix_tests::firewall::{EchoServer, Network, ToolDir, Variant, reachable, run_open_ports};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

use super::{per_iptables_variant, per_variant};

/// The published port, DNAT'd to the container's 80.
const PUBLISHED: u16 = 8080;
/// Another published port, DNAT'd to the container's 81, that no rule names.
const UNLISTED: u16 = 9090;
const CONTAINER: &str = "198.18.100.2";

/// An agent (the network's server) routing to a container sandbox that
/// serves 80 and 81, with clients: 0 allowed, 1 an outsider (which also has
/// a route to the container, for traffic that is forwarded without DNAT).
struct Agent {
    net: Network,
    container: Sandbox,
    _servers: EchoServer,
    tools: ToolDir,
    variant: Variant,
}

impl Agent {
    fn new(variant: Variant) -> Agent {
        let net = Network::new(2);
        let container = Sandbox::new();
        net.server.sh(&format!(
            "ip link add k0 type veth peer name eth0 netns {pid} && ip addr add 198.18.100.1/24 dev k0 \
             && ip link set k0 up && sysctl -qw net.ipv4.ip_forward=1",
            pid = container.pid()
        ));
        container.sh(&format!(
            "ip addr add {CONTAINER}/24 dev eth0 && ip link set eth0 up && ip route add default via 198.18.100.1"
        ));
        net.clients[1].sh("ip route add 198.18.100.0/24 via 198.18.2.1");
        let servers = EchoServer::start(&container, &["80/tcp", "81/tcp"]);
        Agent { net, container, _servers: servers, tools: ToolDir::new(variant), variant }
    }

    /// DNAT rules for both published ports, written the way the variant's
    /// world writes them: nftables as netavark or CNI do, iptables as Docker
    /// does (its DOCKER-USER chain, FORWARD dropping by default, accepts for
    /// the container's traffic after DOCKER-USER).
    fn publish(&self, style: Variant) {
        if style.is_iptables() {
            let ipt = style.iptables(false);
            self.net.server.sh(&format!(
                "{ipt} -t nat -N DOCKER && {ipt} -t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER \
                 && {ipt} -t nat -A DOCKER -p tcp -m tcp --dport {PUBLISHED} -j DNAT --to-destination {CONTAINER}:80 \
                 && {ipt} -t nat -A DOCKER -p tcp -m tcp --dport {UNLISTED} -j DNAT --to-destination {CONTAINER}:81 \
                 && {ipt} -N DOCKER-USER && {ipt} -A DOCKER-USER -j RETURN && {ipt} -P FORWARD DROP \
                 && {ipt} -A FORWARD -j DOCKER-USER && {ipt} -A FORWARD -o k0 -j ACCEPT && {ipt} -A FORWARD -i k0 -j ACCEPT"
            ));
        } else {
            self.net.server.sh(&format!(
                "nft add table ip pmtest_nat && nft add chain ip pmtest_nat prerouting \
                 '{{ type nat hook prerouting priority -100; }}' \
                 && nft add rule ip pmtest_nat prerouting tcp dport {PUBLISHED} dnat to {CONTAINER}:80 \
                 && nft add rule ip pmtest_nat prerouting tcp dport {UNLISTED} dnat to {CONTAINER}:81"
            ));
        }
    }

    fn run(&self, args: &Value) -> portmatrix_tests::module::ModuleRun {
        let mut args = args.clone();
        args["backend"] = json!(self.variant.backend());
        args["persist"] = json!(false);
        run_open_ports(&self.net.server, &self.tools.path_var(), None, &args)
    }

    fn rules(&self, forward: bool) -> Value {
        json!({"enforce": true, "forward": forward, "rules": [
            {"ports": [PUBLISHED, 80], "sources": [format!("{}/32", self.net.client_addr(0))]},
        ]})
    }

    /// Whether client `i` gets through to the agent's address on its link.
    fn published(&self, client: usize, port: u16) -> bool {
        reachable(&self.net.clients[client], &self.net.server_addr(client), port, "tcp")
    }
}

per_variant!(forward_applies_the_rules_to_dnatted_traffic_by_its_original_port);
fn forward_applies_the_rules_to_dnatted_traffic_by_its_original_port(variant: Variant) {
    let agent = Agent::new(variant);
    agent.publish(variant);
    assert!(agent.published(1, PUBLISHED), "the outsider reaches the container before the module runs");

    let run = agent.run(&agent.rules(true));
    run.assert_ok();
    assert!(run.changed());
    assert!(run.warnings().is_empty(), "no DNAT warning with forward on: {:?}", run.warnings());
    assert!(agent.published(0, PUBLISHED), "the allowed client reaches the published task");
    assert!(!agent.published(1, PUBLISHED), "the outsider does not");
    assert!(agent.published(1, UNLISTED), "a published port no rule names is left alone");
    assert!(
        reachable(&agent.net.clients[1], CONTAINER, 80, "tcp"),
        "traffic forwarded without DNAT is never matched, even to a listed port number"
    );
    // The rules sit where forwarded traffic is judged: iptables on top of
    // Docker's DOCKER-USER, nftables in the own table's forward base chain.
    if variant.is_iptables() {
        let saved = portmatrix_tests::firewall::iptables_save(&agent.net.server, variant, false);
        assert!(
            saved.contains(
                "-A DOCKER-USER -m comment --comment \"portmatrix open_ports open_ports\" -m conntrack --ctstate DNAT -j open_ports-fwd\n-A DOCKER-USER -j RETURN"
            ),
            "{saved}"
        );
    } else {
        let table = agent.net.server.sh("nft list table inet open_ports");
        assert!(table.contains("type filter hook forward priority filter; policy accept;"), "{table}");
    }

    let again = agent.run(&agent.rules(true));
    again.assert_ok();
    assert!(!again.changed(), "idempotent: {}", again.json);

    // forward off again: the forward rules go, and the DNAT is warned about.
    let off = agent.run(&agent.rules(false));
    off.assert_ok();
    assert!(off.changed());
    assert!(agent.published(1, PUBLISHED), "without forward the outsider gets through, as warned");
    let warnings = off.warnings();
    let warned: Vec<&String> = warnings.iter().filter(|w| w.contains("DNATs enforced port")).collect();
    assert_eq!(warned.len(), 1, "one warning, for the one DNAT of an enforced port: {:?}", off.warnings());
    assert!(warned[0].contains(&format!("--dport {PUBLISHED}")) || warned[0].contains(&format!("dport {PUBLISHED}")));
    assert!(warned[0].contains("8080/tcp") && warned[0].contains("forward: true"), "{}", warned[0]);
    let _ = &agent.container;
}

/// Docker on a host whose firewall is native nftables: Docker's DNAT is in
/// iptables-nft's tables, the module's rules in a table of its own; the
/// module's drop in its own forward chain still holds.
#[test]
fn forward_with_nftables_holds_against_a_docker_style_iptables_dnat() {
    let agent = Agent::new(Variant::Nftables);
    agent.publish(Variant::IptablesNft);
    let off = agent.run(&agent.rules(false));
    off.assert_ok();
    assert!(
        off.warnings().iter().any(|w| w.starts_with("iptables nat DOCKER `-A DOCKER -p tcp -m tcp --dport 8080")),
        "the iptables-nft DNAT is named: {:?}",
        off.warnings()
    );
    agent.run(&agent.rules(true)).assert_ok();
    assert!(agent.published(0, PUBLISHED) && !agent.published(1, PUBLISHED));
    assert!(agent.published(1, UNLISTED));
}

per_iptables_variant!(the_forward_hook_moves_into_docker_user_when_docker_makes_it_later);
fn the_forward_hook_moves_into_docker_user_when_docker_makes_it_later(variant: Variant) {
    let agent = Agent::new(variant);
    let ipt = variant.iptables(false);
    agent
        .net
        .server
        .sh(&format!("{ipt} -t nat -A PREROUTING -p tcp --dport {PUBLISHED} -j DNAT --to-destination {CONTAINER}:80"));
    agent.run(&agent.rules(true)).assert_ok();
    assert!(!agent.published(1, PUBLISHED), "hooked into FORWARD: the outsider is dropped");
    // Docker starts: its chain, and its accepts for published ports above the module's hook.
    agent.net.server.sh(&format!(
        "{ipt} -N DOCKER-USER && {ipt} -A DOCKER-USER -j RETURN && {ipt} -I FORWARD 1 -o k0 -j ACCEPT \
         && {ipt} -I FORWARD 1 -j DOCKER-USER"
    ));
    assert!(agent.published(1, PUBLISHED), "Docker's accept above the hook lets the outsider in");
    let run = agent.run(&agent.rules(true));
    run.assert_ok();
    assert!(run.changed(), "the hook is no longer where it works: {}", run.json);
    assert!(!agent.published(1, PUBLISHED), "moved into DOCKER-USER, the drop holds again");
    assert!(agent.published(0, PUBLISHED));
}

#[test]
fn forward_is_refused_with_an_nftables_jump_from_and_a_name_too_long_for_its_chain() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    sandbox.sh("nft add table inet filter && nft add chain inet filter input '{ type filter hook input priority 0; }'");
    let run = run_open_ports(
        &sandbox,
        &tools.path_var(),
        None,
        &json!({"jump_from": "inet filter input", "forward": true, "persist": false, "rules": [{"ports": [80]}]}),
    );
    run.assert_failed_with("cannot be used with forward: true");
    let long = "a".repeat(25);
    let run = run_open_ports(
        &sandbox,
        &tools.path_var(),
        None,
        &json!({"name": long, "forward": true, "persist": false, "rules": [{"ports": [80]}]}),
    );
    run.assert_failed_with("is too long for forward: true: at most 24 characters");
    assert_eq!(sandbox.sh("nft list ruleset | grep -c table"), "1\n", "nothing was added");
}
