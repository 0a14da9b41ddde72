//! Ownership: the module changes or removes only objects that carry its
//! marker, whatever their names, and finds its own objects wherever an
//! earlier run left them (another `jump_from`, the other backend).

use portmatrix_tests::firewall::{ToolDir, Variant, iptables_hook, iptables_save, run_open_ports};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

use super::{own_objects, per_iptables_variant, per_variant};

/// A host's own nftables firewall: table `inet filter`, input chain with
/// policy drop, a set of admin hosts, an SSH accept.
const USERS_FILTER: &str = "nft -f - <<'EOF'
table inet filter {
	set admins { type ipv4_addr; flags interval; elements = { 198.18.7.0/24 } }
	set web_allow { type inet_service; elements = { 8443 } }
	set web_spare { type ipv4_addr; }
	chain input {
		type filter hook input priority filter; policy drop;
		ip saddr @admins tcp dport 22 accept
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
	}
}
EOF";

/// A sandbox holding the user's `inet filter`, and nftables tools.
fn users_nftables_host() -> (Sandbox, ToolDir) {
    let sandbox = Sandbox::new();
    sandbox.sh(USERS_FILTER);
    (sandbox, ToolDir::new(Variant::Nftables))
}

/// Arguments that hook the module into a chain of the user's: iptables'
/// INPUT, or (nftables) the input chain of the user's `inet filter`, which
/// this sets up.
fn hooked(sandbox: &Sandbox, variant: Variant, extra: &Value) -> Value {
    let base = if variant.is_iptables() {
        json!({"backend": "iptables", "rules": [{"ports": [8080]}]})
    } else {
        sandbox.sh(USERS_FILTER);
        json!({"jump_from": "inet filter input", "rules": [{"ports": [8080]}]})
    };
    with(&base, extra)
}

fn ruleset(sandbox: &Sandbox) -> String {
    sandbox.sh("nft list ruleset")
}

fn with(base: &Value, extra: &Value) -> Value {
    let mut args = base.clone();
    args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    args
}

/// `present` is refused naming `object`; `absent` leaves it with a warning
/// and no change, twice; the host's ruleset is byte for byte the same.
fn refused_and_left_alone(sandbox: &Sandbox, tools: &ToolDir, args: &Value, object: &str, list: &dyn Fn() -> String) {
    let before = list();
    let present = run_open_ports(sandbox, &tools.path_var(), None, &with(args, &json!({"rules": [{"ports": [80]}]})));
    present.assert_failed_with(&format!("{object} exists but carries no marker of this module"));
    assert!(present.msg().contains("Pick another `name`"), "{}", present.msg());
    assert_eq!(list(), before, "a refused run changed the firewall");
    for _ in 0..2 {
        let absent = run_open_ports(sandbox, &tools.path_var(), None, &with(args, &json!({"state": "absent"})));
        absent.assert_ok();
        assert!(!absent.changed(), "absent of someone else's object: {:?}", absent.json);
        assert!(
            absent.warnings().iter().any(|w| w.contains(object) && w.contains("left as it is")),
            "{:?}",
            absent.warnings()
        );
        assert_eq!(list(), before, "absent changed the firewall");
    }
}

#[test]
fn a_users_nftables_table_of_the_same_name_is_never_replaced_or_deleted() {
    let (sandbox, tools) = users_nftables_host();
    refused_and_left_alone(
        &sandbox,
        &tools,
        &json!({"backend": "nftables", "name": "filter"}),
        "table inet filter",
        &|| ruleset(&sandbox),
    );
    // Other members of the kind: an empty table, and one whose input chain
    // looks like the module's but carries no marker.
    sandbox.sh("nft add table inet web && nft -f - <<'EOF'\ntable inet open_ports {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tct state established,related accept\n\t\treturn\n\t}\n}\nEOF");
    for (name, object) in [("web", "table inet web"), ("open_ports", "table inet open_ports")] {
        refused_and_left_alone(&sandbox, &tools, &json!({"backend": "nftables", "name": name}), object, &|| {
            ruleset(&sandbox)
        });
    }
}

per_iptables_variant!(a_users_iptables_chain_of_the_same_name_is_never_flushed_or_deleted);
fn a_users_iptables_chain_of_the_same_name_is_never_flushed_or_deleted(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let (v4, v6) = (variant.iptables(false), variant.iptables(true));
    sandbox.sh(&format!(
        "{v4} -N open_ports && {v4} -A open_ports -s 198.18.7.0/24 -j ACCEPT && {v4} -A open_ports -j DROP && \
         {v4} -A FORWARD -j open_ports && {v6} -N web && {v6} -A web -j DROP"
    ));
    let list = || format!("{}{}", iptables_save(&sandbox, variant, false), iptables_save(&sandbox, variant, true));
    let object = "chain open_ports of the iptables filter table";
    refused_and_left_alone(&sandbox, &tools, &json!({"backend": "iptables"}), object, &list);
    // The same name only in the IPv6 table is refused just the same.
    let object = "chain web of the ip6tables filter table";
    refused_and_left_alone(&sandbox, &tools, &json!({"backend": "iptables", "name": "web"}), object, &list);
}

#[test]
fn jump_from_leaves_the_users_sets_and_base_chains_alone() {
    let (sandbox, tools) = users_nftables_host();
    let path = tools.path_var();
    let users_sets = || {
        sandbox.sh(
            "nft list set inet filter web_allow; nft list set inet filter web_spare; nft list set inet filter admins",
        )
    };
    let sets_before = users_sets();
    let web = json!({"jump_from": "inet filter input", "name": "web", "rules": [{"ports": [80, 443], "sources": ["198.18.0.0/15"]}]});
    run_open_ports(&sandbox, &path, None, &web).assert_ok();
    assert_eq!(users_sets(), sets_before, "web_allow and web_spare are the user's, not the module's");
    run_open_ports(&sandbox, &path, None, &with(&web, &json!({"rules": [{"ports": [80]}]}))).assert_ok();
    assert_eq!(users_sets(), sets_before);
    let absent = run_open_ports(&sandbox, &path, None, &with(&web, &json!({"state": "absent"})));
    assert!(absent.changed());
    assert_eq!(users_sets(), sets_before);
    assert!(!ruleset(&sandbox).contains("portmatrix"), "all of the module's objects are gone");

    // A set of the user's named like one the module would create is refused.
    sandbox.sh("nft add set inet filter web_r1_ports '{ type inet_service; }'");
    let taken = run_open_ports(&sandbox, &path, None, &web);
    taken.assert_failed_with("set web_r1_ports of table inet filter exists but carries no marker");

    // The user's base chains can never be the module's: not the one hooked
    // into, nor another.
    let before = ruleset(&sandbox);
    let hook_itself = run_open_ports(
        &sandbox,
        &path,
        None,
        &json!({"jump_from": "inet filter input", "name": "input", "state": "absent"}),
    );
    hook_itself.assert_failed_with("names the module's own chain \"input\"");
    let base = json!({"jump_from": "inet filter forward", "name": "input"});
    refused_and_left_alone(&sandbox, &tools, &base, "chain input of table inet filter", &|| ruleset(&sandbox));
    assert_eq!(ruleset(&sandbox), before);
}

#[test]
fn builtin_chains_and_targets_can_never_be_a_name() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    for name in [
        "INPUT",
        "OUTPUT",
        "FORWARD",
        "PREROUTING",
        "POSTROUTING",
        "ACCEPT",
        "DROP",
        "RETURN",
        "QUEUE",
        "LOG",
        "REJECT",
        "standard",
    ] {
        for state in ["present", "absent"] {
            for backend in ["iptables", "nftables"] {
                let args = json!({"name": name, "state": state, "backend": backend, "rules": [{"ports": [80]}]});
                run_open_ports(&sandbox, &tools.path_var(), None, &args)
                    .assert_failed_with(&format!("name {name:?} cannot be used"));
            }
        }
    }
    // nftables keywords are asked of nft itself.
    let tools = ToolDir::new(Variant::Nftables);
    for name in ["drop", "counter", "meta", "table"] {
        let args = json!({"name": name, "backend": "nftables", "rules": [{"ports": [80]}]});
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &args);
        run.assert_failed_with(&format!("name {name:?} cannot be used with nftables"));
    }
    assert_eq!(ruleset(&sandbox), "", "nothing applied");
}

per_iptables_variant!(a_backend_change_moves_the_rules_and_absent_removes_every_copy_in_one_run);
fn a_backend_change_moves_the_rules_and_absent_removes_every_copy_in_one_run(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    let rules = json!([{"ports": [8080], "sources": ["198.18.0.0/16"]}]);
    let nft_copy = || own_objects(&sandbox, Variant::Nftables, "open_ports");
    let ipt_copy = || own_objects(&sandbox, variant, "open_ports");

    run_open_ports(&sandbox, &path, None, &json!({"backend": "iptables", "rules": rules})).assert_ok();
    let moved = run_open_ports(&sandbox, &path, None, &json!({"backend": "nftables", "rules": rules}));
    moved.assert_ok();
    assert!(
        moved.msg().contains(&format!("the copy of open_ports under {} was removed", variant.label())),
        "{}",
        moved.msg()
    );
    assert_eq!(ipt_copy(), "", "the iptables copy is gone in the same run");
    assert!(nft_copy().contains("8080"));
    let back = run_open_ports(&sandbox, &path, None, &json!({"backend": "iptables", "rules": rules}));
    assert!(back.msg().contains("the copy of open_ports under nftables was removed"), "{}", back.msg());
    assert_eq!(nft_copy(), "");
    let auto = run_open_ports(&sandbox, &path, None, &json!({"rules": rules}));
    assert_eq!(
        (auto.json["backend"].as_str(), auto.changed()),
        (Some(variant.label()), false),
        "auto stays where the rules are"
    );

    // Both copies at once (each written while the other backend's tools
    // were out of reach): absent removes both in one run, then nothing.
    let nft_only = ToolDir::new(Variant::Nftables);
    for tool in ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"] {
        nft_only.remove(tool);
    }
    run_open_ports(&sandbox, &nft_only.path_var(), None, &json!({"backend": "nftables", "rules": rules})).assert_ok();
    assert!(!nft_copy().is_empty() && !ipt_copy().is_empty(), "both copies are there");
    let absent = run_open_ports(&sandbox, &path, None, &json!({"state": "absent"}));
    absent.assert_ok();
    assert!(absent.changed());
    assert_eq!((nft_copy(), ipt_copy()), (String::new(), String::new()), "both removed in one run: {}", absent.msg());
    let again = run_open_ports(&sandbox, &path, None, &json!({"state": "absent"}));
    assert!(!again.changed(), "{:?}", again.json);
}

#[test]
fn a_changed_jump_from_moves_the_hook_and_leaves_nothing_behind() {
    let (sandbox, tools) = users_nftables_host();
    let path = tools.path_var();
    sandbox.sh("nft add table ip other && nft add chain ip other input '{ type filter hook input priority 10; policy accept; }'");
    let rules = json!([{"ports": [8080]}]);
    run_open_ports(&sandbox, &path, None, &json!({"jump_from": "inet filter input", "rules": rules})).assert_ok();
    let moved = run_open_ports(&sandbox, &path, None, &json!({"jump_from": "ip other input", "rules": rules}));
    assert!(moved.changed());
    let listed = ruleset(&sandbox);
    assert_eq!(listed.matches("jump open_ports").count(), 1, "{listed}");
    assert!(!sandbox.sh("nft list table inet filter").contains("open_ports"), "nothing left in inet filter");
    let own = run_open_ports(&sandbox, &path, None, &json!({"backend": "nftables", "rules": rules}));
    assert!(own.changed());
    assert!(!sandbox.sh("nft list table ip other").contains("open_ports"), "nothing left in ip other");
    assert!(sandbox.sh("nft list tables").contains("table inet open_ports"));

    // iptables: the hook moves from INPUT to FORWARD, and no copy stays.
    let ipt = ToolDir::new(Variant::IptablesNft);
    let ipath = ipt.path_var();
    run_open_ports(&sandbox, &ipath, None, &json!({"backend": "iptables", "rules": rules})).assert_ok();
    run_open_ports(&sandbox, &ipath, None, &json!({"backend": "iptables", "jump_from": "FORWARD", "rules": rules}))
        .assert_ok();
    let saved = iptables_save(&sandbox, Variant::IptablesNft, false);
    assert!(
        saved.contains(&iptables_hook("FORWARD", "open_ports"))
            && !saved.contains(&iptables_hook("INPUT", "open_ports")),
        "{saved}"
    );
}

per_variant!(a_chain_others_still_jump_to_is_not_removed);
fn a_chain_others_still_jump_to_is_not_removed(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    let args = hooked(&sandbox, variant, &json!({}));
    run_open_ports(&sandbox, &path, None, &args).assert_ok();
    let (user_rule, expected) = if variant.is_iptables() {
        (
            format!("{} -A FORWARD -s 198.18.3.0/24 -j open_ports", variant.iptables(false)),
            "-A FORWARD -s 198.18.3.0/24 -j open_ports",
        )
    } else {
        ("nft add rule inet filter forward ip saddr 198.18.3.0/24 jump open_ports".to_string(), "in chain forward")
    };
    sandbox.sh(&user_rule);
    let before = own_objects(&sandbox, variant, "open_ports");
    let absent = run_open_ports(&sandbox, &path, None, &with(&args, &json!({"state": "absent"})));
    absent.assert_failed_with("cannot be removed: a rule that is not of this module jumps to it");
    assert!(absent.msg().contains(expected), "{}", absent.msg());
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), before, "nothing changed");
    // Changing the rules is fine: the user's jump keeps working.
    run_open_ports(&sandbox, &path, None, &with(&args, &json!({"rules": [{"ports": [9090]}]}))).assert_ok();
}

per_variant!(a_rule_put_above_the_hook_is_noticed_and_the_hook_goes_back_on_top);
fn a_rule_put_above_the_hook_is_noticed_and_the_hook_goes_back_on_top(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    let args = hooked(&sandbox, variant, &json!({"_ansible_diff": true}));
    run_open_ports(&sandbox, &path, None, &args).assert_ok();
    if variant.is_iptables() {
        sandbox.sh(&format!("{} -I INPUT 1 -p tcp -j REJECT", variant.iptables(false)));
    } else {
        sandbox.sh("nft insert rule inet filter input tcp dport 8080 reject");
    }
    let run = run_open_ports(&sandbox, &path, None, &args);
    run.assert_ok();
    assert!(run.changed(), "a hook below another rule is drift: {:?}", run.json);
    let before = run.json["diff"][0]["before"].as_str().unwrap();
    assert!(before.contains("below rules of others"), "the diff shows where it was:\n{before}");
    let again = run_open_ports(&sandbox, &path, None, &args);
    assert!(!again.changed(), "back on top: {:?}", again.json);
    if variant.is_iptables() {
        let saved = iptables_save(&sandbox, variant, false);
        assert_eq!(
            saved.lines().find(|l| l.starts_with("-A INPUT")),
            Some(iptables_hook("INPUT", "open_ports").as_str()),
            "{saved}"
        );
    } else {
        let chain = sandbox.sh("nft list chain inet filter input");
        let first = chain.lines().find(|l| l.contains("jump") || l.contains("reject")).unwrap();
        assert!(first.contains("jump open_ports"), "{chain}");
    }
}

/// Text in a comment is never read as a reference: a rule comment naming a
/// user's set (`@trusted`), or a user rule's comment holding `-j open_ports`.
#[test]
fn references_come_from_expressions_never_from_comments() {
    let (sandbox, tools) = users_nftables_host();
    let path = tools.path_var();
    let args =
        json!({"jump_from": "inet filter input", "rules": [{"ports": [8080], "comment": "same as @admins hosts"}]});
    let admins = || sandbox.sh("nft list set inet filter admins");
    let before = admins();
    run_open_ports(&sandbox, &path, None, &args).assert_ok();
    let again = run_open_ports(&sandbox, &path, None, &args);
    again.assert_ok();
    assert!(!again.changed(), "the user's set is not the module's: {:?}", again.json);
    assert_eq!(admins(), before);
    run_open_ports(&sandbox, &path, None, &with(&args, &json!({"state": "absent"}))).assert_ok();
    assert_eq!(admins(), before);

    let ipt = ToolDir::new(Variant::IptablesNft);
    run_open_ports(&sandbox, &ipt.path_var(), None, &json!({"backend": "iptables", "rules": [{"ports": [80]}]}))
        .assert_ok();
    sandbox.sh(&format!(
        "{} -A INPUT -s 192.0.2.1 -m comment --comment 'was: -j open_ports before' -j ACCEPT",
        Variant::IptablesNft.iptables(false)
    ));
    let absent = run_open_ports(&sandbox, &ipt.path_var(), None, &json!({"backend": "iptables", "state": "absent"}));
    absent.assert_ok();
    assert_eq!(own_objects(&sandbox, Variant::IptablesNft, "open_ports").matches("portmatrix").count(), 0);
}

/// A user's rule that uses one of the module's sets, or a verdict map that
/// jumps to its chain, keeps them from being removed; the run says which.
#[test]
fn users_of_the_modules_sets_and_maps_are_named() {
    let (sandbox, tools) = users_nftables_host();
    let path = tools.path_var();
    let args = json!({"jump_from": "inet filter input", "rules": [{"ports": [8080], "sources": ["198.18.0.0/16"]}]});
    run_open_ports(&sandbox, &path, None, &args).assert_ok();
    sandbox.sh("nft add rule inet filter forward ip saddr @open_ports_r1_v4 accept");
    let absent = run_open_ports(&sandbox, &path, None, &with(&args, &json!({"state": "absent"})));
    absent.assert_failed_with("cannot be removed");
    assert!(absent.msg().contains("uses set open_ports_r1_v4"), "{}", absent.msg());
    sandbox.sh("nft flush chain inet filter forward");
    sandbox.sh(
        "nft add map inet filter dispatch '{ type inet_service : verdict; elements = { 8080 : jump open_ports } }'",
    );
    let absent = run_open_ports(&sandbox, &path, None, &with(&args, &json!({"state": "absent"})));
    absent.assert_failed_with("the verdict map dispatch");
}

/// `jump_from` can never put the module's objects where a run of another
/// instance (or iptables) would remove or break them.
#[test]
fn jump_from_into_a_table_or_chain_of_the_module_or_of_iptables_nft_is_refused() {
    let sandbox = Sandbox::new();
    let nft = ToolDir::new(Variant::Nftables);
    let ipt = ToolDir::new(Variant::IptablesNft);
    run_open_ports(
        &sandbox,
        &nft.path_var(),
        None,
        &json!({"name": "b", "backend": "nftables", "rules": [{"ports": [80]}]}),
    )
    .assert_ok();
    let before = ruleset(&sandbox);
    for (tools, args, expected) in [
        (&nft, json!({"name": "a", "jump_from": "inet b input"}), "the table of open_ports with name=b"),
        (&nft, json!({"name": "b", "jump_from": "inet b input"}), "names the module's own table inet b"),
        (&ipt, json!({"name": "a", "backend": "nftables", "jump_from": "ip filter INPUT"}), "which iptables-nft keeps"),
    ] {
        if expected.contains("iptables-nft") {
            sandbox.sh(&format!("{} -P INPUT ACCEPT", Variant::IptablesNft.iptables(false)));
        }
        let before = ruleset(&sandbox);
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &with(&args, &json!({"rules": [{"ports": [81]}]})));
        run.assert_failed_with(expected);
        assert_eq!(ruleset(&sandbox), before, "{expected}: nothing changed");
    }
    sandbox.sh(&format!("{} -P INPUT ACCEPT", Variant::IptablesNft.iptables(false)));
    assert!(ruleset(&sandbox).contains("table inet b"), "{before}");
    let b = run_open_ports(
        &sandbox,
        &nft.path_var(),
        None,
        &json!({"name": "b", "backend": "nftables", "rules": [{"ports": [80]}]}),
    );
    assert!(!b.changed(), "instance b is intact: {:?}", b.json);
    // iptables: another instance's chain is no place to hook into either.
    run_open_ports(
        &sandbox,
        &ipt.path_var(),
        None,
        &json!({"name": "c", "backend": "iptables", "rules": [{"ports": [80]}]}),
    )
    .assert_ok();
    let into_c = json!({"name": "d", "backend": "iptables", "jump_from": "c", "rules": [{"ports": [81]}]});
    run_open_ports(&sandbox, &ipt.path_var(), None, &into_c)
        .assert_failed_with("names chain c, a chain of open_ports itself");
}

per_variant!(a_rule_someone_added_to_the_modules_chain_does_not_make_it_someone_elses);
fn a_rule_someone_added_to_the_modules_chain_does_not_make_it_someone_elses(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    let args = json!({"backend": variant.backend(), "enforce": true, "_ansible_diff": true,
        "rules": [{"ports": [8080], "sources": ["198.18.0.1"]}]});
    run_open_ports(&sandbox, &path, None, &args).assert_ok();
    if variant.is_iptables() {
        sandbox.sh(&format!("{} -I open_ports 1 -s 198.18.0.9 -j ACCEPT", variant.iptables(false)));
    } else {
        sandbox.sh("nft insert rule inet open_ports input ip saddr 198.18.0.9 tcp dport 8080 accept");
        sandbox.sh("nft add chain inet open_ports sneaky '{ type filter hook input priority -10; policy drop; }'");
    }
    let run = run_open_ports(&sandbox, &path, None, &args);
    run.assert_ok();
    assert!(run.changed(), "the edit is drift, put right: {:?}", run.json);
    assert!(run.json["diff"][0]["before"].as_str().unwrap().contains("198.18.0.9"), "the diff shows the edit");
    let now = own_objects(&sandbox, variant, "open_ports");
    assert!(!now.contains("198.18.0.9") && !now.contains("sneaky"), "{now}");
    let absent = run_open_ports(&sandbox, &path, None, &json!({"backend": variant.backend(), "state": "absent"}));
    assert!(absent.changed());
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "", "all of it removed");
}

#[test]
fn a_jump_from_of_one_family_says_the_other_is_left_alone() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    sandbox.sh("nft add table ip filter && nft add chain ip filter input '{ type filter hook input priority 0; }'");
    let args = json!({"jump_from": "ip filter input", "enforce": true,
        "rules": [{"ports": [2181], "sources": ["198.18.0.0/16", "2001:db8::/32"]}]});
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &args);
    run.assert_ok();
    assert!(
        run.warnings().iter().any(|w| w.contains("covers IPv4 only") && w.contains("sources not used: 2001:db8::/32")),
        "{:?}",
        run.warnings()
    );
}

per_variant!(the_marker_survives_a_save_and_restore_of_the_ruleset);
/// The marker survives the ruleset being saved and restored by the host's
/// own tools (a reboot with iptables-persistent or nftables.service): the
/// restored objects are still the module's, and nothing is rewritten.
fn the_marker_survives_a_save_and_restore_of_the_ruleset(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let args = json!({"backend": variant.backend(), "enforce": true, "rules": [{"ports": [8080], "sources": ["198.18.0.0/16"]}]});
    run_open_ports(&sandbox, &tools.path_var(), None, &args).assert_ok();
    let before = own_objects(&sandbox, variant, "open_ports");
    if variant.is_iptables() {
        for family6 in [false, true] {
            let tool = variant.iptables(family6);
            sandbox.sh(&format!("{tool}-save > /tmp/saved.$$ && {tool} -F && {tool} -X && {tool}-restore < /tmp/saved.$$; rm -f /tmp/saved.$$"));
        }
    } else {
        sandbox
            .sh("nft list ruleset > /tmp/saved.$$ && nft flush ruleset && nft -f /tmp/saved.$$; rm -f /tmp/saved.$$");
    }
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), before, "restored as saved");
    let again = run_open_ports(&sandbox, &tools.path_var(), None, &args);
    again.assert_ok();
    assert!(!again.changed(), "the restored objects are the module's: {:?}", again.json);
    let absent =
        run_open_ports(&sandbox, &tools.path_var(), None, &json!({"backend": variant.backend(), "state": "absent"}));
    assert!(absent.changed());
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "");
}
