//! nft's JSON (libnftables-json(5)) as the nft syntax it stands for: a
//! rule read back as text that compares with the text a module writes, and
//! quoted in messages as `nft list` would print it.

use serde_json::Value;

/// A JSON string's text; `""` for anything else.
pub fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
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
    if let Some(reject) = expr.get("reject") {
        return match (reject["type"].as_str(), reject["expr"].as_str()) {
            (Some(kind), Some(code)) => format!("reject with {kind} {code}"),
            _ => "reject".to_string(),
        };
    }
    if expr.get("counter").is_some() {
        return "counter".to_string();
    }
    // Shown in warnings about others' rules; the module writes no NAT.
    if let Some(addr) = expr["dnat"]["addr"].as_str() {
        return match expr["dnat"]["port"].as_u64() {
            Some(port) => format!("dnat to {addr}:{port}"),
            None => format!("dnat to {addr}"),
        };
    }
    let m = &expr["match"];
    // Interface names are strings nft quotes; other string values (a
    // protocol, a conntrack state or status) are keywords it does not.
    let mut quoted = false;
    let left = if let Some(p) = m["left"].get("payload") {
        Some(format!("{} {}", str_of(&p["protocol"]), str_of(&p["field"])))
    } else if let Some(key) = m["left"]["meta"]["key"].as_str() {
        quoted = key.ends_with("ifname");
        Some(if quoted { key.to_string() } else { format!("meta {key}") })
    } else {
        let ct = &m["left"]["ct"];
        ct["key"].as_str().map(|key| match ct["dir"].as_str() {
            Some(dir) => format!("ct {dir} {key}"),
            None => format!("ct {key}"),
        })
    };
    let op = match m["op"].as_str() {
        Some("==" | "in") => Some(""),
        Some("!=") => Some("!= "),
        _ => None,
    };
    let right = match &m["right"] {
        Value::String(s) if s.starts_with('@') || !quoted => Some(s.clone()),
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
