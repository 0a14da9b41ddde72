//! `open_ports` against real firewalls in private network namespaces, for each
//! variant (nftables, iptables-nft, iptables-legacy): apply, identical
//! re-apply, changed rules, absent; IPv6, ranges, enforce; foreign rules
//! byte-for-byte the same; the hook exists once.

use portmatrix_tests::firewall::{
    ToolDir, Variant, iptables_first_rule, iptables_hook, iptables_save, run_open_ports, without,
};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

use super::{own_objects, per_variant};

fn args(variant: Variant, extra: Value) -> Value {
    let Value::Object(extra) = extra else { panic!("args take a JSON object") };
    let mut args = json!({"backend": variant.backend(), "_ansible_diff": true});
    args.as_object_mut().unwrap().extend(extra);
    args
}

fn matrix() -> Value {
    json!({
        "enforce": true,
        "rules": [
            {"ports": [80, 443], "comment": "Admin Router"},
            {"ports": [2181, "8080-8082", 5050], "sources": ["198.18.0.0/16", "198.19.0.7", "2001:db8::/32"], "comment": "zk/mesos"},
            {"ports": [61053], "proto": "udp", "sources": ["198.18.0.0/16"]},
            {"ports": [123], "proto": "udp", "sources": ["0.0.0.0/0", "::/0"]},
            {"ports": ["7070"], "sources": ["loopback"]}
        ]
    })
}

per_variant!(apply_reapply_change_and_remove);
fn apply_reapply_change_and_remove(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();

    let first = run_open_ports(&sandbox, &path, None, &args(variant, matrix()));
    first.assert_ok();
    assert!(first.changed());
    assert_eq!(first.json["backend"], variant.label());
    let listed = own_objects(&sandbox, variant, "open_ports");
    if variant.is_iptables() {
        let (hook, first) = (iptables_hook("INPUT", "open_ports"), iptables_first_rule("open_ports"));
        for line in [
            hook.as_str(),
            first.as_str(),
            "-A open_ports -p tcp -m multiport --dports 80,443 -m comment --comment \"Admin Router\" -j ACCEPT",
            "-A open_ports -s 198.18.0.0/16 -p tcp -m multiport --dports 2181,5050,8080:8082 -m comment --comment \"zk/mesos\" -j ACCEPT",
            "-A open_ports -s 198.19.0.7/32 -p tcp -m multiport --dports 2181,5050,8080:8082 -m comment --comment \"zk/mesos\" -j ACCEPT",
            "-A open_ports -s 2001:db8::/32 -p tcp -m multiport --dports 2181,5050,8080:8082 -m comment --comment \"zk/mesos\" -j ACCEPT",
            "-A open_ports -i lo -p tcp -m multiport --dports 7070 -j ACCEPT",
            "-A open_ports -p tcp -m multiport --dports 80,443,2181,5050,7070,8080:8082 -j DROP",
            "-A open_ports -p udp -m multiport --dports 123 -j ACCEPT",
            "-A open_ports -p udp -m multiport --dports 123,61053 -j DROP",
            "-A open_ports -j RETURN",
        ] {
            assert!(listed.contains(&format!("{line}\n")), "{line} missing in:\n{listed}");
        }
        assert_eq!(listed.matches(&hook).count(), 2, "one hook per family:\n{listed}");
    } else {
        for line in [
            "elements = { 198.18.0.0/16, 198.19.0.7 }",
            "elements = { 2001:db8::/32 }",
            "elements = { 2181, 5050, 8080-8082 }",
            "ip saddr @r2_v4 tcp dport @r2_ports accept comment \"zk/mesos\"",
            "ip6 saddr @r2_v6 tcp dport @r2_ports accept comment \"zk/mesos\"",
            "iifname \"lo\" tcp dport @r5_ports accept",
            "ip saddr @r4_v4 udp dport @r4_ports accept",
            "tcp dport @r1_ports accept comment \"Admin Router\"",
            "tcp dport @enforce_tcp drop",
            "udp dport @enforce_udp drop",
        ] {
            assert!(listed.contains(line), "{line} missing in:\n{listed}");
        }
    }

    let again = run_open_ports(&sandbox, &path, None, &args(variant, matrix()));
    again.assert_ok();
    assert!(!again.changed(), "identical re-apply: {:?}", again.json);
    assert_eq!(again.json["script"], "");
    assert_eq!(again.json["diff"][0]["before"], again.json["diff"][0]["after"]);
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), listed, "nothing was rewritten");

    let changed = run_open_ports(
        &sandbox,
        &path,
        None,
        &args(variant, json!({"rules": [{"ports": ["9000-9010"], "sources": ["198.18.4.0/24"]}]})),
    );
    changed.assert_ok();
    assert!(changed.changed());
    let now = own_objects(&sandbox, variant, "open_ports");
    for stale in ["2181", "Admin Router", "zk/mesos", "443", "61053", "2001:db8", "drop", "DROP"] {
        assert!(!now.contains(stale), "stale {stale} left in:\n{now}");
    }
    assert!(now.contains("9000") && now.contains("198.18.4.0/24"), "{now}");

    let absent = run_open_ports(&sandbox, &path, None, &args(variant, json!({"state": "absent"})));
    absent.assert_ok();
    assert!(absent.changed());
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "", "all gone");
    let again = run_open_ports(&sandbox, &path, None, &args(variant, json!({"state": "absent"})));
    again.assert_ok();
    assert!(!again.changed());
}

per_variant!(check_mode_returns_the_script_and_applies_nothing);
fn check_mode_returns_the_script_and_applies_nothing(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let mut check = args(variant, matrix());
    check["_ansible_check_mode"] = true.into();
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &check);
    run.assert_ok();
    assert!(run.changed());
    assert!(run.msg().contains("check mode"), "{}", run.msg());
    let script = run.json["script"].as_str().unwrap();
    let tool = if variant.is_iptables() { "# iptables-restore --noflush" } else { "# nft -f -" };
    assert!(script.starts_with(tool), "{script}");
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "", "nothing applied");
    assert_eq!(run.json["diff"][0]["before"], "");
    assert!(run.json["diff"][0]["after"].as_str().unwrap().contains("2181"));

    // The script is exactly what a real run applies.
    let real = run_open_ports(&sandbox, &tools.path_var(), None, &args(variant, matrix()));
    assert_eq!(real.json["script"], run.json["script"]);
}

/// Foreign rules of the kind DC/OS nodes carry (a Docker-like chain, a NAT
/// rule, INPUT rules; for nftables a table of the user's with its own input
/// chain and a NAT table), set up with the variant's own tools.
fn add_foreign_rules(sandbox: &Sandbox, variant: Variant) {
    if variant.is_iptables() {
        let (iptables, ip6tables) = (variant.iptables(false), variant.iptables(true));
        sandbox.sh(&format!(
            "{iptables} -N DOCKER && {iptables} -A DOCKER -d 198.18.9.2/32 -p tcp --dport 80 -j ACCEPT && \
             {iptables} -A FORWARD -j DOCKER && {iptables} -A INPUT -s 198.18.8.0/24 -j DROP && \
             {iptables} -A INPUT -p tcp --dport 22 -j ACCEPT && \
             {iptables} -t nat -A POSTROUTING -s 198.18.9.0/24 ! -o lo -j MASQUERADE && \
             {ip6tables} -A INPUT -s 2001:db8:9::/48 -j DROP"
        ));
    } else {
        sandbox.sh(
            "nft -f - <<'EOF'\ntable inet user {\n\tset trusted { type ipv4_addr; flags interval; elements = { 198.18.7.0/24 } }\n\
             \tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\
             \t\tip saddr @trusted accept\n\t\ttcp dport 22 accept\n\t}\n}\ntable ip nat {\n\
             \tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
             \t\tip saddr 198.18.9.0/24 oifname != \"lo\" masquerade\n\t}\n}\nEOF",
        );
    }
}

fn foreign_state(sandbox: &Sandbox, variant: Variant) -> String {
    if variant.is_iptables() {
        let nat = sandbox
            .sh(&format!("{}-save -t nat | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]//'", variant.iptables(false)));
        format!(
            "{}{}{}",
            without(&iptables_save(sandbox, variant, false), "open_ports"),
            without(&iptables_save(sandbox, variant, true), "open_ports"),
            nat
        )
    } else {
        sandbox.sh("nft list table inet user; nft list table ip nat")
    }
}

per_variant!(foreign_rules_stay_byte_for_byte_and_the_hook_exists_once);
fn foreign_rules_stay_byte_for_byte_and_the_hook_exists_once(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    add_foreign_rules(&sandbox, variant);
    let before = foreign_state(&sandbox, variant);
    assert!(before.contains("198.18.9.0/24"), "{before}");

    for ports in [[8080, 8081], [8080, 9000], [9000, 9001], [9000, 9001]] {
        let run = run_open_ports(
            &sandbox,
            &path,
            None,
            &args(variant, json!({"enforce": true, "rules": [{"ports": ports}]})),
        );
        run.assert_ok();
        assert_eq!(foreign_state(&sandbox, variant), before, "foreign rules after apply");
    }
    if variant.is_iptables() {
        for family6 in [false, true] {
            let saved = iptables_save(&sandbox, variant, family6);
            let hook = iptables_hook("INPUT", "open_ports");
            assert_eq!(saved.matches(&hook).count(), 1, "{saved}");
            let first_input = saved.lines().find(|l| l.starts_with("-A INPUT")).unwrap();
            assert_eq!(first_input, hook, "the hook is on top:\n{saved}");
        }
    } else {
        assert_eq!(sandbox.sh("nft list tables").matches("open_ports").count(), 1);
    }

    let absent = run_open_ports(&sandbox, &path, None, &args(variant, json!({"state": "absent"})));
    absent.assert_ok();
    assert_eq!(foreign_state(&sandbox, variant), before, "foreign rules after absent");
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "");
}

#[test]
fn nftables_jump_from_hooks_into_the_users_drop_chain_once_and_leaves_it_otherwise_alone() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let path = tools.path_var();
    sandbox.sh(
        "nft -f - <<'EOF'\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\
         \t\tiifname \"lo\" accept\n\t\ttcp dport 22 accept\n\t}\n}\nEOF",
    );
    let users = || without(&sandbox.sh("nft list chain inet filter input"), "jump open_ports");
    let before = users();

    let plain = run_open_ports(&sandbox, &path, None, &json!({"backend": "auto", "rules": [{"ports": [8080]}]}));
    plain.assert_ok();
    assert_eq!(plain.json["backend"], "nftables", "auto: the host's ruleset is native nftables");
    assert!(
        plain.warnings().iter().any(|w| w.contains("`inet filter input` drops by default")),
        "{:?}",
        plain.warnings()
    );
    let removed = run_open_ports(&sandbox, &path, None, &json!({"backend": "nftables", "state": "absent"}));
    assert!(removed.changed());

    for ports in [json!([8080]), json!([8080, "9000-9002"]), json!([8080, "9000-9002"])] {
        let run = run_open_ports(
            &sandbox,
            &path,
            None,
            &json!({"jump_from": "inet filter input", "rules": [{"ports": ports, "sources": ["198.18.0.0/15"]}]}),
        );
        run.assert_ok();
        assert!(run.warnings().is_empty(), "{:?}", run.warnings());
    }
    let listed = sandbox.sh("nft list table inet filter");
    assert_eq!(listed.matches("jump open_ports").count(), 1, "{listed}");
    assert!(
        listed
            .contains("chain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t\tjump open_ports comment \"portmatrix open_ports open_ports\"\n"),
        "{listed}"
    );
    assert!(listed.contains("set open_ports_r1_ports") && listed.contains("9000-9002"), "{listed}");
    assert_eq!(users(), before, "the user's own rules are unchanged");
    assert!(sandbox.sh("nft list tables").lines().all(|l| l == "table inet filter"), "no table of its own");

    let absent = run_open_ports(&sandbox, &path, None, &json!({"jump_from": "inet filter input", "state": "absent"}));
    absent.assert_ok();
    assert!(absent.changed());
    assert_eq!(sandbox.sh("nft list table inet filter"), before, "byte for byte as before");
}

#[test]
fn backend_auto_follows_the_host() {
    for variant in [Variant::IptablesNft, Variant::IptablesLegacy] {
        let sandbox = Sandbox::new();
        let tools = ToolDir::new(variant);
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &json!({"rules": [{"ports": [80]}]}));
        run.assert_ok();
        assert_eq!(run.json["backend"], variant.label(), "no native nftables tables: the host's iptables");
        // Once the chain exists, auto stays with it even if native tables appear.
        sandbox.sh("nft add table inet other");
        let again = run_open_ports(&sandbox, &tools.path_var(), None, &json!({"rules": [{"ports": [80]}]}));
        assert_eq!(again.json["backend"], variant.label());
        assert!(!again.changed());
    }
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    for tool in ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"] {
        tools.remove(tool);
    }
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &json!({"rules": [{"ports": [80]}]}));
    run.assert_ok();
    assert_eq!(run.json["backend"], "nftables", "no iptables at all: nftables");
}

/// However large the rule set, the result stays a reasonable size: a long
/// script and diff are summarised, and returned whole when asked.
#[test]
fn long_scripts_are_summarised_unless_asked_for_whole() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    // 300 separate ports (20 multiport matches) x 100 IPv4 sources: 2,000 accepts.
    let ports: Vec<u16> = (0..300).map(|p| 10000 + 2 * p).collect();
    let sources: Vec<String> = (0..100).map(|i| format!("198.18.{i}.0/24")).collect();
    let mut check = json!({"backend": "iptables", "_ansible_check_mode": true, "_ansible_diff": true,
        "rules": [{"ports": ports, "sources": sources}]});
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &check);
    run.assert_ok();
    let script = run.json["script"].as_str().unwrap();
    assert_eq!(script.lines().count(), 601, "500 first lines, a note, 100 last lines");
    assert!(script.contains("lines not shown (full_script: true returns them all)"), "{script}");
    let after = run.json["diff"][0]["after"].as_str().unwrap();
    assert_eq!(after.lines().count(), 601, "the diff too");
    check["full_script"] = true.into();
    let whole = run_open_ports(&sandbox, &tools.path_var(), None, &check);
    let script = whole.json["script"].as_str().unwrap();
    assert!(script.lines().count() > 2000, "every line: {}", script.lines().count());
    assert!(!script.contains("lines not shown"));
}

/// iptables has no sets: rules are sources x multiport matches. Beyond the
/// module's bound it refuses, before building them, and points at nftables.
#[test]
fn an_iptables_ruleset_too_large_to_write_is_refused_before_it_is_built() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    let ports: Vec<u16> = (0..20_000).map(|p| 2 * p + 1).collect();
    let sources: Vec<String> = (0..500).map(|i| format!("198.18.{}.{}/32", i / 250, i % 250 + 1)).collect();
    let args =
        json!({"backend": "iptables", "_ansible_check_mode": true, "rules": [{"ports": ports, "sources": sources}]});
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &args);
    run.assert_failed_with("more than the 200000 the module writes");
    assert!(run.msg().contains("use backend: nftables"), "{}", run.msg());
    let mut nft = args.clone();
    nft["backend"] = "nftables".into();
    let sets = run_open_ports(&sandbox, &ToolDir::new(Variant::Nftables).path_var(), None, &nft);
    sets.assert_ok();
}

/// An accept in the module's own table does not override another table's
/// drop or reject: a catch-all rule at the end of another input chain is
/// named, like a drop policy, and a rule that matches something is not.
#[test]
fn another_tables_catch_all_drop_or_reject_is_named() {
    for (last, warned) in [
        ("reject", Some("ends in the catch-all rule `reject")),
        ("counter drop", Some("ends in the catch-all rule `")),
        ("iifname \"eth9\" drop", None),
        ("tcp dport 22 accept", None),
    ] {
        let sandbox = Sandbox::new();
        let tools = ToolDir::new(Variant::Nftables);
        sandbox.sh(&format!(
            "nft add table inet filter && nft add chain inet filter input '{{ type filter hook input priority 0; policy accept; }}' \
             && nft add rule inet filter input {last}"
        ));
        let run = run_open_ports(
            &sandbox,
            &tools.path_var(),
            None,
            &json!({"backend": "nftables", "rules": [{"ports": [8080]}]}),
        );
        run.assert_ok();
        let named = run.warnings().iter().any(|w| w.contains("`inet filter input`") && w.contains("jump_from"));
        match warned {
            Some(text) => {
                assert!(named && run.warnings().iter().any(|w| w.contains(text)), "{last}: {:?}", run.warnings());
            }
            None => assert!(!named, "{last}: {:?}", run.warnings()),
        }
    }
}
