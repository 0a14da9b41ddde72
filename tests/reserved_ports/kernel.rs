//! `reserved_ports` against a real kernel: each test runs the shipped binary
//! in a private network + mount namespace (see support/sandbox.rs), so the
//! kernel value and the sysctl.d files are real but private.

use portmatrix_tests::sandbox::{PORT_RANGE, RESERVED, Sandbox};
use serde_json::json;

const FILE: &str = "/etc/sysctl.d/90-reserved-ports.conf";

#[test]
fn present_merges_with_an_existing_reservation_and_persists_the_result() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000,10000-10010");
    sandbox.write(FILE, "# operator's note\nvm.swappiness = 10\n");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": ["8080-8082", 8083]}));
    run.assert_ok();
    assert!(run.changed());
    assert_eq!(sandbox.reserved(), "8080-8083,9000,10000-10010");
    assert_eq!(run.json["reserved"], "8080-8083,9000,10000-10010");
    assert_eq!(run.json["added"], "8080-8083");
    assert_eq!(run.json["removed"], "");
    assert_eq!(
        sandbox.read(FILE),
        "# operator's note\nvm.swappiness = 10\nnet.ipv4.ip_local_reserved_ports = 8080-8083,9000,10000-10010\n"
    );
    assert_eq!(run.json["ephemeral_range"], "32768-60999");
    assert_eq!(run.json["ephemeral_free"], 28232);
    assert_eq!(run.json["sysctl_file"], FILE);
}

#[test]
fn absent_splits_a_range() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("8080-8090");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8085, "8089-8095"], "state": "absent"}));
    run.assert_ok();
    assert_eq!(sandbox.reserved(), "8080-8084,8086-8088");
    assert_eq!(run.json["removed"], "8085,8089-8090");
    assert!(sandbox.read(FILE).contains("net.ipv4.ip_local_reserved_ports = 8080-8084,8086-8088\n"));
}

#[test]
fn exclusive_replaces_what_others_reserved() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000,10000");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [80, 443], "exclusive": true}));
    run.assert_ok();
    assert_eq!(sandbox.reserved(), "80,443");
    assert_eq!(run.json["removed"], "9000,10000");
    let clear = sandbox.run_module("reserved_ports", &json!({"ports": [], "exclusive": true}));
    clear.assert_ok();
    assert_eq!(sandbox.reserved(), "");
    assert!(sandbox.read(FILE).ends_with("\nnet.ipv4.ip_local_reserved_ports =\n"));
}

#[test]
fn a_second_run_with_the_same_ports_in_another_form_changes_nothing() {
    let sandbox = Sandbox::new();
    let first = sandbox.run_module("reserved_ports", &json!({"ports": ["8080-8082", 9000]}));
    assert!(first.changed());
    let inode_before = sandbox.sh(&format!("stat -c %i {FILE}"));
    let again = sandbox.run_module("reserved_ports", &json!({"ports": "9000,8082,8080,8081", "_ansible_diff": true}));
    again.assert_ok();
    assert!(!again.changed(), "{:?}", again.json);
    assert_eq!(sandbox.sh(&format!("stat -c %i {FILE}")), inode_before, "the file was not rewritten");
    assert_eq!(again.json["diff"][0]["before"], again.json["diff"][0]["after"]);
}

#[test]
fn a_file_out_of_step_with_the_kernel_is_rewritten_alone() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("8080");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080]}));
    assert!(run.changed(), "the kernel matched but the file was missing");
    assert_eq!(run.json["added"], "");
    assert!(sandbox.read(FILE).contains("= 8080\n"));
}

#[test]
fn check_mode_plans_but_leaves_kernel_and_file_untouched() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    let run = sandbox
        .run_module("reserved_ports", &json!({"ports": [8080], "_ansible_check_mode": true, "_ansible_diff": true}));
    run.assert_ok();
    assert!(run.changed(), "check mode reports the change it would make");
    assert_eq!(run.json["reserved"], "8080,9000");
    assert_eq!(sandbox.reserved(), "9000");
    assert_eq!(sandbox.read_optional(FILE), None);
    let diff = &run.json["diff"];
    assert_eq!(diff[0]["before_header"], "/proc/sys/net/ipv4/ip_local_reserved_ports");
    assert_eq!(diff[0]["before"], "9000\n");
    assert_eq!(diff[0]["after"], "8080,9000\n");
    assert_eq!(diff[1]["before_header"], FILE);
    assert_eq!(diff[1]["before"], "");
    assert!(diff[1]["after"].as_str().unwrap().ends_with("net.ipv4.ip_local_reserved_ports = 8080,9000\n"));
}

#[test]
fn a_result_that_starves_the_ephemeral_range_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.sh(&format!("echo '40000 41999' > {PORT_RANGE}"));
    let run = sandbox.run_module("reserved_ports", &json!({"ports": ["40000-41000"]}));
    run.assert_failed_with(
        "refusing to reserve 40000-41000: this change takes 1001 of the 2000 ports of the ephemeral range \
         40000-41999 (net.ipv4.ip_local_port_range) and would leave 999 of them unreserved, fewer than \
         min_free_ephemeral=1024",
    );
    assert_eq!(sandbox.reserved(), "");
    assert_eq!(sandbox.read_optional(FILE), None);
    let allowed = sandbox.run_module("reserved_ports", &json!({"ports": ["40000-41000"], "min_free_ephemeral": 500}));
    allowed.assert_ok();
    assert_eq!(allowed.json["ephemeral_free"], 999);
}

#[test]
fn a_range_short_already_refuses_only_changes_that_take_from_it() {
    // 501 ephemeral ports, fewer than min_free_ephemeral (1024) before any change.
    let sandbox = Sandbox::new();
    sandbox.sh(&format!("echo '40000 40500' > {PORT_RANGE}"));
    let already_short = "the ephemeral range 40000-40500 (net.ipv4.ip_local_port_range) has 501 unreserved ports, \
                         fewer than min_free_ephemeral=1024, and had before this change; this change takes none of them";

    // Outside the range: nothing taken from it, so accepted, with a word on the range.
    for (args, reserved) in [
        (json!({"ports": [80]}), "80"),
        (json!({"ports": [80, "39000-39999", "40501-41000"]}), "80,39000-39999,40501-41000"),
        (json!({"ports": [443], "exclusive": true}), "443"),
    ] {
        let run = sandbox.run_module("reserved_ports", &args);
        run.assert_ok();
        assert_eq!(run.warnings(), vec![already_short.to_string()], "{args}");
        assert_eq!(sandbox.reserved(), reserved, "{args}");
        assert_eq!(run.json["ephemeral_free"], 501);
    }

    // Inside it: refused, saying what this change takes and what it leaves.
    for (args, taken) in [
        (json!({"ports": [40100]}), "refusing to reserve 40100: this change takes 1 of the 501 ports"),
        (
            json!({"ports": [80, "40000-40010"], "exclusive": true}),
            "refusing to reserve 40000-40010: this change takes 11 of the 501 ports",
        ),
    ] {
        let run = sandbox.run_module("reserved_ports", &args);
        run.assert_failed_with(taken);
        assert!(run.msg().contains("fewer than min_free_ephemeral=1024"), "{}", run.msg());
        assert_eq!(sandbox.reserved(), "443", "{args}: nothing changed");
    }

    // Ports of the range reserved already (by someone else) are freed without a fuss.
    sandbox.set_reserved("443,40100-40200");
    let freeing = sandbox.run_module("reserved_ports", &json!({"ports": ["40100-40150"], "state": "absent"}));
    freeing.assert_ok();
    assert_eq!(sandbox.reserved(), "443,40151-40200");
    assert_eq!(freeing.warnings()[0].split(" has ").next(), already_short.split(" has ").next());
    // With the check off, nothing is refused and nothing said.
    let off = sandbox.run_module("reserved_ports", &json!({"ports": [40300], "min_free_ephemeral": 0}));
    off.assert_ok();
    assert!(off.warnings().is_empty(), "{:?}", off.warnings());
}

#[test]
fn a_later_sysctl_file_that_would_override_at_boot_is_named() {
    let sandbox = Sandbox::new();
    sandbox.write("/etc/sysctl.d/99-zz-legacy.conf", "net/ipv4/ip_local_reserved_ports = 8080\n");
    sandbox.write("/etc/sysctl.d/10-early.conf", "net.ipv4.ip_local_reserved_ports = 1\n");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": ["8080-8082"]}));
    run.assert_ok();
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "the reservation will not survive a reboot: /etc/sysctl.d/99-zz-legacy.conf sets \
             net.ipv4.ip_local_reserved_ports = 8080, so at boot the reservation is 8080, which lacks 8081-8082"
        ),
        "{}",
        warnings[0]
    );
    sandbox.write("/etc/sysctl.d/99-zz-legacy.conf", "net.ipv4.ip_local_reserved_ports = 1-9000\n");
    assert!(sandbox.run_module("reserved_ports", &json!({"ports": ["8080-8082"]})).warnings().is_empty());
}

#[test]
fn the_persisted_file_is_what_systemd_sysctl_applies() {
    let sandbox = Sandbox::new();
    sandbox.run_module("reserved_ports", &json!({"ports": ["1025-2180", 8080]})).assert_ok();
    sandbox.set_reserved("");
    sandbox.sh("/lib/systemd/systemd-sysctl --prefix=/net/ipv4/ip_local_reserved_ports");
    assert_eq!(sandbox.reserved(), "1025-2180,8080");
}

#[test]
fn read_only_proc_sys_fails_with_advice_and_writes_no_file() {
    let sandbox = Sandbox::new();
    sandbox.sh("mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080]}));
    run.assert_failed_with(&format!("{RESERVED} is read-only here"));
    assert!(run.msg().contains("--security-opt unmask=/proc/sys"), "{}", run.msg());
    assert_eq!(sandbox.read_optional(FILE), None);
    assert_eq!(sandbox.reserved(), "");
}

#[test]
fn an_unwritable_file_puts_the_runtime_value_back() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    sandbox.sh("mount -o remount,ro /etc/sysctl.d");
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080]}));
    run.assert_failed_with(&format!("cannot write {FILE}"));
    assert!(run.msg().contains("the runtime reservation was put back to \"9000\""), "{}", run.msg());
    assert_eq!(sandbox.reserved(), "9000");
    assert_eq!(run.json["reserved"], "9000");
}

#[test]
fn persist_false_touches_only_the_kernel() {
    let sandbox = Sandbox::new();
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [15055], "persist": false}));
    run.assert_ok();
    assert_eq!(sandbox.reserved(), "15055");
    assert_eq!(run.json["sysctl_file"], serde_json::Value::Null);
    assert_eq!(sandbox.sh("ls -A /etc/sysctl.d"), "");
}

#[test]
fn long_lists_are_read_and_written_whole() {
    // The kernel prints a port bitmap per read call and ignores the offset:
    // a reader that reads in pieces sees garbage past its first piece.
    let sandbox = Sandbox::new();
    let every_other: Vec<String> = (10001..=16000).step_by(2).map(|p| p.to_string()).collect();
    let dcos_agent = ["1025-2180", "2182-3887", "3889-5049", "5052-8079", "8082-8180", "8182-9999"];
    let ports: Vec<&str> = dcos_agent.iter().copied().chain(every_other.iter().map(String::as_str)).collect();
    let run = sandbox.run_module("reserved_ports", &json!({"ports": ports}));
    run.assert_ok();
    let expected = format!("{},{}", dcos_agent.join(","), every_other.join(","));
    assert!(expected.len() > 16_000, "long enough to need many read pieces");
    assert_eq!(sandbox.reserved(), expected);
    assert_eq!(run.json["reserved"], expected);
    let again = sandbox.run_module("reserved_ports", &json!({"ports": ports}));
    assert!(!again.changed(), "the long value reads back equal: {}", again.msg());
}
