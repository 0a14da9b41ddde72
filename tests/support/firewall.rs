//! For the `open_ports` tests: the three firewall variants (each selected
//! through the module's PATH, never through the machine's alternatives),
//! several "hosts" wired together with veth pairs, and small bounded TCP/UDP
//! echo servers and clients to send real traffic between them.
//!
//! A [`Network`] is a server [`Sandbox`] plus client sandboxes, each client
//! joined to the server by its own veth pair: link `i` has the server at
//! `198.18.{i+1}.1/24` and the client at `198.18.{i+1}.2/24` (the benchmarking
//! range; nothing else is ever addressed). Loopback is up everywhere. All of
//! it goes away with the sandboxes' holder processes when dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use serde_json::Value;

use crate::module::{ModuleRun, run_with_args_text};
use crate::sandbox::Sandbox;

/// Which firewall the module drives, and with which tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Nftables,
    IptablesNft,
    IptablesLegacy,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Nftables, Variant::IptablesNft, Variant::IptablesLegacy];

    /// The module's `backend` option.
    pub fn backend(self) -> &'static str {
        match self {
            Variant::Nftables => "nftables",
            _ => "iptables",
        }
    }

    /// What the module returns as `backend`.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Nftables => "nftables",
            Variant::IptablesNft => "iptables-nft",
            Variant::IptablesLegacy => "iptables-legacy",
        }
    }

    /// The iptables of this variant, by its explicit name (`iptables-legacy`).
    pub fn iptables(self, family6: bool) -> String {
        let suffix = if self == Variant::IptablesLegacy { "legacy" } else { "nft" };
        format!("/usr/sbin/ip{}tables-{suffix}", if family6 { "6" } else { "" })
    }

    pub fn is_iptables(self) -> bool {
        self != Variant::Nftables
    }
}

/// A directory to put first on the module's PATH: `iptables`, `iptables-save`,
/// `iptables-restore` and the ip6tables ones link to the variant's tools (as
/// the alternatives system would on such a host), plus `nft`. The rest of
/// PATH is /usr/bin:/bin, where Debian has no firewall tools.
pub struct ToolDir {
    dir: tempfile::TempDir,
}

impl ToolDir {
    pub fn new(variant: Variant) -> ToolDir {
        let dir = tempfile::Builder::new().prefix("portmatrix-tools-").tempdir().expect("temp dir");
        let suffix = if variant == Variant::IptablesLegacy { "legacy" } else { "nft" };
        for family in ["iptables", "ip6tables"] {
            for tool in ["", "-save", "-restore"] {
                let target = format!("/usr/sbin/{family}-{suffix}{tool}");
                std::os::unix::fs::symlink(target, dir.path().join(format!("{family}{tool}"))).unwrap();
            }
        }
        std::os::unix::fs::symlink("/usr/sbin/nft", dir.path().join("nft")).unwrap();
        ToolDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The PATH value for the module.
    pub fn path_var(&self) -> String {
        format!("{}:/usr/bin:/bin", self.dir.path().display())
    }

    /// Adds both variants' tools by their explicit names (`iptables-legacy-save`,
    /// `ip6tables-nft-restore`, ...), as Debian installs them beside the plain
    /// names the alternatives system points at one variant.
    pub fn with_explicit_variants(self) -> ToolDir {
        for family in ["iptables", "ip6tables"] {
            for suffix in ["legacy", "nft"] {
                for tool in ["", "-save", "-restore"] {
                    let name = format!("{family}-{suffix}{tool}");
                    std::os::unix::fs::symlink(format!("/usr/sbin/{name}"), self.dir.path().join(&name)).unwrap();
                }
            }
        }
        self
    }

    /// Takes a tool away (the module then finds none).
    pub fn remove(&self, tool: &str) {
        std::fs::remove_file(self.dir.path().join(tool)).unwrap();
    }

    /// Replaces a tool with a FAKE that reads its input and rejects it, as
    /// the real one does for a ruleset the kernel refuses.
    pub fn reject(&self, tool: &str) {
        self.fake(tool, &format!("cat >/dev/null\necho '{tool}: line 2 failed (fake)' >&2\nexit 1\n"));
    }

    /// Replaces a tool with a FAKE shell script `body` (`$REAL` is the real
    /// tool the directory linked to, so a fake can pass some calls through).
    pub fn fake(&self, tool: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(tool);
        let real = std::fs::read_link(&path).unwrap_or_else(|_| path.clone());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\nREAL={}\n{body}", real.display())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A FAKE `nft` that rejects every ruleset it is given to apply (`-f`)
    /// and runs the real nft for everything else, listings and `-c` checks.
    pub fn nft_rejecting_apply(&self) {
        self.fake(
            "nft",
            "case \" $* \" in *' -c '*) exec \"$REAL\" \"$@\";; *' -f '*) cat >/dev/null; \
             echo 'nft: Error: Could not process rule (fake)' >&2; exit 1;; esac\nexec \"$REAL\" \"$@\"\n",
        );
    }
}

/// The module's hook rule as iptables-save prints it, for `name` in `chain`.
pub fn iptables_hook(chain: &str, name: &str) -> String {
    format!("-A {chain} -m comment --comment \"portmatrix open_ports {name}\" -j {name}")
}

/// The first rule of the module's chain, which carries its marker.
pub fn iptables_first_rule(name: &str) -> String {
    format!(
        "-A {name} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portmatrix open_ports {name}\" -j ACCEPT"
    )
}

/// Runs the `open_ports` binary in `sandbox` with this PATH and, when given,
/// this `SSH_CONNECTION` (and no other `SSH_CONNECTION` from the test's own
/// environment). A sandbox has no systemd, so `persist` is false unless the
/// arguments say otherwise (persistence is tested under real systemd, in
/// `tests/open_ports/persist.rs`).
pub fn run_open_ports(sandbox: &Sandbox, path: &str, ssh: Option<&str>, args: &Value) -> ModuleRun {
    let mut command = sandbox.command(crate::module_binary("open_ports"));
    command.env("PATH", path).env_remove("SSH_CONNECTION");
    if let Some(ssh) = ssh {
        command.env("SSH_CONNECTION", ssh);
    }
    let mut args = args.clone();
    if let Some(options) = args.as_object_mut() {
        options.entry("persist").or_insert(Value::Bool(false));
    }
    run_with_args_text(command, &args.to_string())
}

/// `iptables-save`/`ip6tables-save` of the variant without comment lines
/// and counters, for byte-for-byte comparisons.
pub fn iptables_save(sandbox: &Sandbox, variant: Variant, family6: bool) -> String {
    let save = format!("{}-save", variant.iptables(family6));
    sandbox.sh(&format!("{save} | grep -v '^#' | sed -E 's/\\[[0-9]+:[0-9]+\\]/[counters]/'"))
}

/// Lines of a save or listing that do not mention `name`.
pub fn without(text: &str, name: &str) -> String {
    text.lines().filter(|l| !l.contains(name)).flat_map(|l| [l, "\n"]).collect()
}

/// A server sandbox joined to client sandboxes by veth pairs.
pub struct Network {
    pub server: Sandbox,
    pub clients: Vec<Sandbox>,
}

impl Network {
    pub fn new(clients: usize) -> Network {
        let server = Sandbox::new();
        let clients: Vec<Sandbox> = (0..clients).map(|_| Sandbox::new()).collect();
        for (i, client) in clients.iter().enumerate() {
            let net = i + 1;
            server.sh(&format!(
                "ip link add s{i} type veth peer name c{i} netns {pid} && ip addr add 198.18.{net}.1/24 dev s{i} \
                 && ip link set s{i} up",
                pid = client.pid()
            ));
            client.sh(&format!("ip addr add 198.18.{net}.2/24 dev c{i} && ip link set c{i} up"));
        }
        Network { server, clients }
    }

    pub fn server_addr(&self, client: usize) -> String {
        format!("198.18.{}.1", client + 1)
    }

    pub fn client_addr(&self, client: usize) -> String {
        format!("198.18.{}.2", client + 1)
    }
}

const SERVER: &str = r"
import socket, sys, threading
def echo(c):
    c.settimeout(20)
    try:
        while True:
            d = c.recv(1024)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()
def tcp(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def udp(s):
    while True:
        d, a = s.recvfrom(1024)
        s.sendto(d, a)
for spec in sys.argv[1:]:
    proto, port = spec.split('/')[1], int(spec.split('/')[0])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
    if proto == 'tcp':
        s.listen(16)
    threading.Thread(target=tcp if proto == 'tcp' else udp, args=(s,), daemon=True).start()
print('ready', flush=True)
sys.stdin.read()
";

/// Echo servers on `0.0.0.0` for `["8080/tcp", "5353/udp"]`, in `sandbox`;
/// they end when dropped (or when the test process goes: EOF on stdin).
pub struct EchoServer {
    child: Child,
}

impl EchoServer {
    pub fn start(sandbox: &Sandbox, specs: &[&str]) -> EchoServer {
        let mut child = sandbox
            .command("/usr/bin/python3")
            .args(["-c", SERVER])
            .args(specs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "echo server did not start");
        EchoServer { child }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PROBE: &str = r"
import socket, sys
addr, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    if proto == 'tcp':
        s = socket.create_connection((addr, port), timeout=1)
        s.sendall(b'ping')
        ok = s.recv(4) == b'ping'
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1)
        s.sendto(b'ping', (addr, port))
        ok = s.recv(4) == b'ping'
except OSError:
    ok = False
print('open' if ok else 'closed')
";

/// Whether `addr:port/proto` answers from inside `sandbox` (one attempt,
/// at most about one second).
pub fn reachable(sandbox: &Sandbox, addr: &str, port: u16, proto: &str) -> bool {
    let out = sandbox
        .command("/usr/bin/python3")
        .args(["-c", PROBE, addr, &port.to_string(), proto])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.trim() == "open" || text.trim() == "closed", "probe: {text} {}", String::from_utf8_lossy(&out.stderr));
    text.trim() == "open"
}

const HOLD: &str = r"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
for line in sys.stdin:
    try:
        s.sendall(line.strip().encode())
        print(s.recv(64).decode(), flush=True)
    except OSError as e:
        print('error', e, flush=True)
";

/// One TCP connection kept open from a client: each [`HeldConnection::echo`]
/// sends a word over it and returns what came back.
pub struct HeldConnection {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl HeldConnection {
    pub fn open(sandbox: &Sandbox, addr: &str, port: u16) -> HeldConnection {
        let mut child: Child = sandbox
            .command("/usr/bin/python3")
            .args(["-c", HOLD, addr, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        HeldConnection { child, stdin, stdout }
    }

    pub fn echo(&mut self, word: &str) -> String {
        writeln!(self.stdin, "{word}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
