//! `port_probe`: from the node it runs on, probes ports of other nodes and
//! compares what the network answered (open, refused, filtered, or for UDP
//! open|filtered) with what should hold (reachable or blocked). One row per
//! probe, a message line per mismatch. Never changes anything.
//!
//! [`wire`] is also what `port_responder` speaks.

pub mod classify;
pub mod options;
pub mod plan;
pub mod probe;
pub mod wire;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use portmatrix_ansible::{Failure, Invocation, Response};
use serde::Serialize;

use classify::{Observed, Token, Verdict};
use options::{Expected, Proto, Request, Target};

pub use options::SPEC;

/// The task's `msg` names at most this many mismatches and counts the rest.
pub const MISMATCHES_IN_MSG: usize = 50;

/// One probe's row of the truth table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The address this node sent from (the kernel's route choice).
    pub source: String,
    /// The destination as given (a name stays a name).
    pub target: String,
    /// The address probed.
    pub address: IpAddr,
    pub port: u16,
    pub proto: Proto,
    pub expected: Expected,
    pub observed: Observed,
    /// What the network answered, in words (`no answer in 1000 ms`).
    pub reason: String,
    pub verdict: Verdict,
    /// `verdict == ok`.
    pub ok: bool,
    /// The node named by the responder that answered, if one did.
    pub node: Option<String>,
    pub attempts: u32,
    /// Milliseconds the deciding attempt took.
    pub time_ms: f64,
    /// The port stands for a range that was sampled.
    pub sampled: bool,
    /// For a mismatch or an ambiguous row, its message line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
}

/// The module's whole run, from validated options to its result.
pub fn execute(invocation: &Invocation) -> Result<Response, Failure> {
    let request = Request::from_invocation(invocation)?;
    let probes = plan::probes(&request);
    let shots: Vec<probe::Shot> = probes
        .iter()
        .map(|p| {
            let target = &request.targets[p.target];
            probe::Shot {
                addr: SocketAddr::new(target.ip, p.port),
                proto: target.proto,
                read_token: target.node.is_some() && target.expected == Expected::Reachable,
            }
        })
        .collect();
    let mut sources: HashMap<IpAddr, String> = HashMap::new();
    for target in &request.targets {
        sources.entry(target.ip).or_insert_with(|| match probe::source_for(target.ip) {
            Ok(ip) => ip.to_string(),
            Err(_) => "(no route)".to_string(),
        });
    }
    let outcomes = probe::run_all(&shots, request.concurrency, request.timeout, request.attempts);
    let rows: Vec<Row> = probes
        .iter()
        .zip(outcomes)
        .map(|(p, outcome)| row(&request.targets[p.target], &sources[&request.targets[p.target].ip], *p, outcome))
        .collect();
    respond(&request, &rows)
}

fn row(target: &Target, source: &str, probe: plan::Probe, outcome: probe::Outcome) -> Row {
    let (verdict, words) =
        classify::judge(target.expected, &outcome.classified, probe.port, target.node.as_deref(), &outcome.token);
    let observed = outcome.classified.observed;
    let msg = (verdict != Verdict::Ok).then(|| {
        format!("{source} -> {}/{}: {}, {words}", endpoint(target, probe.port), target.proto, observed.as_str())
    });
    let node = match outcome.token {
        Token::Node { node, .. } => Some(node),
        Token::NotRead | Token::Missing => None,
    };
    Row {
        source: source.to_string(),
        target: target.address.clone(),
        address: target.ip,
        port: probe.port,
        proto: target.proto,
        expected: target.expected,
        observed,
        reason: outcome.classified.reason,
        verdict,
        ok: verdict == Verdict::Ok,
        node,
        attempts: outcome.attempts,
        // Microseconds kept: a loopback probe takes well under a millisecond.
        time_ms: (outcome.time.as_secs_f64() * 1e6).round() / 1e3,
        sampled: probe.sampled,
        msg,
    }
}

/// `198.18.20.1:2181`, `[fd00::1]:2181`, `master-1 (198.18.20.1):2181`.
fn endpoint(target: &Target, port: u16) -> String {
    let ip = match target.ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let literal = target.address.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok();
    if literal { format!("{ip}:{port}") } else { format!("{} ({ip}):{port}", target.address) }
}

fn respond(request: &Request, rows: &[Row]) -> Result<Response, Failure> {
    let count = |v| rows.iter().filter(|r| r.verdict == v).count();
    let (mismatches, ambiguous) = (count(Verdict::Mismatch), count(Verdict::Ambiguous));
    let failing: Vec<&Row> = rows
        .iter()
        .filter(|r| r.verdict == Verdict::Mismatch || (request.fail_on_ambiguous && r.verdict == Verdict::Ambiguous))
        .collect();
    let sampled = rows.iter().filter(|r| r.sampled).count();
    let msg = if failing.is_empty() {
        let mut msg = if ambiguous == 0 {
            format!("all {} probes as expected", rows.len())
        } else {
            format!(
                "{} probes as expected, {ambiguous} ambiguous (UDP: no reply and no ICMP error)",
                rows.len() - ambiguous
            )
        };
        if sampled > 0 {
            let _ = write!(msg, "; {sampled} of them sample ranges");
        }
        msg
    } else {
        lines(&failing)
    };
    let mut observed: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        *observed.entry(r.observed.as_str()).or_default() += 1;
    }
    let mut response = Response::new(false, msg)
        .field("mismatches", mismatches)
        .field("ambiguous", ambiguous)
        .field("observed", observed)
        .field("probes", rows);
    if ambiguous > 0 && !request.fail_on_ambiguous {
        let first =
            rows.iter().find(|r| r.verdict == Verdict::Ambiguous).and_then(|r| r.msg.clone()).unwrap_or_default();
        response.warnings.push(format!(
            "{ambiguous} UDP probes got no reply and no ICMP error (open|filtered): either a service that answers \
             only its own protocol listens, or a firewall drops the datagrams silently; the first: {first}"
        ));
    }
    let fails = (request.fail_on_mismatch && mismatches > 0) || (request.fail_on_ambiguous && ambiguous > 0);
    if !fails {
        return Ok(response);
    }
    Err(Failure { msg: response.msg, warnings: response.warnings, fields: response.fields })
}

/// One line per failing row, the first [`MISMATCHES_IN_MSG`], then how many
/// more there are.
fn lines(failing: &[&Row]) -> String {
    let lines = failing.iter().filter_map(|r| r.msg.as_deref());
    portmatrix_ansible::first_lines(lines, failing.len(), MISMATCHES_IN_MSG, "(see probes)")
}
