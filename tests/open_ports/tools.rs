//! Tools that hang or lie (each a FAKE standing in for a broken nft or
//! iptables): every command is bounded, a hung one is named and killed, what
//! it applied is undone, and output that cannot be understood is reported as
//! such, never read as "nothing there".

use std::time::{Duration, Instant};

use portmatrix_tests::firewall::{ToolDir, Variant, run_open_ports};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

use super::{own_objects, per_iptables_variant, per_variant};

fn args(variant: Variant, port: u16) -> Value {
    json!({"backend": variant.backend(), "enforce": true, "command_timeout": 2,
        "rules": [{"ports": [port], "sources": ["198.18.0.0/16", "2001:db8::/32"]}]})
}

/// The tool that applies, per family: `nft` or the ip6tables one (the
/// second step of an iptables run).
fn applying_tool(variant: Variant) -> &'static str {
    if variant.is_iptables() { "ip6tables-restore" } else { "nft" }
}

/// A FAKE that, the first time it applies, runs the real tool on its input
/// (so the change is committed) and then hangs, or hangs before reading
/// anything; later calls (the undo) are the real tool's.
/// The hung process's pid is written to `hung.pid` in the tool directory.
fn hang(tools: &ToolDir, variant: Variant, after_commit: bool) {
    let tool = applying_tool(variant);
    let once = tools.path().join("hung-once");
    let pid = tools.path().join("hung.pid");
    let sleep = format!("echo $$ >{}; exec sleep 30", pid.display());
    let hang = if after_commit { format!("\"$REAL\" \"$@\"; {sleep}") } else { sleep };
    let apply = format!("if [ ! -e {0} ]; then touch {0}; {hang}; fi; exec \"$REAL\" \"$@\"", once.display());
    if variant.is_iptables() {
        tools.fake(tool, &format!("{apply}\n"));
    } else {
        // nft also lists and checks; only `-f` without `-c` applies.
        tools.fake(
            tool,
            &format!(
                "case \" $* \" in *' -c '*) exec \"$REAL\" \"$@\";; *' -f '*) {apply};; esac\nexec \"$REAL\" \"$@\"\n"
            ),
        );
    }
}

per_variant!(a_hung_apply_is_killed_named_and_undone);
fn a_hung_apply_is_killed_named_and_undone(variant: Variant) {
    for after_commit in [true, false] {
        let sandbox = Sandbox::new();
        let tools = ToolDir::new(variant);
        run_open_ports(&sandbox, &tools.path_var(), None, &args(variant, 8080)).assert_ok();
        let before = own_objects(&sandbox, variant, "open_ports");
        hang(&tools, variant, after_commit);
        let start = Instant::now();
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &args(variant, 9090));
        assert!(start.elapsed() < Duration::from_secs(30), "the run ended at its bound, not the tool's");
        let tool = applying_tool(variant);
        let command = if variant.is_iptables() { format!("{tool} --noflush") } else { "nft -f -".to_string() };
        run.assert_failed_with(&command);
        assert!(run.msg().contains("did not finish within 2 s and was killed"), "{}", run.msg());
        if after_commit || variant.is_iptables() {
            // Something was applied (the commit, or the IPv4 step): undone.
            assert!(run.msg().contains("what had been applied was undone"), "{}", run.msg());
        }
        assert_eq!(own_objects(&sandbox, variant, "open_ports"), before, "the previous rules are in place");
        let pid = std::fs::read_to_string(tools.path().join("hung.pid")).unwrap();
        assert!(!std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(), "the hung tool was killed");
    }
}

per_variant!(a_hung_reader_fails_the_run_with_nothing_changed);
fn a_hung_reader_fails_the_run_with_nothing_changed(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let (tool, shown) = if variant.is_iptables() {
        ("iptables-save", "iptables-save -t filter")
    } else {
        ("nft", "nft -j list chains")
    };
    tools.fake(tool, "exec sleep 30\n");
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &args(variant, 8080));
    run.assert_failed_with(&format!("{shown} did not finish within 2 s and was killed"));
    assert_eq!(sandbox.sh("nft list ruleset"), "", "nothing applied");
}

// Output a reader cannot understand is named, for every reader.
per_iptables_variant!(garbage_from_iptables_is_reported_as_unreadable);
fn garbage_from_iptables_is_reported_as_unreadable(variant: Variant) {
    for (tool, output, expected) in [
        ("iptables-save", "garbage", "cannot read the output of iptables-save -t filter: unexpected line \"garbage\""),
        (
            "ip6tables-save",
            "*filter\n:INPUT ACCEPT [0:0]\n",
            "cannot read the output of ip6tables-save -t filter: no `*filter` table",
        ),
        ("iptables-save", "", "cannot read the output of iptables-save -t filter: no `*filter` table"),
        ("iptables", "garbage", "cannot read the output of iptables -V: \"garbage\" is not an iptables version line"),
    ] {
        let sandbox = Sandbox::new();
        let tools = ToolDir::new(variant);
        tools.fake(tool, &format!("cat <<'EOF'\n{output}\nEOF\n"));
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &args(variant, 8080));
        run.assert_failed_with(expected);
        assert!(!run.msg().contains("does not exist"), "not mistaken for a missing chain: {}", run.msg());
        assert_eq!(own_objects(&sandbox, variant, "open_ports"), "", "nothing applied");
    }
}

#[test]
fn garbage_from_nft_is_reported_as_unreadable() {
    for (what, output, expected) in [
        ("chains", "garbage", "cannot read the output of nft -j list chains: not JSON"),
        ("chains", "{\"tables\": []}", "cannot read the output of nft -j list chains: no \"nftables\" list"),
        ("tables", "[1, 2]", "cannot read the output of nft -j list tables: no \"nftables\" list"),
    ] {
        let sandbox = Sandbox::new();
        let tools = ToolDir::new(Variant::Nftables);
        tools.fake(
            "nft",
            &format!("case \"$*\" in *'list {what}') echo '{output}'; exit 0;; esac\nexec \"$REAL\" \"$@\"\n"),
        );
        let run = run_open_ports(&sandbox, &tools.path_var(), None, &args(Variant::Nftables, 8080));
        run.assert_failed_with(expected);
        assert_eq!(sandbox.sh("nft list ruleset"), "", "nothing applied");
    }
}

/// A PATH entry that is empty or relative means the working directory to a
/// shell; the module, as root, never runs a tool from there.
#[test]
fn tools_are_never_taken_from_the_working_directory() {
    let sandbox = Sandbox::new();
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    for tool in ["nft", "iptables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"] {
        let fake = dir.path().join(tool);
        std::fs::write(&fake, format!("#!/bin/sh\necho {tool} >>{}\n", ran.display())).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    for path in ["", ".", "bin:", ":."] {
        let mut command = sandbox.command(portmatrix_tests::module_binary("open_ports"));
        command.current_dir(dir.path()).env("PATH", path);
        let run = portmatrix_tests::module::run_with_args_text(command, &args(Variant::Nftables, 8080).to_string());
        run.assert_failed_with("was not found on PATH");
        assert!(!ran.exists(), "PATH={path:?} ran a tool from the working directory");
    }
}

/// A host that switched iptables variants still holds the old variant's
/// chain in the kernel; a run with the new variant removes it in the same run
/// (read through the explicit `iptables-legacy-save` names), and `absent`
/// too.
#[test]
fn a_copy_left_in_the_other_iptables_variant_is_removed() {
    for args in
        [json!({"rules": [{"ports": [8080], "sources": ["198.18.0.1"]}], "enforce": true}), json!({"state": "absent"})]
    {
        let sandbox = Sandbox::new();
        let legacy = ToolDir::new(Variant::IptablesLegacy);
        let first = json!({"rules": [{"ports": [8080], "sources": ["198.18.0.1"]}], "enforce": true});
        run_open_ports(&sandbox, &legacy.path_var(), None, &first).assert_ok();
        let switched = ToolDir::new(Variant::IptablesNft).with_explicit_variants();
        let run = run_open_ports(&sandbox, &switched.path_var(), None, &args);
        run.assert_ok();
        assert!(run.msg().contains("under iptables-legacy was removed"), "{}", run.msg());
        assert_eq!(own_objects(&sandbox, Variant::IptablesLegacy, "open_ports"), "", "the legacy copy is gone");
        let again = run_open_ports(&sandbox, &switched.path_var(), None, &args);
        assert!(!again.changed(), "{:?}", again.json);
    }
}

/// A host that lost one family's tools: `present` refuses rather than write
/// one family (or make a copy under nftables), `absent` removes the other
/// family's rules and says which family it could not check.
#[test]
fn a_host_missing_the_ipv6_tools_is_refused_not_half_served() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    let args = json!({"rules": [{"ports": [8080], "sources": ["198.18.0.1"]}], "enforce": true});
    run_open_ports(&sandbox, &tools.path_var(), None, &args).assert_ok();
    let before = own_objects(&sandbox, Variant::IptablesNft, "open_ports");
    for tool in ["ip6tables", "ip6tables-save", "ip6tables-restore"] {
        tools.remove(tool);
    }
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &args);
    run.assert_failed_with("ip6tables-save was not found on PATH");
    assert_eq!(own_objects(&sandbox, Variant::IptablesNft, "open_ports"), before, "nothing changed");
    assert!(!sandbox.sh("nft list tables").contains("inet open_ports"), "no second copy under nftables");
    let absent = run_open_ports(&sandbox, &tools.path_var(), None, &json!({"state": "absent"}));
    absent.assert_ok();
    assert!(
        absent.warnings().iter().any(|w| w.contains("the ip6tables filter table was not checked")),
        "{:?}",
        absent.warnings()
    );
    let v4 = portmatrix_tests::firewall::iptables_save(&sandbox, Variant::IptablesNft, false);
    assert!(!v4.contains("portmatrix"), "IPv4 removed: {v4}");
}

/// A failed apply is not an apply cut short: the next run does not say so.
/// Its result stays short: the script summarised, the tool's stderr cut.
#[test]
fn a_failed_apply_answers_briefly_and_is_not_taken_for_a_killed_one() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::IptablesNft);
    tools.fake("ip6tables-restore", "cat >/dev/null\nhead -c 50000 /dev/zero | tr '\\0' x >&2\nexit 1\n");
    let ports: Vec<u16> = (0..300).map(|p| 10000 + 2 * p).collect();
    let sources: Vec<String> = (0..100).map(|i| format!("198.18.{i}.0/24")).collect();
    let big = json!({"backend": "iptables", "rules": [{"ports": ports, "sources": sources}, {"ports": [80], "sources": ["2001:db8::/32"]}]});
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &big);
    run.assert_failed_with("more bytes of stderr");
    assert!(run.msg().len() < 10_000, "{} bytes of msg", run.msg().len());
    assert!(run.json["script"].as_str().unwrap().lines().count() <= 601, "the script is summarised on failure too");
    let ok = ToolDir::new(Variant::IptablesNft);
    let next = run_open_ports(&sandbox, &ok.path_var(), None, &big);
    next.assert_ok();
    assert!(next.warnings().iter().all(|w| !w.contains("ended while applying")), "{:?}", next.warnings());
}
