//! A run killed at any moment leaves the old state or the new one (kernel
//! and file each), or, only while a long value is written to the kernel,
//! a state on the way that the next run completes, whatever it was asked;
//! the next run also removes what the killed run left behind, and never a
//! live run's file.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portmatrix_portset::PortSet;
use portmatrix_tests::sandbox::{RUN_DIR, Sandbox};
use reserved_ports::conffile::render;
use serde_json::{Value, json};

const FILE: &str = "/etc/sysctl.d/90-reserved-ports.conf";
const ROUNDS: usize = 50;

/// A few ranges: a short value, written in one call.
const SHORT: &str = "20001-21000,25000-26000,30000-32000";

/// The short value plus every other port below it from `first`: about 9,500
/// entries (52 KB), so that the kernel value is written in many calls (they
/// sort before the short ranges: a first call that replaced the value would
/// drop those for a moment) and the file takes a while to write.
fn long(first: u16) -> PortSet {
    let extra: Vec<String> = (first..20_000).step_by(2).map(|p: u16| p.to_string()).collect();
    format!("{},{SHORT}", extra.join(",")).parse().unwrap()
}

/// The port of the other request, that each round's next run makes.
const OTHER: u16 = 500;

/// A small xorshift generator: the kill moments vary, and the seed in a
/// failure message reproduces their sequence.
struct Delays(u64);

impl Delays {
    /// A moment between 0 and `within`.
    fn next(&mut self, within: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let micros = u64::try_from(within.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.0 % (micros + 1))
    }
}

/// A state the rounds move to, the request that reaches it, and what a kill
/// during that request may leave in the kernel besides the old and the new
/// value.
struct State {
    value: PortSet,
    request: Value,
    on_the_way: fn(&PortSet, &PortSet, &PortSet) -> bool,
}

/// Adding page by page: anything between the old value and the new.
fn between(old: &PortSet, new: &PortSet, kernel: &PortSet) -> bool {
    old.is_subset(kernel) && kernel.is_subset(new)
}

/// Replacing with a long value: part of the new value (the README's window).
fn part_of_new(_: &PortSet, new: &PortSet, kernel: &PortSet) -> bool {
    kernel.is_subset(new)
}

/// Replacing with a short value: one write call, nothing on the way.
fn nothing(_: &PortSet, _: &PortSet, _: &PortSet) -> bool {
    false
}

/// What a kill left, checked: the kernel old, new or on the way; the file
/// old or new and never ahead of the kernel; only our temp files beside it.
fn after_kill(
    sandbox: &Sandbox,
    old: &State,
    new: &State,
    content: &dyn Fn(&PortSet) -> String,
    context: &str,
) -> (&'static str, &'static str) {
    let kernel: PortSet = sandbox.reserved().parse().unwrap();
    let kernel_state = if kernel == new.value {
        "new"
    } else if kernel == old.value {
        "old"
    } else {
        assert!((new.on_the_way)(&old.value, &new.value, &kernel), "{context}: the kernel holds {kernel}");
        "on the way"
    };
    let file = sandbox.read(FILE);
    let file_state = if file == content(&new.value) {
        "new"
    } else {
        assert!(file == content(&old.value), "{context}: the file holds neither the old nor the new content");
        "old"
    };
    assert!(
        !(file_state == "new" && kernel_state != "new"),
        "{context}: the file is never ahead of the kernel (the kernel is written first)"
    );
    for entry in sandbox.sh("ls -A /etc/sysctl.d").lines() {
        let temp = entry.strip_prefix(".90-reserved-ports.conf.portmatrix-").is_some_and(|pid| {
            pid.strip_suffix(".tmp").is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        });
        assert!(entry == "90-reserved-ports.conf" || temp, "{context}: unexpected {entry}");
    }
    (kernel_state, file_state)
}

#[test]
fn a_run_killed_at_any_moment_leaves_old_or_new_and_the_next_run_completes_it() {
    let sandbox = Sandbox::new();
    // The sysctl directory on a disk (the test's own directory, bound over
    // the sandbox's /etc/sysctl.d), so that fsync takes real time, and a
    // file with 600 KB of the operator's comments to keep and rewrite: a
    // kill can land while the file is being replaced.
    let disk = tempfile::tempdir().unwrap();
    sandbox.sh(&format!("mount --bind {} /etc/sysctl.d", disk.path().display()));
    let padding = "# an operator's note, kept as it is by every run\n".repeat(12_000);
    sandbox.write(FILE, &padding);
    let content = |value: &PortSet| render(Some(&padding), &value.to_string());

    // A cycle: add to a long value, replace it by another long one, replace
    // that by a short one.
    let short: PortSet = SHORT.parse().unwrap();
    let odd = long(1025);
    let even = long(1026);
    let added: Vec<String> = odd.difference(&short).ranges().iter().map(ToString::to_string).collect();
    let states = [
        State { value: odd.clone(), request: json!({"ports": added}), on_the_way: between },
        State {
            value: even.clone(),
            request: json!({"ports": even.to_string(), "exclusive": true}),
            on_the_way: part_of_new,
        },
        State { value: short.clone(), request: json!({"ports": SHORT, "exclusive": true}), on_the_way: nothing },
    ];
    let args_dir = tempfile::tempdir().unwrap();
    let args: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, state)| {
            let path = args_dir.path().join(format!("args{i}.json"));
            std::fs::write(&path, state.request.to_string()).unwrap();
            path
        })
        .collect();
    let settled = |value: &PortSet, context: &str| {
        assert_eq!(sandbox.reserved(), value.to_string(), "{context}: the kernel");
        assert!(sandbox.read(FILE) == content(value), "{context}: the file");
        assert_eq!(sandbox.sh("ls -A /etc/sysctl.d"), "90-reserved-ports.conf\n", "{context}: nothing left behind");
        assert_eq!(sandbox.sh(&format!("ls {RUN_DIR}/lock | grep -c pending || true")), "0\n", "{context}: no record");
    };
    // Returns how long the run took (nsenter and all): the next kill comes
    // at a moment within that span, so that it lands inside a run.
    let run = |request: &Value| {
        let start = Instant::now();
        let run = sandbox.run_module("reserved_ports", request);
        let took = start.elapsed();
        run.assert_ok();
        (run, took)
    };
    let (_, mut span) = run(&states[2].request);
    settled(&short, "before the first round");

    let seed = u64::from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos()) | 1;
    let mut delays = Delays(seed);
    let mut seen = std::collections::BTreeMap::new();
    for round in 0..ROUNDS {
        let (old, new) = (&states[(round + 2) % 3], &states[round % 3]);
        let delay = delays.next(span);
        let mut child = sandbox
            .command(portmatrix_tests::module_binary("reserved_ports"))
            .arg(&args[round % 3])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SIGKILL: no handler runs, as when the OOM killer or a person's
        // kill -9 hits it.
        let _ = child.kill();
        let _ = child.wait();

        let context = format!("round {round}, killed {delay:?} after start (seed {seed})");
        let (kernel_state, file_state) = after_kill(&sandbox, old, new, &content, &context);
        *seen.entry(format!("kernel {kernel_state}, file {file_state}")).or_insert(0) += 1;

        // The next run asks for something else: it completes whatever the
        // killed run had started, then adds its own port.
        let (next, took) = run(&json!({"ports": [OTHER]}));
        span = took;
        let started = kernel_state != "old";
        let base = if started { &new.value } else { &old.value };
        let expected = base.union(&PortSet::from(portmatrix_portset::PortRange::single(OTHER).unwrap()));
        settled(&expected, &format!("{context}, then a run adding {OTHER}"));
        let told = next.warnings().iter().any(|w| w.contains("was killed part way through writing"));
        assert_eq!(told, kernel_state == "on the way", "{context}: {:?}", next.warnings());

        // Back to exactly the new state for the next round.
        run(&json!({"ports": [OTHER], "state": "absent"}));
        run(&new.request);
        settled(&new.value, &format!("{context}, then back to the new state"));
    }
    eprintln!("after a kill, over {ROUNDS} rounds (seed {seed}): {seen:?}");
}

#[test]
fn a_kernel_write_cut_short_is_completed_by_the_next_run_whatever_it_asks() {
    let sandbox = Sandbox::new();
    let record =
        sandbox.lock_file(reserved_ports::LOCK_MODULE, reserved_ports::LOCK_OBJECT).replace(".lock", ".pending");
    let to = long(1025);
    let cases = [
        // Killed after the first page of a long value that replaced "1-3": the kernel holds part of it.
        ("1-3", "1025,1027,1029", true),
        // Killed while adding pages to 20001-21000: the old value and part of the additions.
        ("20001-21000", "1025,1027,20001-21000", true),
        // Killed before its first page: nothing to complete.
        ("1-3", "1-3", false),
        // Someone else wrote the reservation since: not a state on the way.
        ("1-3", "1-3,7000", false),
    ];
    for (from, kernel, completed) in cases {
        let from: PortSet = from.parse().unwrap();
        let written = reserved_ports::pending::Record { pid: 999_999_999, from: from.clone(), to: to.clone() };
        sandbox.sh(&format!("mkdir -p $(dirname {record})"));
        sandbox.write(&record, &written.render());
        sandbox.set_reserved(kernel);
        sandbox.write(FILE, &render(None, &from.to_string()));

        let run = sandbox.run_module("reserved_ports", &json!({"ports": [OTHER]}));
        run.assert_ok();
        let base: PortSet = if completed { to.clone() } else { kernel.parse().unwrap() };
        let expected = base.union(&format!("{OTHER}").parse().unwrap()).to_string();
        assert_eq!(sandbox.reserved(), expected, "{kernel}");
        assert!(sandbox.read(FILE).ends_with(&format!("= {expected}\n")), "{kernel}");
        let told = run.warnings().iter().any(|w| w.contains("(pid 999999999) was killed part way through writing"));
        assert_eq!(told, completed, "{kernel}: {:?}", run.warnings());
        assert_eq!(sandbox.read_optional(&record), None, "{kernel}: the record is gone");
    }
}

#[test]
fn leftovers_of_dead_runs_are_removed_and_a_live_runs_file_is_not() {
    let sandbox = Sandbox::new();
    sandbox.write(FILE, "net.ipv4.ip_local_reserved_ports = 8080\n");
    sandbox.set_reserved("8080");
    // No process has a pid this large; the sandbox's holder is alive.
    let dead = "/etc/sysctl.d/.90-reserved-ports.conf.portmatrix-999999999.tmp";
    let live = format!("/etc/sysctl.d/.90-reserved-ports.conf.portmatrix-{}.tmp", sandbox.pid());
    let other = "/etc/sysctl.d/.90-other.conf.portmatrix-999999999.tmp";
    sandbox.sh(&format!("head -c 3000000 /dev/zero > {dead}; echo partial > {live}; echo partial > {other}"));

    let check = sandbox.run_module("reserved_ports", &json!({"ports": [8080], "_ansible_check_mode": true}));
    check.assert_ok();
    assert_eq!(sandbox.sh(&format!("ls {dead}")), format!("{dead}\n"), "check mode removes nothing");

    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080]}));
    run.assert_ok();
    assert!(!run.changed(), "cleaning up is not a change of the reservation");
    assert_eq!(
        sandbox.sh("LC_ALL=C ls -A /etc/sysctl.d"),
        format!(
            ".90-other.conf.portmatrix-999999999.tmp\n.90-reserved-ports.conf.portmatrix-{}.tmp\n90-reserved-ports.conf\n",
            sandbox.pid()
        ),
        "the dead run's file went; the live run's and another file's stayed"
    );
}
