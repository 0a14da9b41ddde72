//! The DNAT rules of a host, with the original destination ports each
//! takes. A packet DNAT'd to a container or a task (Docker, CNI port
//! mapping, netavark, a Mesos bridge-mode task) is forwarded: it never
//! reaches a socket of the host, nor passes the input hook. `open_ports` warns
//! of those that take an enforced port; `unit_bindings` reports a port they
//! take as taken.
//!
//! Read from both worlds, since a host's DNAT rules may be in either whatever
//! backend the module uses: iptables' nat tables (`iptables-save -t nat`,
//! IPv4 and IPv6, the host's variant; a legacy nat table that is not loaded
//! holds no rules and is not loaded to look) and native nftables rules
//! (`dnat` statements in `nft -j list ruleset`; iptables-nft's DNAT is an
//! `xt` target there, read with iptables-save instead). A rule counts when it DNATs and matches a destination
//! port, or matches one and jumps to a chain that DNATs (netavark and
//! kube-proxy hand the packet to a per-service chain); one that DNATs
//! without a port match DNATs every port.

use std::collections::BTreeSet;

use portmatrix_portset::{PortRange, PortSet};
use serde_json::Value;

use portmatrix_host::tools::{ToolError, Tools};

use crate::Proto;
use crate::iptables_text::{Variant, parse_version, save_words};
use crate::nft_text::{rule_text, str_of};

/// One DNAT rule, and the traffic it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnatRule {
    /// Where it is, as its own tools name it (`iptables nat PREROUTING`,
    /// `nftables ip nat prerouting`).
    pub place: String,
    /// The rule as its tool lists it.
    pub rule: String,
    /// The protocols it matches (both when it names none).
    pub protos: Vec<Proto>,
    /// The original destination ports it matches (`None`: every port).
    pub ports: Option<PortSet>,
}

/// Every DNAT rule that could be read, and what could not be read. The
/// tools run side by side (each is a process start and a netlink dump:
/// most of a short module run's time, one after another).
pub fn read(tools: &Tools) -> (Vec<DnatRule>, Vec<ToolError>) {
    let nft =
        || tools.has("nft").then(|| tools.run("nft", &["-j", "list", "ruleset"], None).map(|t| from_nft_json(&t)));
    let iptables = || {
        let legacy = tools
            .run("iptables", &["-V"], None)
            .ok()
            .and_then(|v| parse_version(&v))
            .is_some_and(|(variant, _)| variant == Variant::Legacy);
        let save = |(save, names): (&str, &str)| {
            // An unloaded legacy nat table holds no rules, and reading it would load it.
            (tools.has(save) && (!legacy || nat_loaded(names))).then(|| {
                tools
                    .run(save, &["-t", "nat"], None)
                    .map(|text| from_iptables_save(&text, save.trim_end_matches("-save")))
            })
        };
        std::thread::scope(|scope| {
            let v6 = scope.spawn(|| save(("ip6tables-save", "/proc/net/ip6_tables_names")));
            let v4 = save(("iptables-save", "/proc/net/ip_tables_names"));
            [v4, v6.join().unwrap_or(None)]
        })
    };
    let [v4, v6, nft] = std::thread::scope(|scope| {
        let nft = scope.spawn(nft);
        let [v4, v6] = iptables();
        [v4, v6, nft.join().unwrap_or(None)]
    });
    let mut rules = Vec::new();
    let mut unread = Vec::new();
    for read in [v4, v6, nft].into_iter().flatten() {
        match read {
            Ok(found) => rules.extend(found),
            Err(e) => unread.push(e),
        }
    }
    (rules, unread)
}

/// Whether a legacy nat table is loaded, by the family's list of loaded
/// tables: reading one that is not would load it, and unloaded it holds no
/// rules.
fn nat_loaded(names: &str) -> bool {
    std::fs::read_to_string(names).is_ok_and(|t| t.lines().any(|l| l == "nat"))
}

/// The DNAT rules of an `iptables-save -t nat` text. Lines it does not
/// understand are skipped: this only feeds a warning.
pub fn from_iptables_save(text: &str, tool: &str) -> Vec<DnatRule> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((chain, spec)) = line.strip_prefix("-A ").and_then(|r| r.split_once(' ')) else { continue };
        let words = save_words(spec);
        if !words.windows(2).any(|w| matches!(w[0].as_str(), "-j" | "--jump") && w[1] == "DNAT") {
            continue;
        }
        let protocol = words.iter().position(|w| matches!(w.as_str(), "-p" | "--protocol"));
        let negated = protocol.is_some_and(|i| i > 0 && words[i - 1] == "!");
        let protos = match protocol.and_then(|i| words.get(i + 1)).map(String::as_str) {
            // `! -p udp` takes tcp among others: both, to be safe.
            _ if negated => Proto::ALL.to_vec(),
            Some("tcp") => vec![Proto::Tcp],
            Some("udp") => vec![Proto::Udp],
            Some(_) => continue,
            None => Proto::ALL.to_vec(),
        };
        let mut ports: Option<PortSet> = None;
        for (i, w) in words.iter().enumerate() {
            if !matches!(w.as_str(), "--dport" | "--dports" | "--destination-port" | "--destination-ports") {
                continue;
            }
            // A negated match (`! --dport 22`) takes nearly every port.
            if i > 0 && words[i - 1] == "!" {
                ports = None;
                break;
            }
            let Some(set) = words.get(i + 1).and_then(|p| p.replace(':', "-").parse::<PortSet>().ok()) else {
                continue;
            };
            ports = Some(ports.map_or(set.clone(), |p| p.intersection(&set)));
        }
        out.push(DnatRule { place: format!("{tool} nat {chain}"), rule: line.to_string(), protos, ports });
    }
    out
}

/// The DNAT rules (`dnat` statements) of `nft -j list ruleset`.
pub fn from_nft_json(text: &str) -> Vec<DnatRule> {
    let Ok(doc) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    let items: Vec<&Value> = doc["nftables"].as_array().into_iter().flatten().collect();
    let table_of = |v: &Value| (str_of(&v["family"]).to_string(), str_of(&v["table"]).to_string());
    // iptables-nft's DNAT is an `xt` target, not a `dnat` statement: its
    // rules are left to iptables-save, and are not counted twice.
    let rules: Vec<&Value> = items.iter().filter_map(|i| i.get("rule")).collect();
    let dnats = |rule: &Value| rule["expr"].as_array().into_iter().flatten().any(|e| e.get("dnat").is_some());
    // Chains (family, table, chain) that hold a DNAT.
    let dnat_chains: BTreeSet<(String, String, String)> = rules
        .iter()
        .filter(|r| dnats(r))
        .map(|r| {
            let (family, table) = table_of(r);
            (family, table, str_of(&r["chain"]).to_string())
        })
        .collect();
    let sets = |family: &str, table: &str, name: &str| -> Option<PortSet> {
        let set = items
            .iter()
            .filter_map(|i| i.get("set"))
            .find(|s| str_of(&s["family"]) == family && str_of(&s["table"]) == table && str_of(&s["name"]) == name)?;
        ports_of(&set["elem"])
    };
    let mut out = Vec::new();
    for rule in &rules {
        let (family, table) = table_of(rule);
        let jumps_to_dnat = rule["expr"].as_array().into_iter().flatten().any(|e| {
            ["jump", "goto"].iter().any(|verdict| {
                e[verdict]["target"]
                    .as_str()
                    .is_some_and(|t| dnat_chains.contains(&(family.clone(), table.clone(), t.to_string())))
            })
        });
        let direct = dnats(rule);
        let (protos, ports) = port_matches(rule, |name| sets(&family, &table, name));
        // A DNAT without a port match, in a chain that only port-matching
        // jumps lead to, is named by those jumps; reached any other way, it
        // DNATs every port, and is named itself.
        let named = if direct {
            ports.is_some() || !only_port_jumps_lead_to(&rules, rule)
        } else {
            jumps_to_dnat && ports.is_some()
        };
        if !named {
            continue;
        }
        out.push(DnatRule {
            place: format!("nftables {family} {table} {}", str_of(&rule["chain"])),
            rule: rule_text(rule),
            protos,
            ports,
        });
    }
    out
}

/// Whether rules jump to `rule`'s chain, and each of them matches a
/// destination port (a verdict map's jumps are not seen: such a chain counts
/// as reached without a port).
fn only_port_jumps_lead_to(rules: &[&Value], rule: &Value) -> bool {
    let chain = str_of(&rule["chain"]);
    let jumps: Vec<&&Value> = rules
        .iter()
        .filter(|r| {
            str_of(&r["family"]) == str_of(&rule["family"])
                && str_of(&r["table"]) == str_of(&rule["table"])
                && r["expr"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| ["jump", "goto"].iter().any(|v| e[v]["target"].as_str() == Some(chain)))
        })
        .collect();
    !jumps.is_empty() && jumps.iter().all(|r| has_dport_match(r))
}

fn has_dport_match(rule: &Value) -> bool {
    rule["expr"].as_array().into_iter().flatten().any(|e| e["match"]["left"]["payload"]["field"] == "dport")
}

/// The protocols and destination ports a rule matches (`tcp dport`, `udp
/// dport`, `th dport` with `meta l4proto`), ports `None` when it matches none.
fn port_matches(rule: &Value, set: impl Fn(&str) -> Option<PortSet>) -> (Vec<Proto>, Option<PortSet>) {
    let mut protos: Option<Vec<Proto>> = None;
    let mut ports: Option<PortSet> = None;
    for expr in rule["expr"].as_array().into_iter().flatten() {
        let m = &expr["match"];
        let left = &m["left"];
        let proto = |name: &str| match name {
            "tcp" => Some(vec![Proto::Tcp]),
            "udp" => Some(vec![Proto::Udp]),
            _ => None,
        };
        if left["meta"]["key"] == "l4proto" {
            protos = m["right"].as_str().and_then(proto).or(protos);
        }
        if let Some(payload) = left.get("payload").filter(|p| p["field"] == "dport") {
            protos = proto(str_of(&payload["protocol"])).or(protos);
            if m["op"] == "!=" {
                continue;
            }
            let matched = match &m["right"] {
                Value::String(name) if name.starts_with('@') => set(&name[1..]),
                other => ports_of(other),
            };
            if let Some(matched) = matched {
                ports = Some(ports.map_or(matched.clone(), |p| p.intersection(&matched)));
            }
        }
    }
    (protos.unwrap_or_else(|| Proto::ALL.to_vec()), ports)
}

/// Ports of a JSON match value or set's elements: a number, `{"range": [a,
/// b]}`, `{"set": [...]}`, a list of those.
fn ports_of(value: &Value) -> Option<PortSet> {
    let mut ranges = Vec::new();
    collect_ports(value, &mut ranges)?;
    Some(ranges.into_iter().collect())
}

fn collect_ports(value: &Value, out: &mut Vec<PortRange>) -> Option<()> {
    let port = |v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0);
    match value {
        Value::Number(_) => out.push(PortRange::new(port(value)?, port(value)?).ok()?),
        Value::Array(items) => items.iter().try_for_each(|i| collect_ports(i, out))?,
        Value::Object(map) => {
            if let Some([a, b]) = map.get("range").and_then(Value::as_array).map(Vec::as_slice) {
                out.push(PortRange::new(port(a)?, port(b)?).ok()?);
            } else if let Some(inner) = map.get("set").or_else(|| map.get("elem").map(|e| &e["val"])) {
                collect_ports(inner, out)?;
            } else {
                return None;
            }
        }
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iptables_dnat_rules_of_docker_and_cni_are_read_with_their_ports() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
            -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n\
            -A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n\
            -A CNI-DN-1 -p tcp -m multiport --dports 1000:2000,3000 -j DNAT --to-destination 10.88.0.2\n\
            -A PREROUTING -d 198.18.0.1/32 -j DNAT --to-destination 10.0.0.1\n\
            -A PREROUTING -p udp ! --dport 53 -j DNAT --to-destination 10.0.0.2\n\
            -A POSTROUTING -j MASQUERADE\nCOMMIT\n";
        let rules = from_iptables_save(saved, "iptables");
        assert_eq!(rules.len(), 4, "{rules:?}");
        assert_eq!(rules[0].place, "iptables nat DOCKER");
        assert_eq!(
            (rules[0].protos.clone(), rules[0].ports.as_ref().map(ToString::to_string)),
            (vec![Proto::Tcp], Some("8080".into()))
        );
        assert_eq!(rules[1].ports.as_ref().map(ToString::to_string), Some("1000-2000,3000".into()));
        assert_eq!((rules[2].protos.len(), rules[2].ports.is_none()), (2, true), "every port, both protocols");
        assert!(rules[3].ports.is_none(), "a negated port match takes nearly every port");
        let negated = from_iptables_save("-A DOCKER ! -p udp -j DNAT --to-destination 10.0.0.9\n", "iptables");
        assert_eq!(negated[0].protos, Proto::ALL, "! -p udp takes tcp too");
    }

    #[test]
    fn nftables_dnat_rules_direct_and_behind_a_port_matching_jump() {
        let listed = json!({"nftables": [
            {"set": {"family": "ip", "table": "nv", "name": "ports", "type": "inet_service", "elem": [8443, {"range": [9000, 9010]}]}},
            {"rule": {"family": "ip", "table": "nat", "chain": "prerouting", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
                {"dnat": {"addr": "10.0.0.2", "port": 80}}]}},
            {"rule": {"family": "ip", "table": "nv", "chain": "hostports", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}},
                {"jump": {"target": "nv_dnat"}}]}},
            {"rule": {"family": "ip", "table": "nv", "chain": "nv_dnat", "expr": [{"dnat": {"addr": "10.0.0.3"}}]}},
            {"rule": {"family": "ip", "table": "nat", "chain": "DOCKER", "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8081}},
                {"xt": {"type": "target", "name": "DNAT"}}]}},
            {"rule": {"family": "inet", "table": "f", "chain": "input", "expr": [{"accept": null}]}}
        ]});
        let rules = from_nft_json(&listed.to_string());
        let seen: Vec<(String, Option<String>)> =
            rules.iter().map(|r| (r.place.clone(), r.ports.as_ref().map(ToString::to_string))).collect();
        assert_eq!(
            seen,
            [
                ("nftables ip nat prerouting".to_string(), Some("8080".to_string())),
                ("nftables ip nv hostports".to_string(), Some("8443,9000-9010".to_string())),
            ],
            "iptables-nft's DNAT (an xt target) is left to iptables-save; the per-service chain is named by its jump"
        );
        assert!(from_nft_json("garbage").is_empty());
        // Another way into the DNAT chain, without a port: it DNATs every port.
        let mut items = listed["nftables"].as_array().unwrap().clone();
        items.push(json!({"rule": {"family": "ip", "table": "nv", "chain": "other", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "1.2.3.4"}},
            {"jump": {"target": "nv_dnat"}}]}}));
        let rules = from_nft_json(&json!({"nftables": items}).to_string());
        let every = rules.iter().find(|r| r.place == "nftables ip nv nv_dnat").expect("the DNAT rule itself is named");
        assert!(every.ports.is_none() && every.rule == "dnat to 10.0.0.3", "{every:?}");
    }
}
