//! Big arguments, for every module: beyond the cap a clean failure; at the
//! cap, memory within a stated multiple of it; and when memory runs out all
//! the same (a tight address-space limit), still one JSON object.
//!
//! Each run is in a sandbox (the modules read the kernel's state there) and
//! in check mode: nothing is changed, not even in the sandbox.

use std::process::Command;

use portmatrix_ansible::MAX_ARGS_BYTES;
use portmatrix_tests::firewall::{ToolDir, Variant};
use portmatrix_tests::module::{ModuleRun, run_with_args_text};
use portmatrix_tests::module_binary;
use portmatrix_tests::sandbox::Sandbox;

/// `{PREFIX item,item,...,item SUFFIX}` padded with spaces to exactly `size`
/// bytes: as many items as fit.
fn args_of_size(prefix: &str, item: &str, suffix: &str, size: usize) -> String {
    let items = (size - prefix.len() - suffix.len() + 1) / (item.len() + 1);
    let mut text = format!("{prefix}{}{suffix}", vec![item; items].join(","));
    text.insert_str(text.len() - suffix.len(), &" ".repeat(size - text.len()));
    assert_eq!(text.len(), size);
    text
}

/// The worst case for `reserved_ports` (and for the protocol): one long list
/// of the smallest elements JSON has, each costing a whole parsed value.
fn reserved_ports_args(size: usize) -> String {
    args_of_size(r#"{"_ansible_check_mode": true, "ports": ["#, "1", "]}", size)
}

/// `open_ports`: one rule with a long ports list and a long sources list.
fn open_ports_args(size: usize) -> String {
    let ports = args_of_size(r#"{"_ansible_check_mode": true, "rules": [{"ports": ["#, "1", "], ", size / 2);
    args_of_size(&format!(r#"{ports}"sources": ["#), r#""::1""#, "]}]}", size)
}

/// `unit_bindings`: a long list of the smallest valid dicts, the costliest
/// shape (a parsed dict takes far more than its text).
fn unit_bindings_args(size: usize) -> String {
    let item = r#"{"port":1,"state":"free"}"#;
    args_of_size(r#"{"_ansible_check_mode": true, "expect": ["#, item, "]}", size)
}

/// A module binary run inside `sandbox` under `prlimit --as=LIMIT` (when
/// given), with the tools `open_ports` needs on its PATH.
fn command(sandbox: &Sandbox, tools: &ToolDir, module: &str, address_space: Option<usize>) -> Command {
    let mut command = match address_space {
        Some(limit) => {
            let mut command = sandbox.command("prlimit");
            command.arg(format!("--as={limit}")).arg(module_binary(module));
            command
        }
        None => sandbox.command(module_binary(module)),
    };
    command.env("PATH", tools.path_var()).env_remove("SSH_CONNECTION");
    command
}

fn assert_over_the_cap(run: &ModuleRun, source: &str) {
    run.assert_failed_with(&format!("the arguments in {source}"));
    run.assert_failed_with(&format!("more than the {MAX_ARGS_BYTES} bytes (4 MiB) a portmatrix module reads"));
    assert!(run.json.get("invocation").is_none(), "nothing was read to echo: {}", run.msg());
}

#[test]
fn args_over_the_cap_fail_cleanly_from_a_file_and_from_stdin() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let cases = [
        ("reserved_ports", reserved_ports_args(MAX_ARGS_BYTES + 1)),
        ("open_ports", open_ports_args(MAX_ARGS_BYTES + 1)),
        ("unit_bindings", unit_bindings_args(MAX_ARGS_BYTES + 1)),
    ];
    for (module, text) in &cases {
        let from_file = run_with_args_text(command(&sandbox, &tools, module, None), text);
        assert_over_the_cap(&from_file, "");
        assert!(from_file.msg().contains(&format!(" are {} bytes, more than", MAX_ARGS_BYTES + 1)), "{module}");

        let mut from_stdin = command(&sandbox, &tools, module, None);
        from_stdin.arg("-");
        let out = assert_cmd::Command::from_std(from_stdin).write_stdin(text.as_bytes()).output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{module}: one line: {stdout:?}");
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(out.status.code(), Some(1), "{module}");
        let msg = json["msg"].as_str().unwrap();
        assert!(
            msg.contains(&format!("in standard input are more than the {MAX_ARGS_BYTES} bytes")),
            "{module}: {msg}"
        );
    }
    assert_eq!(sandbox.reserved(), "", "nothing reserved");
}

#[test]
fn args_just_under_the_cap_are_read_and_acted_on() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let run =
        run_with_args_text(command(&sandbox, &tools, "reserved_ports", None), &reserved_ports_args(MAX_ARGS_BYTES));
    run.assert_ok();
    assert_eq!(run.json["reserved"], "1", "every element is port 1");
    assert_eq!(sandbox.reserved(), "", "check mode");
}

/// What a static module binary needs before it reads anything: measured,
/// it starts in 1 MiB of address space and not in 768 KiB. Four, to spare.
const BASELINE: usize = 4 << 20;

/// Each module, on its worst case at the cap, under an address-space limit
/// of a stated multiple of the cap: it must come back with its own answer,
/// not run out of memory. Measured needs (address space / args): 20x for
/// `reserved_ports`' list, 30x for `open_ports`' two lists, 78x for
/// `unit_bindings`' dicts (`serde_json` spends a 632-byte B-tree node on each).
#[test]
fn at_the_cap_every_module_stays_within_its_memory_multiple() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let cases = [
        ("reserved_ports", reserved_ports_args(MAX_ARGS_BYTES), 32),
        ("open_ports", open_ports_args(MAX_ARGS_BYTES), 64),
        ("unit_bindings", unit_bindings_args(MAX_ARGS_BYTES), 128),
    ];
    for (module, text, multiple) in &cases {
        let limit = multiple * MAX_ARGS_BYTES + BASELINE;
        let run = run_with_args_text(command(&sandbox, &tools, module, Some(limit)), text);
        assert!(!run.msg().contains("ran out of memory"), "{module} within {multiple}x: {}", run.msg());
        run.assert_ok();
    }
    assert_eq!(sandbox.reserved(), "", "check mode");
    assert_eq!(sandbox.sh("nft list ruleset"), "", "check mode");
}

/// Far too little memory for the args, still enough to start: every module
/// answers with one failed object, not an abort with nothing on stdout.
#[test]
fn out_of_memory_is_one_failed_object_for_every_module() {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(Variant::Nftables);
    let limit = 16 << 20;
    let cases = [
        ("reserved_ports", reserved_ports_args(MAX_ARGS_BYTES)),
        ("open_ports", open_ports_args(MAX_ARGS_BYTES)),
        ("unit_bindings", unit_bindings_args(MAX_ARGS_BYTES)),
    ];
    for (module, text) in &cases {
        let run = run_with_args_text(command(&sandbox, &tools, module, Some(limit)), text);
        run.assert_failed_with(&format!("{module} ran out of memory (allocating "));
        run.assert_failed_with(
            "under an address-space limit of 16 MiB): the arguments are too large for this host's memory limit",
        );
        assert_eq!(run.json["changed"], false, "{module}");
    }
    assert_eq!(sandbox.reserved(), "", "nothing reserved");
}
