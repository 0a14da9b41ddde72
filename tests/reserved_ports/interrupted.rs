//! A run killed at any moment leaves the old state or the new one (kernel
//! and file each), never something less safe; the next run completes it and
//! removes what the killed run left behind, and never a live run's file.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portmatrix_portset::PortSet;
use portmatrix_tests::sandbox::Sandbox;
use reserved_ports::conffile::render;
use serde_json::{Value, json};

const FILE: &str = "/etc/sysctl.d/90-reserved-ports.conf";
const ROUNDS: usize = 50;

/// A few ranges: a short value, written in one call.
const SHORT: &str = "20001-21000,25000-26000,30000-32000";

/// The short value plus every other port below it: about 9,500 entries
/// (52 KB), so that the kernel value is written in many calls (the added
/// ports sort first: a first call that replaced the value would drop the
/// short ranges for a moment) and the file takes a while to write.
fn long() -> PortSet {
    let extra: Vec<String> = (1025..20_000).step_by(2).map(|p: u16| p.to_string()).collect();
    format!("{},{SHORT}", extra.join(",")).parse().unwrap()
}

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

/// The two states the rounds move between, and the request for each: the
/// long one is reached by adding (present), the short one by replacing
/// (exclusive), so every round either only adds or ends in a value short
/// enough for one write call (see the README on the one window left).
struct State {
    value: PortSet,
    request: Value,
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
    let long = long();
    let extra: Vec<String> =
        long.difference(&SHORT.parse().unwrap()).ranges().iter().map(ToString::to_string).collect();
    let states = [
        State { value: SHORT.parse().unwrap(), request: json!({"ports": SHORT, "exclusive": true}) },
        State { value: long.clone(), request: json!({"ports": extra}) },
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
    // Returns how long the whole run took (nsenter and all): the next kill
    // comes at a moment within that span, so that it lands inside a run.
    let complete = |state: &State, context: &str| {
        let start = Instant::now();
        let run = sandbox.run_module("reserved_ports", &state.request);
        let took = start.elapsed();
        run.assert_ok();
        assert_eq!(sandbox.reserved(), state.value.to_string(), "{context}: completed in the kernel");
        assert!(sandbox.read(FILE) == content(&state.value), "{context}: completed in the file");
        assert_eq!(sandbox.sh("ls -A /etc/sysctl.d"), "90-reserved-ports.conf\n", "{context}: nothing left behind");
        took
    };
    let mut span = complete(&states[0], "before the first round");

    let seed = u64::from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos()) | 1;
    let mut delays = Delays(seed);
    let mut seen = std::collections::BTreeMap::new();
    for round in 0..ROUNDS {
        // Round 0 goes from the short value to the long one, round 1 back.
        let (old, new) = (&states[round % 2], &states[(round + 1) % 2]);
        let delay = delays.next(span);
        let mut child = sandbox
            .command(portmatrix_tests::module_binary("reserved_ports"))
            .arg(&args[(round + 1) % 2])
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
        let kernel: PortSet = sandbox.reserved().parse().unwrap();
        let (small, big) = if old.value.is_subset(&new.value) { (old, new) } else { (new, old) };
        assert!(
            small.value.is_subset(&kernel) && kernel.is_subset(&big.value),
            "{context}: the kernel holds {kernel}, not between the old and the new value"
        );
        let in_between = kernel != old.value && kernel != new.value;
        assert!(
            !in_between || new.value == big.value,
            "{context}: only adding passes through values in between; replacing by a short value is one write"
        );
        let file = sandbox.read(FILE);
        let file_state = [old, new].iter().position(|s| content(&s.value) == file);
        assert!(file_state.is_some(), "{context}: the file holds neither the old nor the new content");
        for entry in sandbox.sh("ls -A /etc/sysctl.d").lines() {
            let temp = entry.strip_prefix(".90-reserved-ports.conf.portmatrix-").is_some_and(|pid| {
                pid.strip_suffix(".tmp").is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            });
            assert!(entry == "90-reserved-ports.conf" || temp, "{context}: unexpected {entry}");
        }
        let kernel_label = if kernel == new.value {
            "new"
        } else if kernel == old.value {
            "old"
        } else {
            "between"
        };
        let file_label = if file_state == Some(1) { "new" } else { "old" };
        assert!(
            !(file_label == "new" && kernel_label != "new"),
            "{context}: the file is never ahead of the kernel (the kernel is written first)"
        );
        *seen.entry(format!("kernel {kernel_label}, file {file_label}")).or_insert(0) += 1;
        span = complete(new, &context);
    }
    eprintln!("after a kill, over {ROUNDS} rounds (seed {seed}): {seen:?}");
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
