//! Throwaway systemd nodes in podman containers, and Ansible runs against them.
//!
//! A [`Node`] is a container of one of the images built by `images/build.sh`
//! (`localhost/portmatrix-node*:bookworm`), booted with `/sbin/init` so that
//! systemd runs as PID 1, with its own network namespace, writable
//! `/proc/sys`, and the capabilities the modules need (`NET_ADMIN`,
//! `SYS_ADMIN`), and no network but its own loopback (`--network none`: the
//! host's firewall and sysctls stay untouched; Ansible reaches the node with
//! `podman exec`). It is removed (forcibly) when the `Node` is dropped, also when
//! the test panics. Every node gets a unique name, so tests may run in
//! parallel.
//!
//! [`run_playbook`] runs the project's virtualenv `ansible-playbook` against
//! one node (or [`run_playbook_on`] against several), through the connection
//! `containers.podman.podman`, with the repo's `ansible.cfg` (so
//! `library = library` finds the built modules) and the JSON stdout callback,
//! so a test reads each task's result per host from [`PlaybookRun::json`] or
//! [`PlaybookRun::task_result`].
//!
//! # Environment
//! `scripts/setup.sh` builds the images and starts podman's Docker-compatible
//! API service; `scripts/env.sh` (and the Makefile) export what this module
//! needs in the test process:
//! - `DOCKER_HOST=unix:///run/podman/podman.sock`: testcontainers talks to it;
//! - `CONTAINERS_CONF=<repo>/images/containers.conf`: passed on to the podman
//!   CLI that the Ansible connection plugin calls (set here for the child too).
//!
//! `TESTCONTAINERS_COMMAND=keep` keeps the containers after the test, for
//! debugging; remove them with
//! `podman rm -f $(podman ps -aq --filter label=portmatrix.test)`.
//!
//! # Example
//! ```no_run
//! use portmatrix_tests::container::{run_playbook, Node, NodeImage};
//!
//! let node = Node::start(NodeImage::NoPython);
//! let out = node.exec(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"]);
//! assert_eq!(out.code, 0, "{out:?}");
//!
//! let run = run_playbook(
//!     &node,
//!     r#"
//! - hosts: all
//!   gather_facts: false
//!   tasks:
//!     - name: say hi
//!       ansible.builtin.raw: echo hi
//! "#,
//!     &["--diff"],
//! );
//! assert!(run.success(), "{}", run.diagnostics());
//! assert_eq!(run.task_result(&node, "say hi")["stdout"], "hi\n");
//! // node is removed here
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use testcontainers::core::{ExecCommand, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

/// How long [`Node::start`] waits for systemd to finish booting.
pub const BOOT_TIMEOUT: Duration = Duration::from_mins(1);
/// How long [`run_playbook`] lets `ansible-playbook` run before killing it.
pub const PLAYBOOK_TIMEOUT: Duration = Duration::from_mins(5);
/// Label put on every node container (value: the test process id), to find
/// strays: `podman ps -a --filter label=portmatrix.test`.
pub const LABEL: &str = "portmatrix.test";

/// The node images built by `images/build.sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeImage {
    /// `localhost/portmatrix-node:bookworm`: systemd, python3, nftables,
    /// iptables (nft backend), iproute2, procps.
    Python,
    /// `localhost/portmatrix-node-nopython:bookworm`: the same without Python.
    NoPython,
    /// `localhost/portmatrix-node-legacy:bookworm`: the Python image with
    /// iptables switched to iptables-legacy, and Debian's
    /// iptables-persistent (netfilter-persistent.service).
    Legacy,
    /// `localhost/portmatrix-node-firewalld:bookworm`: the Python image with
    /// firewalld, enabled as Debian installs it (nftables backend).
    Firewalld,
}

impl NodeImage {
    /// Image name without the tag.
    pub fn name(self) -> &'static str {
        match self {
            NodeImage::Python => "localhost/portmatrix-node",
            NodeImage::NoPython => "localhost/portmatrix-node-nopython",
            NodeImage::Legacy => "localhost/portmatrix-node-legacy",
            NodeImage::Firewalld => "localhost/portmatrix-node-firewalld",
        }
    }

    /// Image tag.
    pub fn tag(self) -> &'static str {
        "bookworm"
    }
}

/// What a command run in a node returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The command's exit code (126/127 when it could not be run).
    pub code: i64,
}

impl ExecOutput {
    /// Whether the command exited with 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// A running systemd container; removed when dropped.
pub struct Node {
    container: Container<GenericImage>,
    name: String,
    image: NodeImage,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The container handle itself has no useful Debug; its id stands for it.
        f.debug_struct("Node")
            .field("id", &self.id())
            .field("name", &self.name)
            .field("image", &self.image)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node of `image` and waits (at most [`BOOT_TIMEOUT`]) until
    /// `systemctl is-system-running` says `running` or `degraded`.
    ///
    /// The container runs `/sbin/init` with `NET_ADMIN` and `SYS_ADMIN` and
    /// `--security-opt unmask=/proc/sys` and `--network none` (its
    /// `/proc/sys/net` is its own network namespace's and writable; the host's
    /// is never touched).
    ///
    /// Panics with a clear message when the podman service or the image is
    /// missing (run `scripts/setup.sh`) or systemd does not come up.
    pub fn start(image: NodeImage) -> Node {
        check_environment();
        let name = unique_name();
        let request = GenericImage::new(image.name(), image.tag())
            // Readiness is checked below with systemctl, not with log lines.
            .with_wait_for(WaitFor::Nothing)
            .with_cmd(["/sbin/init"])
            .with_container_name(name.clone())
            .with_hostname(name.clone())
            .with_label(LABEL, std::process::id().to_string())
            .with_cap_add("NET_ADMIN")
            .with_cap_add("SYS_ADMIN")
            .with_security_opt("unmask=/proc/sys")
            // A network namespace with loopback only: podman's default bridge
            // would make netavark turn on the host's ip_forward and add NAT
            // rules to the host's firewall, and Ansible needs no network (the
            // connection is `podman exec`).
            .with_host_config_modifier(|host| host.network_mode = Some("none".to_owned()))
            .with_startup_timeout(BOOT_TIMEOUT);
        let container = request.start().unwrap_or_else(|e| {
            panic!(
                "cannot start a container of {}:{} ({e}); \
                 run scripts/setup.sh (it starts the podman service and builds the images)",
                image.name(),
                image.tag()
            )
        });
        let node = Node { container, name, image };
        node.wait_for_systemd();
        node
    }

    /// The container id (64 hex digits): an Ansible host for the connection
    /// `containers.podman.podman`, and an argument for `podman exec` etc.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The container's name (unique, `portmatrix-<pid>-<n>-<time>`); also its
    /// hostname.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The image this node runs.
    pub fn image(&self) -> NodeImage {
        self.image
    }

    /// Runs `argv` in the node (as root, no shell) and waits for it to end.
    ///
    /// Panics only when the command cannot be started through the API at all;
    /// a failing command is reported in [`ExecOutput::code`].
    pub fn exec(&self, argv: &[&str]) -> ExecOutput {
        assert!(!argv.is_empty(), "exec needs a command");
        let mut result = self
            .container
            .exec(ExecCommand::new(argv.iter().copied()))
            .unwrap_or_else(|e| panic!("exec {argv:?} in {}: {e}", self.name));
        // Reading both streams to their end means the command has ended.
        let stdout =
            result.stdout_to_vec().unwrap_or_else(|e| panic!("exec {argv:?} in {}: reading stdout: {e}", self.name));
        let stderr =
            result.stderr_to_vec().unwrap_or_else(|e| panic!("exec {argv:?} in {}: reading stderr: {e}", self.name));
        // The exit code can lag behind the end of the output for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            match result.exit_code() {
                Ok(Some(code)) => break code,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => panic!("exec {argv:?} in {}: no exit code after its output ended", self.name),
                Err(e) => panic!("exec {argv:?} in {}: exit code: {e}", self.name),
            }
        };
        ExecOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            code,
        }
    }

    /// Runs a shell script in the node with `/bin/sh -c`.
    pub fn sh(&self, script: &str) -> ExecOutput {
        self.exec(&["/bin/sh", "-c", script])
    }

    /// Like [`Node::exec`], but panics (with the output) unless it exits 0;
    /// returns stdout.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(out.success(), "{argv:?} failed in {}: {out:?}", self.name);
        out.stdout
    }

    /// Reboots the node: `podman restart` stops its systemd (SIGRTMIN+3, a
    /// clean shutdown) and starts it again, a real boot with the same
    /// filesystem and a fresh network namespace, `/run` and kernel firewall.
    /// Waits, as [`Node::start`] does, until systemd is up.
    pub fn reboot(&self) {
        let out = Command::new("podman")
            .args(["restart", "--time", "20", self.id()])
            .output()
            .unwrap_or_else(|e| panic!("podman restart {}: {e}", self.name));
        assert!(out.status.success(), "podman restart {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        self.wait_for_systemd();
    }

    /// Waits (at most `timeout`) until `script` exits 0 in the node; returns
    /// whether it did.
    pub fn wait_until(&self, script: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.sh(script).success() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_systemd(&self) {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut last;
        loop {
            // Prints initializing/starting while booting; exits non-zero for
            // anything but running, so the text is what counts.
            last = self.exec(&["systemctl", "is-system-running"]);
            let state = last.stdout.trim();
            if state == "running" || state == "degraded" {
                return;
            }
            if Instant::now() >= deadline {
                let failed = self.exec(&["systemctl", "--failed", "--no-legend", "--plain"]);
                panic!(
                    "systemd in {} did not reach running/degraded within {BOOT_TIMEOUT:?}: \
                     last state {state:?} (stderr {:?}); failed units:\n{}",
                    self.name,
                    last.stderr.trim(),
                    failed.stdout
                );
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

/// What an `ansible-playbook` run returned.
#[derive(Debug)]
pub struct PlaybookRun {
    /// The JSON document of the `ansible.posix.json` stdout callback (see
    /// [`PlaybookRun::json`]).
    pub stdout: String,
    /// Warnings, deprecations and errors outside the JSON document.
    pub stderr: String,
    pub status: ExitStatus,
    /// Whether the run was killed after [`PLAYBOOK_TIMEOUT`].
    pub timed_out: bool,
}

impl PlaybookRun {
    /// Whether ansible-playbook exited 0 (no failed or unreachable host).
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.success()
    }

    /// The whole result: `{"plays": [{"play": {...}, "tasks": [{"task":
    /// {"name": ...}, "hosts": {"<container id>": <module result>}}]}],
    /// "stats": {"<container id>": {"ok", "changed", "failures",
    /// "unreachable", "skipped", ...}}}`. Panics if stdout is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("ansible-playbook stdout is not JSON ({e}):\n{}", self.diagnostics()))
    }

    /// The result of the first task named `task` on `node` (module result
    /// keys: `changed`, `failed`, `msg`, the module's own return values, ...).
    /// Panics if there is no such task or it did not run on that node.
    pub fn task_result(&self, node: &Node, task: &str) -> Value {
        self.task_results(task)
            .remove(node.id())
            .unwrap_or_else(|| panic!("task {task:?} has no result for {}:\n{}", node.name(), self.diagnostics()))
    }

    /// The results of the first task named `task`, by host (container id).
    pub fn task_results(&self, task: &str) -> HashMap<String, Value> {
        let json = self.json();
        let found = json["plays"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|play| play["tasks"].as_array().into_iter().flatten())
            .find(|t| t["task"]["name"] == task);
        let Some(found) = found else {
            panic!("no task named {task:?} in the run:\n{}", self.diagnostics());
        };
        found["hosts"]
            .as_object()
            .map(|hosts| hosts.iter().map(|(h, r)| (h.clone(), r.clone())).collect())
            .unwrap_or_default()
    }

    /// The play recap counters of `node` (`ok`, `changed`, `failures`,
    /// `unreachable`, `skipped`, `rescued`, `ignored`).
    pub fn stats(&self, node: &Node) -> Value {
        self.json()["stats"][node.id()].clone()
    }

    /// Status, stdout and stderr, for assertion messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "ansible-playbook {} {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            if self.timed_out { "(killed: timed out)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `playbook_yaml` against `node`; see [`run_playbook_on`].
pub fn run_playbook(node: &Node, playbook_yaml: &str, extra_args: &[&str]) -> PlaybookRun {
    run_playbook_on(&[node], playbook_yaml, extra_args)
}

/// Runs `playbook_yaml` against `nodes` with the virtualenv's
/// `ansible-playbook` and returns when it ends (killed after
/// [`PLAYBOOK_TIMEOUT`]).
///
/// The inventory (written to a temporary directory with the playbook) has
/// one group, `nodes`, whose hosts are the container ids, with
/// `ansible_connection=containers.podman.podman`; write `hosts: all` or
/// `hosts: nodes`. On a [`NodeImage::NoPython`] node, use
/// `gather_facts: false` (fact gathering needs Python) and binary modules or
/// `raw`.
///
/// Environment of the run: `ANSIBLE_CONFIG` = the repo's `ansible.cfg`
/// (`library = library`), `ANSIBLE_STDOUT_CALLBACK=ansible.posix.json` (stdout is
/// one JSON document), `CONTAINERS_CONF` = `images/containers.conf`, the
/// virtualenv's `bin` first on `PATH`, no colour. `extra_args` go after the
/// playbook (e.g. `--check`, `--diff`, `-e`, `var=value`).
pub fn run_playbook_on(nodes: &[&Node], playbook_yaml: &str, extra_args: &[&str]) -> PlaybookRun {
    assert!(!nodes.is_empty(), "run_playbook_on needs at least one node");
    let root = crate::repo_root();
    let venv_bin = root.join(".venv/bin");
    let ansible_playbook = venv_bin.join("ansible-playbook");
    assert!(ansible_playbook.is_file(), "{} is missing: run scripts/setup.sh", ansible_playbook.display());

    let dir = tempfile::Builder::new()
        .prefix("portmatrix-playbook-")
        .tempdir()
        .expect("create a temporary directory for the playbook");
    let mut inventory = String::from("[nodes]\n");
    for node in nodes {
        inventory.push_str(node.id());
        inventory.push_str(" ansible_connection=containers.podman.podman\n");
    }
    let inventory_path = dir.path().join("inventory.ini");
    let playbook_path = dir.path().join("playbook.yml");
    std::fs::write(&inventory_path, inventory).expect("write inventory");
    std::fs::write(&playbook_path, playbook_yaml).expect("write playbook");

    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut paths = vec![venv_bin.clone()];
            paths.extend(std::env::split_paths(&p));
            std::env::join_paths(paths).expect("PATH")
        }
        None => venv_bin.clone().into_os_string(),
    };
    let mut command = Command::new(&ansible_playbook);
    command
        .arg("-i")
        .arg(&inventory_path)
        .arg(&playbook_path)
        .args(extra_args)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("CONTAINERS_CONF", root.join("images/containers.conf"));
    run_to_end(with_test_settings(&mut command, dir.path()))
}

/// Ansible's settings for a test run of `ansible-playbook`: the repo's
/// `ansible.cfg`, stdout as one JSON document (`ansible.posix.json`), no colour,
/// no retry files, and the controller's temp files in `dir`.
pub fn with_test_settings<'a>(command: &'a mut Command, dir: &Path) -> &'a mut Command {
    command
        .env("ANSIBLE_CONFIG", crate::repo_root().join("ansible.cfg"))
        .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("local-tmp"))
}

/// Runs an `ansible-playbook` command (stdin empty) to its end, killed after
/// [`PLAYBOOK_TIMEOUT`], and collects what it printed.
pub fn run_to_end(command: &mut Command) -> PlaybookRun {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));

    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + PLAYBOOK_TIMEOUT;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("wait for ansible-playbook") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait for killed ansible-playbook");
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
    };
    PlaybookRun {
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        status,
        timed_out,
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn unique_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("portmatrix-{}-{}-{:08x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed), nanos)
}

/// Fails early, with the fix, when the test process cannot reach podman.
fn check_environment() {
    match std::env::var("DOCKER_HOST") {
        Ok(host) => {
            if let Some(sock) = host.strip_prefix("unix://") {
                assert!(
                    Path::new(sock).exists(),
                    "DOCKER_HOST={host} but {sock} does not exist: run scripts/setup.sh \
                     (it starts `podman system service`)"
                );
            }
        }
        Err(std::env::VarError::NotPresent | std::env::VarError::NotUnicode(_)) => panic!(
            "DOCKER_HOST is not set: container tests talk to podman's API socket; \
             `source scripts/env.sh` (or run them through make) after scripts/setup.sh"
        ),
    }
}
