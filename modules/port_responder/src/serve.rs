//! The detached responder: `port_responder --serve`, started by the module
//! with its [`Config`] on stdin. It leaves the module's session (setsid),
//! binds every socket, writes its state file, says `ready` on stdout and
//! lets go of the module's pipes; then it answers until its time is up and
//! removes its state file. A bind that fails ends it before anything is
//! written (`error ...` on stdout), so a refused start leaves nothing.
//!
//! Not Ansible's `async`: that needs Python on the host; this needs nothing.

use std::io::{self, BufRead as _, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use port_probe::wire;
use rustix::event::{PollFd, PollFlags};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::options::{Endpoint, Proto};
use crate::state::{self, Running};

/// What the module hands the responder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub state_path: PathBuf,
    pub node: String,
    pub endpoints: Vec<Endpoint>,
    pub address: Option<IpAddr>,
    /// Seconds since the epoch at which it ends.
    pub until: u64,
}

/// One held socket and the port it answers for.
enum Held {
    Tcp(TcpListener, u16),
    Udp(UdpSocket, u16),
}

impl Held {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Held::Tcp(l, _) => l.as_fd(),
            Held::Udp(s, _) => s.as_fd(),
        }
    }
}

/// The responder's whole life; its exit status.
pub fn main() -> i32 {
    // Out of the module's session and process group: Ansible's connection
    // ending (SIGHUP to the session) does not end the responder.
    let _ = rustix::process::setsid();
    let mut input = Vec::new();
    if io::stdin().take(4 << 20).read_to_end(&mut input).is_err() {
        return say("error cannot read the configuration");
    }
    let config: Config = match serde_json::from_slice(&input) {
        Ok(c) => c,
        Err(e) => return say(&format!("error bad configuration: {e}")),
    };
    raise_open_files_limit();
    let held = match bind_all(&config) {
        Ok(held) => held,
        Err(message) => return say(&format!("error {message}")),
    };
    let pid = std::process::id();
    let Some(start_time) = state::start_time(pid) else { return say("error cannot read /proc/self/stat") };
    let running = Running {
        pid,
        start_time,
        node: config.node.clone(),
        endpoints: config.endpoints.clone(),
        address: config.address,
        until: config.until,
    };
    if let Err(e) = write_state(&config, &running) {
        return say(&format!("error {}", portmatrix_ansible::error_chain(&e)));
    }
    say("ready");
    // Let go of the module's pipes, so that it (and Ansible) sees EOF.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdin(&null);
        let _ = rustix::stdio::dup2_stdout(&null);
        let _ = rustix::stdio::dup2_stderr(&null);
    }
    let deadline = Instant::now() + Duration::from_secs(config.until.saturating_sub(state::unix_now()));
    answer_until(&held, &config.node, deadline);
    // Ours still? A newer responder of the same name may have replaced it.
    if state::read(&config.state_path).ok().flatten().is_some_and(|r| r.pid == pid && r.start_time == start_time) {
        let _ = state::remove(&config.state_path);
    }
    0
}

/// One line to the module; the exit status that goes with it.
fn say(line: &str) -> i32 {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    i32::from(line != "ready")
}

/// Reads the module's one line from a started responder: `Ok(())` for
/// `ready`, the message of an `error` line, or what went wrong.
pub fn read_ready(stdout: impl io::Read) -> Result<(), String> {
    let mut line = String::new();
    match io::BufReader::new(stdout.take(64 << 10)).read_line(&mut line) {
        Ok(_) if line.trim_end() == "ready" => Ok(()),
        Ok(_) => match line.trim_end().strip_prefix("error ") {
            Some(message) => Err(message.to_string()),
            None => Err(format!("the responder ended without saying it was ready: {:?}", line.trim_end())),
        },
        Err(e) => Err(format!("cannot read from the responder: {e}")),
    }
}

/// Each socket is one open file; the default soft limit (1024) is far
/// below what a responder may hold, the hard one rarely is.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

fn bind_all(config: &Config) -> Result<Vec<Held>, String> {
    let addresses: Vec<IpAddr> = if let Some(address) = config.address {
        vec![address]
    } else {
        let mut both = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        // A host without IPv6 (ipv6.disable=1) cannot make the socket.
        if Socket::new(Domain::IPV6, Type::DGRAM, None).is_ok() {
            both.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        both
    };
    let mut held = Vec::with_capacity(config.endpoints.len() * addresses.len());
    for endpoint in &config.endpoints {
        for &ip in &addresses {
            let addr = SocketAddr::new(ip, endpoint.port);
            held.push(bind(addr, endpoint.proto).map_err(|e| format!("cannot hold {addr}/{}: {e}", endpoint.proto))?);
        }
    }
    Ok(held)
}

fn bind(addr: SocketAddr, proto: Proto) -> io::Result<Held> {
    let domain = Domain::for_address(addr);
    let (kind, protocol) = match proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
    };
    let socket = Socket::new(domain, kind, Some(protocol))?;
    if addr.is_ipv6() {
        // Its own IPv6 socket beside the IPv4 one, whatever bindv6only says.
        socket.set_only_v6(true)?;
    }
    if proto == Proto::Tcp {
        // A port held again soon after a previous responder: its
        // connections in TIME_WAIT must not stop the bind.
        socket.set_reuse_address(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    Ok(match proto {
        Proto::Tcp => {
            socket.listen(128)?;
            Held::Tcp(socket.into(), addr.port())
        }
        Proto::Udp => Held::Udp(socket.into(), addr.port()),
    })
}

fn write_state(config: &Config, running: &Running) -> Result<(), portmatrix_host::atomic::WriteError> {
    if let Some(dir) = config.state_path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir);
    }
    let json = serde_json::to_vec_pretty(running).unwrap_or_default();
    portmatrix_host::atomic::write_atomically(&config.state_path, &json, 0o644)
}

/// Answers every connection and probe until the deadline.
fn answer_until(held: &[Held], node: &str, deadline: Instant) {
    let mut buf = [0u8; wire::MAX_LINE];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let ready: Vec<usize> = {
            let mut fds: Vec<PollFd<'_>> =
                held.iter().map(|h| PollFd::from_borrowed_fd(h.fd(), PollFlags::IN)).collect();
            // At most a second at a time: the deadline is checked again.
            let wait = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: i64::from(u32::try_from(left.min(Duration::from_millis(999)).as_nanos()).unwrap_or(0)),
            };
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => fds.iter().enumerate().filter(|(_, fd)| !fd.revents().is_empty()).map(|(i, _)| i).collect(),
                Err(_) => return,
            }
        };
        for i in ready {
            match &held[i] {
                Held::Tcp(listener, port) => {
                    while let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        let _ = stream.write_all(wire::greeting(node, *port).as_bytes());
                    }
                }
                Held::Udp(socket, port) => {
                    while let Ok((n, from)) = socket.recv_from(&mut buf) {
                        if let Some(nonce) = wire::parse_probe(&buf[..n]) {
                            let _ = socket.send_to(wire::answer(node, *port, &nonce).as_bytes(), from);
                        }
                    }
                }
            }
        }
    }
}
