//! A private network namespace plus a private mount namespace, for tests
//! that change kernel settings: the namespace gets its own
//! `ip_local_reserved_ports` (empty at birth), and systemd-sysctl's
//! directories are covered with empty tmpfs mounts, so nothing on the
//! machine itself is read or changed; so is `/run/portmatrix`, where the
//! modules keep their lock files. Gone when the value is dropped.

use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

use crate::module::{ModuleRun, run_with_args_text};

/// Directories the modules read or write, hidden behind tmpfs inside:
/// systemd-sysctl's directories, as `reserved_ports` reads them, the modules'
/// runtime directory, and where `open_ports` persists its rules (its state
/// directory, the unit directory) and asks whether systemd runs (so that a
/// sandbox on a machine booted with systemd never reaches the machine's).
const COVERED_DIRS: [&[&str]; 3] = [
    reserved_ports::sysctl_d::SYSCTL_DIRS,
    &[RUN_DIR],
    &[open_ports::persist::STATE_DIR, open_ports::persist::unit::UNIT_DIR, "/run/systemd"],
];

/// The modules' own runtime directory (lock files), covered like the others.
pub const RUN_DIR: &str = "/run/portmatrix";

pub const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";
pub const PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

pub struct Sandbox {
    holder: Child,
}

impl Sandbox {
    /// A fresh namespace pair. Needs root, as the whole kernel test suite does.
    pub fn new() -> Sandbox {
        // The holder process keeps the namespaces alive; every step enters
        // them with nsenter. It ends by itself after an hour at the latest.
        let holder = Command::new("unshare")
            .args(["--net", "--mount", "--propagation", "private", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) runs; kernel tests need root");
        let sandbox = Sandbox { holder };
        sandbox.wait_until_entered();
        // A new namespace starts with loopback down; every real host has it up.
        let setup: String = ["ip link set lo up\n".to_string(), format!("mkdir -p {RUN_DIR}\n")]
            .into_iter()
            .chain(
                COVERED_DIRS
                    .iter()
                    .flat_map(|dirs| dirs.iter())
                    // Root's 0755, as on a real host (tmpfs would make them 1777).
                    .map(|d| {
                        format!(
                            "if [ -d {d} ] && [ ! -L {d} ]; then mount -t tmpfs -o mode=0755 portmatrix-test {d}; fi\n"
                        )
                    }),
            )
            .collect();
        sandbox.sh(&setup);
        sandbox
    }

    /// unshare has forked and exec'd sleep once its net namespace differs.
    fn wait_until_entered(&self) {
        let ours = std::fs::read_link("/proc/self/ns/net").ok();
        for _ in 0..200 {
            let theirs = std::fs::read_link(format!("/proc/{}/ns/net", self.holder.id())).ok();
            if theirs.is_some() && theirs != ours {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the sandbox's namespace did not appear");
    }

    /// A process inside the namespaces (for `ip link set ... netns PID`).
    pub fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// The lock file that `module` takes for `object` inside the sandbox:
    /// named after the sandbox's network namespace, as
    /// `portmatrix_host::lock::ObjectLock` names it.
    pub fn lock_file(&self, module: &str, object: &str) -> String {
        let link = std::fs::read_link(format!("/proc/{}/ns/net", self.holder.id())).expect("the sandbox's netns");
        let inode: String = link.to_string_lossy().chars().filter(char::is_ascii_digit).collect();
        format!("{RUN_DIR}/lock/{module}.netns-{inode}.{object}.lock")
    }

    /// Holds the lock `module` takes for `object`, as another run would, with
    /// `note` in the lock file where a run writes its pid and what it does;
    /// until [`LockHolder::release`] or drop.
    pub fn hold_lock(&self, module: &str, object: &str, note: &str) -> LockHolder {
        let lock = self.lock_file(module, object);
        // flock(1) holds the lock until its stdin closes.
        let mut child = self
            .command("sh")
            .args([
                "-c",
                &format!(
                    "mkdir -p \"$(dirname {lock})\" && exec flock --close {lock} \
                     sh -c 'echo \"{note}\" > {lock}; echo held; read line'"
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock (util-linux) runs");
        let mut ready = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut ready).unwrap();
        assert_eq!(ready, "held\n", "the lock is held");
        LockHolder { child, path: lock }
    }

    /// A command that runs inside the namespaces.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        // By its path: a test may give the command an empty or odd PATH.
        let mut command = Command::new("/usr/bin/nsenter");
        command.arg("--target").arg(self.holder.id().to_string()).args(["--net", "--mount", "--"]).arg(program);
        command
    }

    /// Runs a shell script inside; panics with its output if it fails.
    pub fn sh(&self, script: &str) -> String {
        let out = self.sh_output(script);
        assert!(out.status.success(), "script failed: {script}\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn sh_output(&self, script: &str) -> Output {
        self.command("sh").args(["-c", script]).output().expect("nsenter runs")
    }

    /// Runs a module binary from library/ inside with these arguments.
    pub fn run_module(&self, module: &str, args: &Value) -> ModuleRun {
        self.run_module_text(module, &args.to_string())
    }

    pub fn run_module_text(&self, module: &str, args_text: &str) -> ModuleRun {
        run_with_args_text(self.command(crate::module_binary(module)), args_text)
    }

    pub fn read(&self, path: &str) -> String {
        self.sh(&format!("cat {path}"))
    }

    /// A file's content, or None when it does not exist.
    pub fn read_optional(&self, path: &str) -> Option<String> {
        let out = self.sh_output(&format!("cat {path}"));
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn write(&self, path: &str, content: &str) {
        use std::io::Write;
        let mut child = self
            .command("sh")
            .args(["-c", &format!("mkdir -p \"$(dirname {path})\" && cat > {path}")])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nsenter runs");
        child.stdin.take().unwrap().write_all(content.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "writing {path} inside the sandbox");
    }

    /// The namespace's reservation, as the kernel prints it (no newline).
    pub fn reserved(&self) -> String {
        self.read(RESERVED).trim_end_matches('\n').to_string()
    }

    pub fn set_reserved(&self, value: &str) {
        self.sh(&format!("echo '{value}' > {RESERVED}"));
    }
}

/// A lock held by a test as another run would hold it.
pub struct LockHolder {
    child: Child,
    /// The lock file, as the sandbox sees it.
    pub path: String,
}

impl LockHolder {
    /// Lets the lock go and waits until it is free.
    pub fn release(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        use std::io::Write;
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
