//! Safety: the SSH guard both ways, and a failure during apply (a backend
//! tool missing, or the ruleset rejected) leaves the previous rules in place.

use portmatrix_tests::firewall::{ToolDir, Variant, run_open_ports};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::json;

use super::{own_objects, per_variant};

const SSH: &str = "198.18.5.9 50022 198.18.5.1 22";

per_variant!(the_ssh_guard_refuses_to_lock_out_the_session_and_allows_it_when_a_rule_lets_it_in);
fn the_ssh_guard_refuses_to_lock_out_the_session_and_allows_it_when_a_rule_lets_it_in(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    let locking = json!({"backend": variant.backend(), "enforce": true,
        "rules": [{"ports": [22, 80], "sources": ["198.19.0.0/16"]}]});
    let refused = run_open_ports(&sandbox, &path, Some(SSH), &locking);
    refused.assert_failed_with("new SSH connections from 198.18.5.9 to port 22/tcp");
    assert!(refused.msg().contains("Nothing was changed"), "{}", refused.msg());
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "", "nothing applied");

    // Without enforce nothing is dropped, so the same rules are fine.
    let mut open = locking.clone();
    open["enforce"] = false.into();
    run_open_ports(&sandbox, &path, Some(SSH), &open).assert_ok();

    let allowed = json!({"backend": variant.backend(), "enforce": true,
        "rules": [{"ports": [22, 80], "sources": ["198.19.0.0/16", "198.18.5.0/24"]}]});
    let run = run_open_ports(&sandbox, &path, Some(SSH), &allowed);
    run.assert_ok();
    assert!(run.changed());
    assert!(own_objects(&sandbox, variant, "open_ports").contains("198.18.5.0/24"));

    // Enforcing another port leaves SSH alone.
    let other = json!({"backend": variant.backend(), "enforce": true, "rules": [{"ports": [80], "sources": ["198.19.0.0/16"]}]});
    run_open_ports(&sandbox, &path, Some(SSH), &other).assert_ok();
}

fn rules(port: u16) -> serde_json::Value {
    json!({"rules": [{"ports": [port], "sources": ["198.18.0.0/16", "2001:db8::/32"]}], "enforce": true})
}

/// Applies `rules(8080)`, then `rules(9090)` with broken tools; the first
/// rules must still be exactly in place afterwards.
fn failing_apply_keeps_previous(variant: Variant, break_tools: impl Fn(&ToolDir), expected: &str) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let mut first = rules(8080);
    first["backend"] = variant.backend().into();
    run_open_ports(&sandbox, &tools.path_var(), None, &first).assert_ok();
    let before = own_objects(&sandbox, variant, "open_ports");
    assert!(before.contains("8080"));

    break_tools(&tools);
    let mut second = rules(9090);
    second["backend"] = variant.backend().into();
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &second);
    run.assert_failed_with(expected);
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), before, "the previous rules are in place");
}

#[test]
fn iptables_ipv6_tool_missing_undoes_the_ipv4_step() {
    for variant in [Variant::IptablesNft, Variant::IptablesLegacy] {
        failing_apply_keeps_previous(
            variant,
            |tools| tools.remove("ip6tables-restore"),
            "ip6tables-restore was not found on PATH",
        );
    }
}

#[test]
fn iptables_ipv6_ruleset_rejected_undoes_the_ipv4_step() {
    for variant in [Variant::IptablesNft, Variant::IptablesLegacy] {
        failing_apply_keeps_previous(variant, |tools| tools.reject("ip6tables-restore"), "line 2 failed (fake)");
    }
}

#[test]
fn iptables_report_says_the_steps_were_undone() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    tools.reject("ip6tables-restore");
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &rules(8080));
    assert!(run.msg().contains("what had been applied was undone"), "{}", run.msg());
    assert!(run.json["script"].as_str().unwrap().contains("# ip6tables-restore"), "the failed script is returned");
    assert_eq!(own_objects(&sandbox, Variant::IptablesNft, "open_ports"), "", "no chain and no hook left behind");
}

#[test]
fn nftables_missing_tool_changes_nothing() {
    failing_apply_keeps_previous(Variant::Nftables, |tools| tools.remove("nft"), "nft was not found on PATH");
}

#[test]
fn nftables_ruleset_rejected_keeps_the_previous_rules() {
    // A FAKE nft that refuses the transaction, as the kernel does one it
    // cannot take: one nft -f is all or nothing.
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let path = tools.path_var();
    sandbox.sh("nft add table inet filter && nft add chain inet filter input '{ type filter hook input priority 0; policy accept; }'");
    let one = json!({"jump_from": "inet filter input", "rules": [{"ports": [8080]}]});
    run_open_ports(&sandbox, &path, None, &one).assert_ok();
    let before = sandbox.sh("nft list ruleset");
    tools.nft_rejecting_apply();
    let two = json!({"jump_from": "inet filter input", "rules": [{"ports": [8080]}, {"ports": [9090]}]});
    let run = run_open_ports(&sandbox, &path, None, &two);
    run.assert_failed_with("nft -f - failed");
    assert!(run.msg().contains("Could not process rule (fake)"), "{}", run.msg());
    assert_eq!(sandbox.sh("nft list ruleset"), before, "nothing of the transaction was applied");
}

/// Every form sshd writes `SSH_CONNECTION` in is understood, so the guard
/// knows the session's client whatever the address family or notation.
#[test]
fn the_ssh_guard_reads_every_form_of_ssh_connection() {
    let tools = ToolDir::new(Variant::Nftables);
    let enforce = |sources: &[&str]| json!({"backend": "nftables", "enforce": true, "rules": [{"ports": [22, 80], "sources": sources}]});
    for (session, sources, allowed) in [
        ("[2001:db8::5] 50000 [2001:db8::1] 22", &["2001:db8::/32"][..], true),
        ("[2001:db8::5] 50000 [2001:db8::1] 22", &["198.18.0.0/16"][..], false),
        ("2001:db8::5 50000 2001:db8::1 22", &["2001:db8::/32"][..], true),
        ("fe80::5%eth0 50000 fe80::1%eth0 22", &["fe80::/10"][..], true),
        ("fe80::5%eth0 50000 fe80::1%eth0 22", &["2001:db8::/32"][..], false),
        ("::ffff:198.18.5.9 50000 ::ffff:198.18.5.1 22", &["198.18.5.0/24"][..], true),
        ("::ffff:127.0.0.1 50000 ::ffff:127.0.0.1 22", &["loopback"][..], true),
        ("198.18.5.1 50000 198.18.5.1 22", &["loopback"][..], true),
        ("198.18.5.9 50000 198.18.5.1 22", &["loopback"][..], false),
    ] {
        let sandbox = Sandbox::new();
        let run = run_open_ports(&sandbox, &tools.path_var(), Some(session), &enforce(sources));
        if allowed {
            run.assert_ok();
            assert!(run.changed(), "{session} with {sources:?}");
        } else {
            run.assert_failed_with("would be dropped");
            assert_eq!(own_objects(&sandbox, Variant::Nftables, "open_ports"), "", "{session}: nothing applied");
        }
    }
}

/// A value that is set but cannot be read refuses `enforce`, quoting it;
/// without `enforce` nothing is dropped, so it does not matter.
#[test]
fn an_unreadable_ssh_connection_refuses_enforce_and_quotes_it() {
    let tools = ToolDir::new(Variant::Nftables);
    let rules = json!([{"ports": [22], "sources": ["198.18.0.0/16"]}]);
    // sshd's form for a session that is not on a network socket: nothing to guard.
    let sandbox = Sandbox::new();
    let enforced = json!({"backend": "nftables", "enforce": true, "rules": rules});
    run_open_ports(&sandbox, &tools.path_var(), Some("UNKNOWN 65535 UNKNOWN 65535"), &enforced).assert_ok();
    for value in [
        "garbage",
        "198.18.5.9 50000 198.18.5.1",
        "198.18.5.9 50000 198.18.5.1 22 extra",
        "198.18.5.9 50000 198.18.5.1 99999",
        "198.18.5.9%eth0 50000 198.18.5.1 22",
        "",
    ] {
        let sandbox = Sandbox::new();
        let enforced = json!({"backend": "nftables", "enforce": true, "rules": rules});
        let run = run_open_ports(&sandbox, &tools.path_var(), Some(value), &enforced);
        run.assert_failed_with(&format!("SSH_CONNECTION is set to {value:?}"));
        assert!(run.msg().contains("Nothing was changed"), "{}", run.msg());
        assert_eq!(own_objects(&sandbox, Variant::Nftables, "open_ports"), "", "nothing applied");
        let open = json!({"backend": "nftables", "rules": rules});
        run_open_ports(&sandbox, &tools.path_var(), Some(value), &open).assert_ok();
    }
}

/// `become` (sudo) drops `SSH_CONNECTION` from the module's environment; the
/// guard finds it in the process that started the module, as it would in
/// sudo's.
#[test]
fn the_ssh_guard_finds_the_session_when_sudo_dropped_it() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("args");
    let locking =
        json!({"backend": "nftables", "enforce": true, "rules": [{"ports": [22], "sources": ["198.19.0.0/16"]}]});
    std::fs::write(&args, locking.to_string()).unwrap();
    // The parent keeps SSH_CONNECTION; the module is started without it.
    let mut command = sandbox.command("sh");
    command
        .args([
            "-c",
            &format!(
                "env -u SSH_CONNECTION {} {}; exit $?",
                portmatrix_tests::module_binary("open_ports").display(),
                args.display()
            ),
        ])
        .env("PATH", tools.path_var())
        .env("SSH_CONNECTION", SSH);
    let run = portmatrix_tests::module::run(command);
    run.assert_failed_with("new SSH connections from 198.18.5.9 to port 22/tcp");
    assert_eq!(own_objects(&sandbox, Variant::Nftables, "open_ports"), "", "nothing applied");
}
