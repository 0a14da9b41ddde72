//! Reading `nft -j` output (libnftables-json(5)) back into the module's
//! terms: set elements as merged intervals, chain headers and rules as the
//! nft syntax the module writes. Anything it does not know stays visible as
//! JSON text, so that it never compares equal to what the module wants.

use std::net::IpAddr;

use serde_json::Value;

use super::nftables::NftSet;
use crate::source::merge_intervals;

pub fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
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

/// A rule from nft's JSON, rebuilt into nft syntax for the expressions this
/// module writes; anything else is kept as JSON (and so never equals a
/// wanted rule, and gets replaced).
pub fn rule_text(rule: &Value) -> String {
    let mut parts: Vec<String> = rule["expr"].as_array().into_iter().flatten().map(expression_text).collect();
    if let Some(comment) = rule["comment"].as_str() {
        parts.push(format!("comment \"{comment}\""));
    }
    parts.join(" ")
}

fn expression_text(expr: &Value) -> String {
    for verdict in ["accept", "drop", "return", "continue"] {
        if expr.get(verdict).is_some() {
            return verdict.to_string();
        }
    }
    if let Some(target) = expr["jump"]["target"].as_str() {
        return format!("jump {target}");
    }
    let m = &expr["match"];
    let left = if let Some(p) = m["left"].get("payload") {
        Some(format!("{} {}", str_of(&p["protocol"]), str_of(&p["field"])))
    } else if let Some(key) = m["left"]["meta"]["key"].as_str() {
        Some(key.to_string())
    } else {
        m["left"]["ct"]["key"].as_str().map(|key| format!("ct {key}"))
    };
    let op = match m["op"].as_str() {
        Some("==" | "in") => Some(""),
        Some("!=") => Some("!= "),
        _ => None,
    };
    let right = match &m["right"] {
        Value::String(s) if s.starts_with('@') => Some(s.clone()),
        Value::String(s) => Some(format!("\"{s}\"")),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Some(items.iter().map(str_of).collect::<Vec<_>>().join(","))
        }
        _ => None,
    };
    match (left, op, right) {
        (Some(left), Some(op), Some(right)) => format!("{left} {op}{right}"),
        _ => expr.to_string(),
    }
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
    fn rules_read_back_as_nft_syntax() {
        let rule = json!({"comment": "web", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
            {"jump": {"target": "open_ports"}}]});
        assert_eq!(rule_text(&rule), "iifname \"lo\" tcp dport != 22 jump open_ports comment \"web\"");
        assert_eq!(rule_text(&json!({"expr": [{"counter": {"packets": 1}}]})), "{\"counter\":{\"packets\":1}}");
    }
}
