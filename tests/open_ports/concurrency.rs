//! Runs at once and runs cut short: two runs on one name leave exactly one
//! of the two requested states (hooks never duplicate, no stale sets of the
//! other), a run waits for the lock with a bound, and a run killed at any
//! moment leaves each family at its old or its new rules, which the next
//! run finds and completes.

use std::process::Stdio;
use std::time::Duration;

use portmatrix_tests::firewall::{ToolDir, Variant, iptables_hook, run_open_ports};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

use super::{own_objects, per_iptables_variant, per_variant};

const ROUNDS: usize = 50;

fn request(variant: Variant, jump: bool, port: u16, source: &str) -> Value {
    let mut args = json!({"backend": variant.backend(), "enforce": true,
        "rules": [{"ports": [port], "sources": [source, "2001:db8::/32"]}]});
    if jump {
        args["jump_from"] = "inet filter input".into();
    }
    args
}

/// Two runs with different rules on the same name, started together, round
/// after round; after each, the module's objects are exactly one request.
fn two_runs_leave_one_request(variant: Variant, jump: bool) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    if jump {
        sandbox.sh("nft add table inet filter && nft add chain inet filter input '{ type filter hook input priority 0; policy drop; }'");
    }
    // What each request looks like on its own, from a sandbox of its own.
    let alone = |args: &Value| {
        let own = Sandbox::new();
        if jump {
            own.sh("nft add table inet filter && nft add chain inet filter input '{ type filter hook input priority 0; policy drop; }'");
        }
        run_open_ports(&own, &path, None, args).assert_ok();
        objects(&own, variant, jump)
    };
    for round in 0..ROUNDS {
        let port = u16::try_from(1000 + round).unwrap();
        let a = request(variant, jump, port, "198.18.1.0/24");
        let b = request(variant, jump, port + 1000, "198.18.2.0/24");
        let (run_a, run_b) = std::thread::scope(|s| {
            let first = s.spawn(|| run_open_ports(&sandbox, &path, None, &a));
            let second = s.spawn(|| run_open_ports(&sandbox, &path, None, &b));
            (first.join().unwrap(), second.join().unwrap())
        });
        run_a.assert_ok();
        run_b.assert_ok();
        let now = objects(&sandbox, variant, jump);
        assert!(now == alone(&a) || now == alone(&b), "round {round}: a mixture of two requests:\n{now}");
    }
}

/// The module's objects, as the variant's tools list them (nftables: the
/// whole ruleset, which the module shares with the user's table in jump mode).
fn objects(sandbox: &Sandbox, variant: Variant, jump: bool) -> String {
    if jump { sandbox.sh("nft list ruleset") } else { own_objects(sandbox, variant, "open_ports") }
}

per_variant!(two_runs_at_once_leave_exactly_one_request);
fn two_runs_at_once_leave_exactly_one_request(variant: Variant) {
    two_runs_leave_one_request(variant, false);
}

#[test]
fn two_runs_at_once_with_jump_from_leave_one_jump_and_no_stale_sets() {
    two_runs_leave_one_request(Variant::Nftables, true);
}

per_variant!(a_run_waits_for_the_lock_with_a_bound_and_names_the_holder);
fn a_run_waits_for_the_lock_with_a_bound_and_names_the_holder(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let holder = sandbox.hold_lock("open_ports", "open_ports", "pid 4242 open_ports: started");
    let mut args = request(variant, false, 8080, "198.18.1.0/24");
    args["lock_timeout"] = 1.into();
    let run = run_open_ports(&sandbox, &tools.path_var(), None, &args);
    run.assert_failed_with("another run on this host holds");
    assert!(
        run.msg().contains("held by pid 4242 open_ports: started") && run.msg().contains("within 1"),
        "{}",
        run.msg()
    );
    assert_eq!(own_objects(&sandbox, variant, "open_ports"), "", "nothing applied");
    holder.release();
    run_open_ports(&sandbox, &tools.path_var(), None, &args).assert_ok();
}

/// Per family, the module's chain (and its hook) as iptables-save lists it.
fn family_objects(sandbox: &Sandbox, variant: Variant, family6: bool) -> String {
    let saved = portmatrix_tests::firewall::iptables_save(sandbox, variant, family6);
    saved.lines().filter(|l| l.contains("open_ports")).flat_map(|l| [l, "\n"]).collect()
}

per_iptables_variant!(a_run_killed_at_any_moment_leaves_each_family_old_or_new_and_the_next_completes_it);
fn a_run_killed_at_any_moment_leaves_each_family_old_or_new_and_the_next_completes_it(variant: Variant) {
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let path = tools.path_var();
    // Large enough that applying takes a while: 100 sources x 40 ports.
    let sources: Vec<String> = (0..100).map(|i| format!("198.18.{}.{}/32", i / 50, i % 50 + 1)).collect();
    let big = |port: u16| json!({"backend": "iptables", "enforce": true, "rules": [{"ports": (0..40).map(|p| port + 2 * p).collect::<Vec<_>>(), "sources": sources.clone()}, {"ports": [port], "sources": ["2001:db8::/32"]}]});
    let states = |args: &Value| {
        let own = Sandbox::new();
        run_open_ports(&own, &path, None, args).assert_ok();
        (family_objects(&own, variant, false), family_objects(&own, variant, true))
    };
    let (old, new) = (big(10000), big(20000));
    let (old_v4, old_v6) = states(&old);
    let (new_v4, new_v6) = states(&new);
    // The kills are spread over a whole run, as long as it takes here.
    run_open_ports(&sandbox, &path, None, &old).assert_ok();
    let start = std::time::Instant::now();
    run_open_ports(&sandbox, &path, None, &new).assert_ok();
    let whole = start.elapsed();
    for round in 0..ROUNDS {
        run_open_ports(&sandbox, &path, None, &old).assert_ok();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("args"), new.to_string()).unwrap();
        let mut command = sandbox.command(portmatrix_tests::module_binary("open_ports"));
        command.env("PATH", &path).arg(dir.path().join("args")).stdout(Stdio::null());
        let mut child = command.spawn().unwrap();
        // A moment spread over the run, different each round.
        std::thread::sleep(whole * u32::try_from(round).unwrap() / u32::try_from(ROUNDS).unwrap());
        let _ = child.kill();
        child.wait().unwrap();
        // The module's tool, in a process group of its own, finishes its
        // one atomic step.
        for _ in 0..200 {
            // Only this sandbox's processes: other tests run tools too.
            let restoring = format!("pgrep --ns {} --nslist net -f '[t]ables-restore'", sandbox.pid());
            if !sandbox.sh_output(&restoring).status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (v4, v6) = (family_objects(&sandbox, variant, false), family_objects(&sandbox, variant, true));
        assert!(v4 == old_v4 || v4 == new_v4, "round {round}: IPv4 neither old nor new:\n{v4}");
        assert!(v6 == old_v6 || v6 == new_v6, "round {round}: IPv6 neither old nor new:\n{v6}");
        for text in [&v4, &v6] {
            assert!(text.matches(&iptables_hook("INPUT", "open_ports")).count() <= 1, "round {round}: {text}");
        }
        let next = run_open_ports(&sandbox, &path, None, &new);
        next.assert_ok();
        let was_new = v4 == new_v4 && v6 == new_v6;
        assert_eq!(next.changed(), !was_new, "round {round}: {:?}", next.json);
        assert_eq!(
            (family_objects(&sandbox, variant, false), family_objects(&sandbox, variant, true)),
            (new_v4.clone(), new_v6.clone()),
            "round {round}: the next run completes it"
        );
    }
}

per_iptables_variant!(a_run_killed_between_the_families_is_reported_and_completed_by_the_next);
fn a_run_killed_between_the_families_is_reported_and_completed_by_the_next(variant: Variant) {
    // The window itself, every time: a FAKE ip6tables-restore that says it
    // started and then hangs, so the run is killed after its IPv4 step.
    let sandbox = Sandbox::new();
    let tools = ToolDir::new(variant);
    let old = request(variant, false, 8080, "198.18.1.0/24");
    let new = request(variant, false, 9090, "198.18.2.0/24");
    run_open_ports(&sandbox, &tools.path_var(), None, &old).assert_ok();
    let (old_v6, new_v4) = (family_objects(&sandbox, variant, true), {
        let own = Sandbox::new();
        run_open_ports(&own, &tools.path_var(), None, &new).assert_ok();
        family_objects(&own, variant, false)
    });
    let hanging = ToolDir::new(variant);
    let started = tempfile::tempdir().unwrap();
    let flag = started.path().join("started");
    hanging.fake("ip6tables-restore", &format!("echo $$ >{}\nexec sleep 30\n", flag.display()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("args"), new.to_string()).unwrap();
    let mut child = sandbox
        .command(portmatrix_tests::module_binary("open_ports"))
        .env("PATH", hanging.path_var())
        .arg(dir.path().join("args"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The fake writes its pid when the IPv6 step starts.
    let mut hung = String::new();
    for _ in 0..500 {
        hung = std::fs::read_to_string(&flag).unwrap_or_default();
        if hung.ends_with('\n') {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(hung.ends_with('\n'), "the IPv6 step started");
    child.kill().unwrap();
    child.wait().unwrap();
    // The hung tool itself, by its pid (a pattern would match other tests' processes).
    sandbox.sh(&format!("kill -9 {}", hung.trim()));
    assert_eq!(family_objects(&sandbox, variant, false), new_v4, "IPv4 holds the new rules");
    assert_eq!(family_objects(&sandbox, variant, true), old_v6, "IPv6 still the old ones");

    let next = run_open_ports(&sandbox, &tools.path_var(), None, &new);
    next.assert_ok();
    assert!(next.changed());
    assert!(
        next.warnings().iter().any(|w| w.contains("ended while applying") && w.contains("iptables")),
        "{:?}",
        next.warnings()
    );
    assert!(family_objects(&sandbox, variant, true).contains("9090"), "the next run completed IPv6");
    let after = run_open_ports(&sandbox, &tools.path_var(), None, &new);
    assert!(
        !after.changed() && after.warnings().iter().all(|w| !w.contains("ended while applying")),
        "{:?}",
        after.json
    );
}
