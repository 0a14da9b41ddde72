//! Reading `nft -j` output (libnftables-json(5)) back into the module's
//! terms: set elements as merged intervals, chain headers and rules as the
//! nft syntax the module writes. Anything it does not know stays visible as
//! JSON text, so that it never compares equal to what the module wants.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

use super::nftables::NftSet;
use crate::source::merge_intervals;
pub use portmatrix_netfilter::nft_text::{rule_text, str_of};

/// The tables iptables-nft creates (in the `ip`, `ip6`, `arp` and `bridge`
/// families); any other table was made with nft itself.
pub const XTABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security", "broute"];

/// A chain as `nft -j list chains` or `list table` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedChain {
    pub family: String,
    pub table: String,
    pub name: String,
    /// The hook of a base chain (`input`), and its policy.
    pub hook: Option<String>,
    pub policy: Option<String>,
    /// `type filter hook input priority 0; policy accept;` for a base chain.
    pub header: Option<String>,
}

/// A rule, in the order nft lists it within its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub chain: String,
    pub handle: u64,
    /// The rule as nft syntax (see [`rule_text`]).
    pub text: String,
    /// Every chain it jumps or goes to, verdict maps included.
    pub targets: Vec<String>,
    /// Every named set it uses (`@name` in its expressions, not its comment).
    pub sets: Vec<String>,
    /// `drop` or `reject` when the rule matches every packet (no match, only
    /// counters or logging before its verdict).
    pub catch_all: Option<&'static str>,
}

impl ListedRule {
    pub fn jumps_to(&self, chain: &str) -> bool {
        self.targets.iter().any(|t| t == chain)
    }
}

/// One `nft -j list ...` answer.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// `(family, name)` of each table.
    pub tables: Vec<(String, String)>,
    pub chains: Vec<ListedChain>,
    /// Sets by name (a listing of one table).
    pub sets: BTreeMap<String, NftSet>,
    pub rules: Vec<ListedRule>,
    /// Named maps and the chains they jump to (`map m { ... : jump CHAIN }`).
    pub map_targets: Vec<(String, String)>,
    /// Whether any rule holds an `xt` expression: iptables-nft wrote it.
    pub has_xt: bool,
}

impl Listing {
    /// Reads nft's JSON; output that is not `{"nftables": [...]}` is refused.
    pub fn parse(text: &str) -> Result<Listing, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
        let items = doc.get("nftables").and_then(Value::as_array).ok_or("no \"nftables\" list in the JSON")?;
        let mut listing = Listing::default();
        for item in items {
            if let Some(table) = item.get("table") {
                listing.tables.push((str_of(&table["family"]).to_string(), str_of(&table["name"]).to_string()));
            } else if let Some(chain) = item.get("chain") {
                listing.chains.push(ListedChain {
                    family: str_of(&chain["family"]).to_string(),
                    table: str_of(&chain["table"]).to_string(),
                    name: str_of(&chain["name"]).to_string(),
                    hook: chain["hook"].as_str().map(String::from),
                    policy: chain["policy"].as_str().map(String::from),
                    header: chain.get("hook").map(|_| chain_header(chain)),
                });
            } else if let Some(set) = item.get("set") {
                listing.sets.insert(str_of(&set["name"]).to_string(), parse_set(set));
            } else if let Some(map) = item.get("map") {
                let mut targets = Vec::new();
                jump_targets(map, &mut targets);
                let name = str_of(&map["name"]);
                listing.map_targets.extend(targets.into_iter().map(|t| (name.to_string(), t)));
            } else if let Some(rule) = item.get("rule") {
                let (mut targets, mut sets) = (Vec::new(), Vec::new());
                jump_targets(&rule["expr"], &mut targets);
                set_references(&rule["expr"], &mut sets);
                listing.has_xt |= rule["expr"].as_array().into_iter().flatten().any(|e| e.get("xt").is_some());
                listing.rules.push(ListedRule {
                    chain: str_of(&rule["chain"]).to_string(),
                    handle: rule["handle"].as_u64().unwrap_or_default(),
                    text: rule_text(rule),
                    targets,
                    sets,
                    catch_all: catch_all(&rule["expr"]),
                });
            }
        }
        Ok(listing)
    }
}

/// The verdict of a rule that matches every packet: only counters and logs
/// before a `drop` or `reject`.
fn catch_all(expressions: &Value) -> Option<&'static str> {
    let mut verdict = None;
    for expression in expressions.as_array()? {
        for key in expression.as_object()?.keys() {
            match key.as_str() {
                "counter" | "log" => {}
                "drop" => verdict = Some("drop"),
                "reject" => verdict = Some("reject"),
                _ => return None,
            }
        }
    }
    verdict
}

/// Every `"@set"` string anywhere in a rule's expressions: a set it uses.
fn set_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.extend(text.strip_prefix('@').map(String::from)),
        Value::Object(map) => map.values().for_each(|inner| set_references(inner, out)),
        Value::Array(items) => items.iter().for_each(|item| set_references(item, out)),
        _ => {}
    }
}

/// Every `{"jump": {"target": C}}` or `{"goto": ...}` anywhere in `value`.
fn jump_targets(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner["target"].as_str()) {
                    ("jump" | "goto", Some(target)) => out.push(target.to_string()),
                    _ => jump_targets(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| jump_targets(item, out)),
        _ => {}
    }
}

pub fn parse_set(set: &Value) -> NftSet {
    let flags = set["flags"].as_array().into_iter().flatten().map(|f| str_of(f).to_string()).collect();
    let mut elements = Vec::new();
    let mut unknown = Vec::new();
    for elem in set["elem"].as_array().into_iter().flatten() {
        match element_interval(elem) {
            Some(interval) => elements.push(interval),
            None => unknown.push(elem.to_string()),
        }
    }
    NftSet { kind: str_of(&set["type"]).to_string(), flags, elements: merge_intervals(elements), unknown }
}

/// One set element as an interval: a port, an address, `{"range": [a, b]}`,
/// `{"prefix": {"addr", "len"}}`, or any of these wrapped in `{"elem": {"val"}}`.
fn element_interval(elem: &Value) -> Option<(u128, u128)> {
    if let Some(n) = elem.as_u64() {
        return Some((u128::from(n), u128::from(n)));
    }
    if let Some(text) = elem.as_str() {
        let value = address_value(text.parse().ok()?);
        return Some((value, value));
    }
    if let Some([a, b]) = elem["range"].as_array().map(Vec::as_slice) {
        return Some((element_interval(a)?.0, element_interval(b)?.1));
    }
    if let Some(prefix) = elem.get("prefix") {
        let cidr: crate::source::Cidr =
            format!("{}/{}", str_of(&prefix["addr"]), prefix["len"].as_u64()?).parse().ok()?;
        return Some(cidr.interval());
    }
    elem.get("elem").and_then(|e| element_interval(&e["val"]))
}

fn address_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

pub fn chain_header(chain: &Value) -> String {
    format!(
        "type {} hook {} priority {}; policy {};",
        str_of(&chain["type"]),
        str_of(&chain["hook"]),
        chain["prio"],
        str_of(&chain["policy"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elements_of_every_shape_become_intervals() {
        assert_eq!(element_interval(&json!(80)), Some((80, 80)));
        assert_eq!(element_interval(&json!({"range": [1000, 2000]})), Some((1000, 2000)));
        assert_eq!(element_interval(&json!("198.18.0.1")), Some((0xC612_0001, 0xC612_0001)));
        assert_eq!(
            element_interval(&json!({"prefix": {"addr": "198.18.0.0", "len": 16}})),
            Some((0xC612_0000, 0xC612_FFFF))
        );
        assert_eq!(element_interval(&json!({"elem": {"val": 443, "comment": "x"}})), Some((443, 443)));
        assert_eq!(element_interval(&json!({"concat": [1, 2]})), None);
        let set = parse_set(&json!({"type": "inet_service", "flags": ["interval"], "elem": [81, 80, {"concat": [1]}]}));
        assert_eq!((set.elements, set.unknown.len()), (vec![(80, 81)], 1));
    }

    #[test]
    fn catch_all_rules_are_told_from_rules_that_match() {
        assert_eq!(catch_all(&json!([{"counter": {"packets": 1, "bytes": 2}}, {"reject": null}])), Some("reject"));
        assert_eq!(catch_all(&json!([{"log": {"prefix": "x"}}, {"drop": null}])), Some("drop"));
        let matching =
            json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "eth0"}}, {"drop": null}]);
        assert_eq!(catch_all(&matching), None);
        assert_eq!(catch_all(&json!([{"accept": null}])), None);
    }

    #[test]
    fn rules_read_back_as_nft_syntax() {
        let rule = json!({"comment": "web", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
            {"jump": {"target": "open_ports"}}]});
        assert_eq!(rule_text(&rule), "iifname \"lo\" tcp dport != 22 jump open_ports comment \"web\"");
        assert_eq!(rule_text(&json!({"expr": [{"counter": {"packets": 1}}, {"reject": null}]})), "counter reject");
        assert_eq!(rule_text(&json!({"expr": [{"notrack": null}]})), "{\"notrack\":null}");
        // As nft 1.0.6 lists the forward chain's rules (a DNAT'd packet by its
        // original destination port).
        let forward = json!({"expr": [
            {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
            {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
            {"match": {"op": "==", "left": {"ct": {"key": "proto-dst", "dir": "original"}}, "right": "@r1_ports"}},
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@r1_v4"}},
            {"accept": null}]});
        assert_eq!(
            rule_text(&forward),
            "ct status dnat meta l4proto tcp ct original proto-dst @r1_ports ip saddr @r1_v4 accept"
        );
    }
}
