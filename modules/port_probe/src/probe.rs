//! Sending the probes: a TCP connect, or a UDP datagram and a wait for its
//! reply, with plain blocking sockets on a bounded pool of threads (a
//! module binary has no async runtime; a probe spends its time waiting, so
//! threads are cheap here).

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::classify::{self, Classified, Observed, Token};
use crate::options::Proto;
use crate::wire;

/// What one probe found, after its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub classified: Classified,
    pub token: Token,
    pub attempts: u32,
    /// The deciding attempt's time.
    pub time: Duration,
}

/// One probe's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Shot {
    pub addr: SocketAddr,
    pub proto: Proto,
    /// Read the responder's token (TCP) when the port is open.
    pub read_token: bool,
}

/// Makes every shot with at most `concurrency` in flight, each up to
/// `attempts` times while it is not final; outcomes in the shots' order.
pub fn run_all(shots: &[Shot], concurrency: usize, timeout: Duration, attempts: u32) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; shots.len()]);
    let workers = concurrency.min(shots.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            // Small stacks: a worker holds one socket and a 512-byte buffer.
            let spawned = std::thread::Builder::new().stack_size(64 * 1024).spawn_scoped(scope, || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(shot) = shots.get(i) else { break };
                    let outcome = probe(*shot, timeout, attempts);
                    results.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(outcome);
                }
            });
            // A thread that cannot start leaves its share to the others.
            if spawned.is_err() {
                break;
            }
        }
    });
    let results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Every shot is taken while a worker runs; with none at all, do them here.
    results
        .into_iter()
        .zip(shots)
        .map(|(outcome, shot)| outcome.unwrap_or_else(|| probe(*shot, timeout, attempts)))
        .collect()
}

/// One probe, tried again while its answer is not final.
pub fn probe(shot: Shot, timeout: Duration, attempts: u32) -> Outcome {
    let mut last = None;
    for attempt in 1..=attempts.max(1) {
        let start = Instant::now();
        let (classified, token) = match shot.proto {
            Proto::Tcp => tcp(shot, timeout),
            Proto::Udp => udp(shot, timeout),
        };
        let outcome = Outcome { classified, token, attempts: attempt, time: start.elapsed() };
        if outcome.classified.observed.is_final() {
            return outcome;
        }
        last = Some(outcome);
    }
    last.unwrap_or_else(|| Outcome {
        classified: Classified::new(Observed::Error, "no attempt was made"),
        token: Token::NotRead,
        attempts: 0,
        time: Duration::ZERO,
    })
}

fn tcp(shot: Shot, timeout: Duration) -> (Classified, Token) {
    match TcpStream::connect_timeout(&shot.addr, timeout) {
        Ok(stream) => {
            let token = if shot.read_token { read_token(stream, timeout) } else { Token::NotRead };
            (Classified::new(Observed::Open, "TCP handshake completed"), token)
        }
        Err(e) => (classify::from_error(Proto::Tcp, &e, timeout.as_millis()), Token::NotRead),
    }
}

/// The responder's line, read until its newline, the peer's close or the
/// timeout.
fn read_token(mut stream: TcpStream, timeout: Duration) -> Token {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::with_capacity(128);
    let mut buf = [0u8; wire::MAX_LINE];
    while line.len() < wire::MAX_LINE && !line.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => line.extend_from_slice(&buf[..n]),
        }
    }
    match wire::parse_answer(&line) {
        Some(answer) => Token::Node { node: answer.node, port: answer.port },
        None => Token::Missing,
    }
}

fn udp(shot: Shot, timeout: Duration) -> (Classified, Token) {
    let timeout_ms = timeout.as_millis();
    let socket = match UdpSocket::bind(unspecified(shot.addr.ip())) {
        Ok(s) => s,
        Err(e) => {
            return (Classified::new(Observed::Error, format!("the probe could not be made: {e}")), Token::NotRead);
        }
    };
    // Connected: the kernel then hands this socket the ICMP errors about
    // its datagrams, and only replies from the target.
    let nonce = nonce(shot.addr);
    let sent = socket
        .connect(shot.addr)
        .and_then(|()| socket.set_read_timeout(Some(timeout)))
        .and_then(|()| socket.send(wire::probe(nonce).as_bytes()));
    if let Err(e) = sent {
        return (classify::from_error(Proto::Udp, &e, timeout_ms), Token::NotRead);
    }
    let want = format!("{nonce:016x}");
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; wire::MAX_LINE];
    loop {
        match socket.recv(&mut buf) {
            Ok(n) => match wire::parse_answer(&buf[..n]) {
                Some(answer) if answer.nonce.as_deref() == Some(want.as_str()) => {
                    let token = Token::Node { node: answer.node, port: answer.port };
                    return (Classified::new(Observed::Open, "a responder replied"), token);
                }
                // A late reply to an earlier attempt: keep waiting for ours.
                Some(_) => {}
                None => return (Classified::new(Observed::Open, "a UDP reply"), Token::Missing),
            },
            Err(e) => return (classify::from_error(Proto::Udp, &e, timeout_ms), Token::NotRead),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            let timed_out = io::Error::from(io::ErrorKind::TimedOut);
            return (classify::from_error(Proto::Udp, &timed_out, timeout_ms), Token::NotRead);
        }
    }
}

fn unspecified(ip: IpAddr) -> SocketAddr {
    match ip {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}

/// Different for every datagram of this run (it only has to tell this
/// attempt's reply from a late one, not resist guessing).
fn nonce(addr: SocketAddr) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mixed = u64::from(now.subsec_nanos())
        ^ now.as_secs().rotate_left(32)
        ^ u64::from(std::process::id()).rotate_left(16)
        ^ u64::from(addr.port());
    mixed.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The address this node sends from to reach `ip`: the kernel's route
/// choice, found by connecting a UDP socket (which sends nothing).
pub fn source_for(ip: IpAddr) -> Result<IpAddr, io::Error> {
    let socket = UdpSocket::bind(unspecified(ip))?;
    socket.connect(SocketAddr::new(ip, 9))?;
    Ok(socket.local_addr()?.ip())
}
