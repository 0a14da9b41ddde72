//! Real sockets held by real processes in cgroups named like systemd units,
//! for the `unit_bindings` tests.
//!
//! A [`UnitCgroup`] is a cgroup named like a unit (`dcos-marathon.service`)
//! under a slice of the test's own (`portmatrix_test_<pid>_<n>.slice`), in the
//! cgroup v2 hierarchy (`/sys/fs/cgroup/unified` on these hybrid hosts,
//! `/sys/fs/cgroup` on a pure v2 host: the `0::` line of /proc/PID/cgroup) or
//! in the v1 `name=systemd` hierarchy (`/sys/fs/cgroup/systemd`, as on
//! `CentOS` 7). A [`Listener`] is a `python3` process started inside a
//! [`Sandbox`] (so its sockets are in the sandbox's network namespace), moved
//! into such a cgroup, holding the sockets it was asked for.
//!
//! Cleanup: a listener is killed and reaped when dropped (and ends by itself
//! when the test process goes away: it waits for EOF on its stdin); a cgroup
//! kills whatever is still in it and removes itself and its parent when
//! dropped. Declare cgroups before the listeners in them, so that the
//! listeners are dropped first.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::sandbox::Sandbox;

/// Which line of /proc/PID/cgroup the unit shows up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// The cgroup v2 (`0::`) line.
    V2,
    /// The cgroup v1 `name=systemd` line.
    V1Systemd,
}

impl Hierarchy {
    fn mount_point(self) -> PathBuf {
        let candidates: &[&str] = match self {
            Hierarchy::V2 => &["/sys/fs/cgroup/unified", "/sys/fs/cgroup"],
            Hierarchy::V1Systemd => &["/sys/fs/cgroup/systemd"],
        };
        candidates
            .iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists())
            .unwrap_or_else(|| panic!("no {self:?} cgroup hierarchy mounted (tried {candidates:?})"))
    }
}

/// A cgroup named like a unit, removed (with anything left in it) on drop.
pub struct UnitCgroup {
    parent: PathBuf,
    dir: PathBuf,
    pub unit: String,
}

impl UnitCgroup {
    pub fn new(hierarchy: Hierarchy, unit: &str) -> UnitCgroup {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let parent = hierarchy.mount_point().join(format!(
            // A slice, as systemd puts every unit in one: the unit is the
            // first one past the slices.
            "portmatrix_test_{}_{}.slice",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let dir = parent.join(unit);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create cgroup {}: {e} (needs root)", dir.display()));
        UnitCgroup { parent, dir, unit: unit.to_string() }
    }

    /// Moves a process (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move {pid} into {}: {e}", self.dir.display()));
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn pids(&self) -> Vec<i32> {
        let text = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }
}

impl Drop for UnitCgroup {
    fn drop(&mut self) {
        // Only the test's own processes were put here.
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The unit's directory and every one between it and the parent (a
        // unit may be nested: user@1000.service/app.slice/x.service).
        let mut dir = self.dir.as_path();
        while dir.starts_with(&self.parent) {
            let _ = std::fs::remove_dir(dir);
            match dir.parent() {
                Some(up) => dir = up,
                None => break,
            }
        }
    }
}

/// The listener program. Arguments are socket specs:
/// - `tcp:ADDR:PORT` / `udp:ADDR:PORT` (ADDR may be `[::]`; an IPv6 socket is
///   dual-stack, as by default on Linux), `tcp6only:[::]:PORT` (`IPV6_V6ONLY`);
/// - `out:LPORT:SPORT`: a connection from 127.0.0.1:LPORT to a listener of
///   its own on 127.0.0.1:SPORT, kept open (ESTABLISHED);
/// - `timewait:LPORT:SPORT`: the same, closed by this side first, so the
///   local end is left in `TIME_WAIT`;
/// - `comm:HEX`: the process names itself with those bytes (its comm,
///   written to `/proc/self/comm`: up to 15 bytes of anything);
/// - anything without a `:` only stands in its command line (a stand-in
///   forwarder's `-container-ip 172.17.0.2`).
///
/// It waits for a line on stdin (sent once it is in its cgroup: the kernel
/// records the cgroup a socket is made in), sleeps `delay` seconds, prints
/// `ready` once every socket is in place and then waits for EOF on stdin.
const LISTENER: &str = r#"
import socket, sys, time
sys.stdin.readline()
delay = float(sys.argv[1])
time.sleep(delay)
keep, servers = [], {}
def server(port):
    if port not in servers:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port)); s.listen(16); servers[port] = s; keep.append(s)
    return servers[port]
for spec in sys.argv[2:]:
    if ":" not in spec:
        continue
    kind, rest = spec.split(":", 1)
    if kind == "comm":
        with open("/proc/self/comm", "wb") as comm:
            comm.write(bytes.fromhex(rest))
        continue
    if kind in ("out", "timewait"):
        lport, sport = (int(x) for x in rest.split(":"))
        srv = server(sport)
        c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind(("127.0.0.1", lport)); c.connect(("127.0.0.1", sport))
        a, _ = srv.accept()
        if kind == "out":
            keep += [c, a]
        else:
            c.close(); a.recv(1); a.close()
        continue
    addr, port = rest.rsplit(":", 1)
    v6 = addr.startswith("[")
    addr = addr.strip("[]")
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, stype)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if kind == "tcp6only" else 0)
    s.bind((addr, int(port)))
    if stype == socket.SOCK_STREAM:
        s.listen(16)
    keep.append(s)
print("ready", flush=True)
sys.stdin.read()
"#;

/// A python3 process in a sandbox holding sockets; killed on drop.
pub struct Listener {
    child: Child,
    pub pid: u32,
}

impl Listener {
    /// Starts a listener in `sandbox`, moves it into `cgroup` (if any) and
    /// waits until its sockets are in place.
    pub fn start(sandbox: &Sandbox, cgroup: Option<&UnitCgroup>, specs: &[&str]) -> Listener {
        let mut listener = Listener::start_after(sandbox, cgroup, 0.0, specs);
        listener.wait_ready();
        listener
    }

    /// Starts a listener that opens its sockets `delay` seconds from now;
    /// returns at once (the process is already in `cgroup`).
    pub fn start_after(sandbox: &Sandbox, cgroup: Option<&UnitCgroup>, delay: f64, specs: &[&str]) -> Listener {
        // nsenter enters the namespaces and execs python3: the same pid.
        let child = sandbox
            .command("python3")
            .args(["-c", LISTENER, &delay.to_string()])
            .args(specs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let pid = child.id();
        let mut listener = Listener { child, pid };
        if let Some(cgroup) = cgroup {
            cgroup.add(pid);
        }
        // Now in its cgroup: it may make its sockets.
        let stdin = listener.child.stdin.as_mut().expect("listener stdin");
        stdin.write_all(b"go\n").and_then(|()| stdin.flush()).expect("start the listener");
        listener
    }

    /// Blocks until the listener printed `ready` (panics if it died).
    pub fn wait_ready(&mut self) {
        let stdout = self.child.stdout.take().expect("listener stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read listener output");
        assert_eq!(line.trim(), "ready", "the listener (pid {}) failed to open its sockets", self.pid);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
