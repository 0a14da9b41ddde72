//! Two runs at once on one host (one sandbox): each run's read-plan-apply
//! happens under the host's lock, so both updates land, in the kernel and in
//! the file, every round; and a run that cannot get its turn in time fails
//! cleanly, naming who holds the lock, with nothing changed. Another program
//! that edits `sysctl_file` while a run is writing it keeps its edit.

use std::sync::Barrier;

use portmatrix_portset::PortSet;
use portmatrix_tests::module::ModuleRun;
use portmatrix_tests::sandbox::Sandbox;
use serde_json::json;

const FILE: &str = "/etc/sysctl.d/90-reserved-ports.conf";
const ROUNDS: u16 = 50;

fn persisted(sandbox: &Sandbox) -> PortSet {
    let file = sandbox.read(FILE);
    let line =
        file.lines().rfind(|l| l.starts_with("net.ipv4.ip_local_reserved_ports")).expect("the key is in the file");
    line.split_once('=').unwrap().1.parse().unwrap()
}

#[test]
fn two_runs_at_once_both_land_every_round() {
    let sandbox = Sandbox::new();
    let mut expected = PortSet::new();
    for round in 0..ROUNDS {
        let (a, b) = (10_000 + round, 20_000 + round);
        let start = Barrier::new(2);
        let run = |port: u16| {
            start.wait();
            sandbox.run_module("reserved_ports", &json!({"ports": [port]}))
        };
        let (run_a, run_b): (ModuleRun, ModuleRun) = std::thread::scope(|s| {
            let first = s.spawn(|| run(a));
            let second = s.spawn(|| run(b));
            (first.join().unwrap(), second.join().unwrap())
        });
        expected = expected.union(&format!("{a},{b}").parse().unwrap());
        for (port, result) in [(a, &run_a), (b, &run_b)] {
            result.assert_ok();
            assert!(result.changed(), "round {round}: the run adding {port} changed something: {result:?}");
            assert!(!result.msg().contains("kernel"), "round {round}: nobody blames the kernel: {result:?}");
            let reserved: PortSet = result.json["reserved"].as_str().unwrap().parse().unwrap();
            assert!(reserved.contains(port), "round {round}: its result holds {port}: {result:?}");
        }
        assert_eq!(sandbox.reserved(), expected.to_string(), "round {round}: the kernel holds both runs' ports");
        assert_eq!(persisted(&sandbox), expected, "round {round}: the file holds both runs' ports");
    }
}

#[test]
fn a_held_lock_makes_a_run_fail_cleanly_naming_the_holder() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    sandbox.write(FILE, "net.ipv4.ip_local_reserved_ports = 9000\n");
    let holder = sandbox.hold_lock(reserved_ports::LOCK_MODULE, reserved_ports::LOCK_OBJECT, "pid 4242 a-test-holder");
    let lock = holder.path.clone();

    for check_mode in [false, true] {
        let run = sandbox.run_module(
            "reserved_ports",
            &json!({"ports": [8080], "lock_timeout": 1, "_ansible_check_mode": check_mode}),
        );
        run.assert_failed_with(&format!("another run on this host holds {lock}"));
        assert!(run.msg().contains("a-test-holder"), "the holder is named: {}", run.msg());
        assert!(run.msg().contains("did not finish within 1"), "{}", run.msg());
        assert!(run.msg().contains("nothing was changed"), "{}", run.msg());
        assert!(run.msg().contains("lock_timeout"), "{}", run.msg());
        assert_eq!(sandbox.reserved(), "9000");
        assert_eq!(sandbox.read(FILE), "net.ipv4.ip_local_reserved_ports = 9000\n");
    }
    let once = sandbox.run_module("reserved_ports", &json!({"ports": [8080], "lock_timeout": 0}));
    once.assert_failed_with("did not finish within 0");

    holder.release();
    let after = sandbox.run_module("reserved_ports", &json!({"ports": [8080], "lock_timeout": 1}));
    after.assert_ok();
    assert_eq!(sandbox.reserved(), "8080,9000");
}

#[test]
fn without_root_a_check_runs_without_the_lock_and_a_change_says_become() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    // The lock directory does not exist yet and only root may create it.
    let binary = portmatrix_tests::module_binary("reserved_ports");
    let as_nobody = |args: serde_json::Value| {
        let script =
            format!("echo '{args}' | setpriv --reuid=65534 --regid=65534 --clear-groups {} -", binary.display());
        let mut command = sandbox.command("sh");
        command.args(["-c", &script]);
        portmatrix_tests::module::run(command)
    };
    let check = as_nobody(json!({"ports": [8080], "_ansible_check_mode": true}));
    check.assert_ok();
    assert_eq!(check.json["reserved"], "8080,9000");
    let change = as_nobody(json!({"ports": [8080]}));
    change.assert_failed_with("changing the reservation needs root (become: true)");
    assert!(change.msg().contains("Permission denied"), "{}", change.msg());
    assert_eq!(sandbox.reserved(), "9000");
}

/// Another program (not this module, so not held back by the lock) appends
/// to `sysctl_file` after the run read it and before it renames its new
/// version into place: the run is held still there by strace, which delays
/// its first fsync (of the temp file, written by then) by 3 seconds. The
/// edit is kept, the kernel put back, and the run fails saying to run
/// again; the next run keeps the edit and adds its port.
#[test]
fn an_edit_made_by_another_program_during_a_run_is_kept() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    let before = "# kept\nnet.ipv4.ip_local_reserved_ports = 9000\n";
    sandbox.write(FILE, before);
    let args_dir = tempfile::tempdir().unwrap();
    let args = args_dir.path().join("args");
    std::fs::write(&args, json!({"ports": [8080]}).to_string()).unwrap();
    let held = sandbox
        .command("strace")
        .args(["-f", "-o", "/dev/null", "-e", "inject=fsync:delay_enter=3000000:when=1"])
        .arg(portmatrix_tests::module_binary("reserved_ports"))
        .arg(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("strace runs (scripts/setup.sh installs it)");
    // The temp file appears once the run has read, planned and written the
    // kernel; it is then held in the fsync of that temp file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sandbox.sh("ls -A /etc/sysctl.d").contains(".portmatrix-") {
        assert!(std::time::Instant::now() < deadline, "the run made no temp file");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sandbox.sh(&format!("echo 'vm.swappiness = 10' >> {FILE}"));
    let out = held.wait_with_output().unwrap();
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let edited = format!("{before}vm.swappiness = 10\n");
    assert_eq!(out.status.code(), Some(1), "{run}");
    let msg = run["msg"].as_str().unwrap();
    assert_eq!(
        msg,
        format!(
            "sysctl_file {FILE} changed while it was being written (its content changed): another program edited it \
             after this run read it, so it was left as that program wrote it and the runtime reservation was put \
             back to \"9000\"; nothing was lost: run the module again"
        )
    );
    assert_eq!(sandbox.read(FILE), edited, "the other program's line is kept");
    assert_eq!(sandbox.reserved(), "9000", "the runtime change is undone");
    assert_eq!(sandbox.sh("ls -A /etc/sysctl.d"), "90-reserved-ports.conf\n", "no temp file left");

    let again = sandbox.run_module("reserved_ports", &json!({"ports": [8080]}));
    again.assert_ok();
    assert_eq!(sandbox.reserved(), "8080,9000");
    assert_eq!(
        sandbox.read(FILE),
        "# kept\nnet.ipv4.ip_local_reserved_ports = 8080,9000\nvm.swappiness = 10\n",
        "the next run keeps the edit"
    );
}
