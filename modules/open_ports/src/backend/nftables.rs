//! Native nftables. By default a table of the module's own (`inet NAME`)
//! with a base chain on the input hook; with `jump_from: FAMILY TABLE CHAIN`
//! a regular chain `NAME` and sets `NAME_*` inside that table (a jump cannot
//! cross tables) plus one `jump NAME` at the top of CHAIN. Ports and sources
//! are named sets with the interval flag: one lookup per packet and rule,
//! however long the lists. Everything is applied with one `nft -f`
//! transaction.
//!
//! State is read as JSON (`nft -j list table`), not as text: the JSON form
//! is a stable, documented schema (libnftables-json(5)), where the text form
//! re-wraps long element lists and names ports and priorities by taste. Set
//! elements are compared as merged intervals, rules as the nft syntax they
//! are rebuilt into, so the same content in another shape is still equal.

use std::collections::BTreeMap;
use std::fmt::Write;

use portmatrix_portset::PortSet;
use serde_json::Value;

use super::nft_json::{chain_header, parse_set, rule_text, str_of};
use super::{FirewallError, Step, Transaction, firewalld_running};
use crate::ruleset::{Proto, Rule, Ruleset};
use crate::source::{Family, format_interval};
use crate::tools::Tools;

const ESTABLISHED: &str = "ct state established,related accept";

/// Where the module's objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `table inet NAME` with a base chain `input`.
    OwnTable,
    /// Chain NAME and sets NAME_* in an existing table, jumped to from CHAIN.
    JumpFrom { family: String, table: String, chain: String },
}

#[derive(Debug, Clone)]
pub struct Nftables {
    tools: Tools,
    name: String,
    placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSet {
    pub kind: String,
    pub flags: Vec<String>,
    /// Merged intervals; elements that could not be understood are kept as
    /// their JSON text, so that they never compare equal to a wanted set.
    pub elements: Vec<(u128, u128)>,
    pub unknown: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NftChain {
    /// `type filter hook input priority 0; policy accept;` for a base chain.
    pub header: Option<String>,
    pub rules: Vec<String>,
}

/// The module's objects, read or wanted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Objects {
    pub sets: BTreeMap<String, NftSet>,
    pub chains: BTreeMap<String, NftChain>,
    /// Handles of `jump NAME` rules in the `jump_from` chain (jump mode).
    pub hooks: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    /// Own table mode: our table; jump mode: the `jump_from` table.
    pub table_exists: bool,
    /// Jump mode: whether the `jump_from` chain exists.
    pub hook_chain_exists: bool,
    pub objects: Objects,
}

impl Nftables {
    pub fn new(tools: &Tools, name: &str, jump_from: Option<&str>) -> Result<Nftables, FirewallError> {
        let placement = match jump_from {
            None => Placement::OwnTable,
            Some(text) => match text.split_whitespace().collect::<Vec<_>>().as_slice() {
                [family, table, chain] if ["ip", "ip6", "inet"].contains(family) => Placement::JumpFrom {
                    family: family.to_string(),
                    table: table.to_string(),
                    chain: chain.to_string(),
                },
                _ => {
                    return Err(FirewallError::JumpFrom(format!(
                        "{text:?} is not an nftables base chain: write `FAMILY TABLE CHAIN` with FAMILY ip, ip6 or \
                         inet, e.g. `inet filter input`"
                    )));
                }
            },
        };
        Ok(Nftables { tools: tools.clone(), name: name.to_string(), placement })
    }

    fn family(&self) -> &str {
        match &self.placement {
            Placement::OwnTable => "inet",
            Placement::JumpFrom { family, .. } => family,
        }
    }

    fn table(&self) -> &str {
        match &self.placement {
            Placement::OwnTable => &self.name,
            Placement::JumpFrom { table, .. } => table,
        }
    }

    /// The chain holding the rules.
    fn chain(&self) -> &str {
        match &self.placement {
            Placement::OwnTable => "input",
            Placement::JumpFrom { .. } => &self.name,
        }
    }

    fn set_prefix(&self) -> String {
        match &self.placement {
            Placement::OwnTable => String::new(),
            Placement::JumpFrom { .. } => format!("{}_", self.name),
        }
    }

    fn is_ours(&self, kind: &str, name: &str) -> bool {
        match &self.placement {
            Placement::OwnTable => true,
            Placement::JumpFrom { .. } if kind == "set" => name.starts_with(&self.set_prefix()),
            Placement::JumpFrom { .. } => name == self.name,
        }
    }

    fn families(&self) -> Vec<Family> {
        match self.family() {
            "ip" => vec![Family::V4],
            "ip6" => vec![Family::V6],
            _ => Family::ALL.to_vec(),
        }
    }

    /// Parses `nft -j list table` output into the module's objects.
    pub fn parse(&self, json: &str) -> Result<State, FirewallError> {
        let doc: Value = serde_json::from_str(json).map_err(|e| FirewallError::Unreadable {
            command: format!("nft -j list table {} {}", self.family(), self.table()),
            detail: e.to_string(),
        })?;
        let mut state = State { table_exists: true, ..State::default() };
        let hook_chain = match &self.placement {
            Placement::JumpFrom { chain, .. } => Some(chain.as_str()),
            Placement::OwnTable => None,
        };
        for item in doc["nftables"].as_array().into_iter().flatten() {
            if let Some(set) = item.get("set").filter(|s| self.is_ours("set", str_of(&s["name"]))) {
                state.objects.sets.insert(str_of(&set["name"]).to_string(), parse_set(set));
            } else if let Some(chain) = item.get("chain") {
                let name = str_of(&chain["name"]);
                state.hook_chain_exists |= Some(name) == hook_chain;
                if self.is_ours("chain", name) {
                    let header = chain.get("hook").map(|_| chain_header(chain));
                    state.objects.chains.entry(name.to_string()).or_default().header = header;
                }
            } else if let Some(rule) = item.get("rule") {
                let chain = str_of(&rule["chain"]);
                if self.is_ours("chain", chain) {
                    state.objects.chains.entry(chain.to_string()).or_default().rules.push(rule_text(rule));
                } else if Some(chain) == hook_chain
                    && rule["expr"] == serde_json::json!([{"jump": {"target": self.name}}])
                {
                    state.objects.hooks.push(rule["handle"].as_u64().unwrap_or_default());
                }
            }
        }
        Ok(state)
    }

    /// What the ruleset becomes in this placement.
    pub fn desired(&self, ruleset: &Ruleset) -> Objects {
        let prefix = self.set_prefix();
        let families = self.families();
        let mut objects = Objects::default();
        let mut rules = vec![ESTABLISHED.to_string()];
        for (index, rule) in ruleset.rules.iter().enumerate() {
            let base = format!("{prefix}r{}", index + 1);
            let accepts = accept_rules(rule, &base, &families, &mut objects);
            if !accepts.is_empty() {
                objects.sets.insert(format!("{base}_ports"), port_set(&rule.ports));
            }
            rules.extend(accepts);
        }
        for proto in Proto::ALL {
            let enforced = ruleset.enforced(proto);
            if !enforced.is_empty() {
                let set = format!("{prefix}enforce_{proto}");
                objects.sets.insert(set.clone(), port_set(&enforced));
                rules.push(format!("{proto} dport @{set} drop"));
            }
        }
        rules.push("return".into());
        let header = match self.placement {
            Placement::OwnTable => Some("type filter hook input priority 0; policy accept;".to_string()),
            Placement::JumpFrom { .. } => None,
        };
        objects.chains.insert(self.chain().to_string(), NftChain { header, rules });
        if let Placement::JumpFrom { .. } = self.placement {
            objects.hooks = vec![0];
        }
        objects
    }

    /// The objects in nft syntax: the table block as `nft list table` would
    /// show it (own objects only), or "" when there are none.
    pub fn describe_objects(&self, objects: &Objects) -> String {
        if objects.sets.is_empty() && objects.chains.is_empty() && objects.hooks.is_empty() {
            return String::new();
        }
        let mut out = format!("table {} {} {{\n", self.family(), self.table());
        for (name, set) in &objects.sets {
            let _ = writeln!(out, "\tset {name} {{ {} }}", set_body(set, true));
        }
        for (name, chain) in &objects.chains {
            let _ = writeln!(out, "\tchain {name} {{");
            if let Some(header) = &chain.header {
                let _ = writeln!(out, "\t\t{header}");
            }
            for rule in &chain.rules {
                let _ = writeln!(out, "\t\t{rule}");
            }
            out.push_str("\t}\n");
        }
        if let (Placement::JumpFrom { chain, .. }, false) = (&self.placement, objects.hooks.is_empty()) {
            let _ = writeln!(out, "\tchain {chain} {{");
            for _ in &objects.hooks {
                let _ = writeln!(out, "\t\tjump {}", self.name);
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    fn script(&self, state: &State, desired: Option<&Objects>) -> String {
        let (f, t) = (self.family(), self.table());
        let mut out = String::new();
        match (&self.placement, desired) {
            (Placement::OwnTable, Some(want)) => {
                // Create-then-delete makes the delete valid on a first run;
                // all of it is one transaction.
                let _ = writeln!(out, "table {f} {t}\ndelete table {f} {t}");
                out.push_str(&self.describe_objects(want));
            }
            (Placement::OwnTable, None) => {
                if state.table_exists {
                    let _ = writeln!(out, "delete table {f} {t}");
                }
            }
            (Placement::JumpFrom { chain: hook, .. }, Some(want)) => {
                let n = &self.name;
                let _ = writeln!(out, "add chain {f} {t} {n}\nflush chain {f} {t} {n}");
                for (name, set) in &state.objects.sets {
                    if want.sets.get(name).is_none_or(|w| w.kind != set.kind || w.flags != set.flags) {
                        let _ = writeln!(out, "delete set {f} {t} {name}");
                    }
                }
                for (name, set) in &want.sets {
                    let _ = writeln!(out, "add set {f} {t} {name} {{ {} }}", set_body(set, false));
                    let _ = writeln!(out, "flush set {f} {t} {name}");
                    if !set.elements.is_empty() {
                        let _ = writeln!(out, "add element {f} {t} {name} {{ {} }}", elements_text(set));
                    }
                }
                for rule in &want.chains[n].rules {
                    let _ = writeln!(out, "add rule {f} {t} {n} {rule}");
                }
                match state.objects.hooks.split_first() {
                    None => {
                        let _ = writeln!(out, "insert rule {f} {t} {hook} jump {n}");
                    }
                    Some((_, extra)) => {
                        for handle in extra {
                            let _ = writeln!(out, "delete rule {f} {t} {hook} handle {handle}");
                        }
                    }
                }
            }
            (Placement::JumpFrom { chain: hook, .. }, None) => {
                for handle in &state.objects.hooks {
                    let _ = writeln!(out, "delete rule {f} {t} {hook} handle {handle}");
                }
                for name in state.objects.chains.keys() {
                    let _ = writeln!(out, "flush chain {f} {t} {name}\ndelete chain {f} {t} {name}");
                }
                for name in state.objects.sets.keys() {
                    let _ = writeln!(out, "delete set {f} {t} {name}");
                }
            }
        }
        out
    }

    /// Base chains of other tables on the input hook that drop by default.
    fn dropping_input_chains(&self) -> Vec<String> {
        let Ok(json) = self.tools.run("nft", &["-j", "list", "chains"], None) else { return Vec::new() };
        let doc: Value = serde_json::from_str(&json).unwrap_or_default();
        doc["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.get("chain"))
            .filter(|c| c["hook"] == "input" && c["policy"] == "drop")
            .filter(|c| !(c["family"] == self.family() && c["table"] == self.table()))
            .map(|c| format!("{} {} {}", str_of(&c["family"]), str_of(&c["table"]), str_of(&c["name"])))
            .collect()
    }
}

impl super::Firewall for Nftables {
    type State = State;

    fn label(&self) -> String {
        "nftables".into()
    }

    fn read(&self) -> Result<State, FirewallError> {
        match self.tools.run("nft", &["-j", "list", "table", self.family(), self.table()], None) {
            Ok(json) => self.parse(&json),
            Err(e) if e.is_not_found() => Ok(State::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn describe(&self, state: &State) -> String {
        self.describe_objects(&state.objects)
    }

    fn render(&self, state: &State, desired: Option<&Ruleset>) -> Result<Transaction, FirewallError> {
        if let (Placement::JumpFrom { family, table, chain }, Some(_), false) =
            (&self.placement, desired, state.hook_chain_exists)
        {
            return Err(FirewallError::JumpFrom(format!(
                "chain {family} {table} {chain} does not exist: name an existing base chain"
            )));
        }
        let want = desired.map(|r| self.desired(r));
        let after = want.as_ref().map(|w| self.describe_objects(w)).unwrap_or_default();
        if after == self.describe(state) {
            return Ok(Transaction { steps: Vec::new(), after });
        }
        let step = Step {
            tool: "nft",
            args: vec!["-f".into(), "-".into()],
            input: self.script(state, want.as_ref()),
            undo: None,
        };
        Ok(Transaction { steps: vec![step], after })
    }

    fn warnings(&self, _state: &State, desired: Option<&Ruleset>) -> Vec<String> {
        let mut warnings = Vec::new();
        if desired.is_none() {
            return warnings;
        }
        if self.placement == Placement::OwnTable {
            for chain in self.dropping_input_chains() {
                warnings.push(format!(
                    "the input chain `{chain}` drops by default, and an accept in table inet {} does not override \
                     another table's drop: the ports stay closed unless that chain accepts them; hook in there \
                     with jump_from: \"{chain}\"",
                    self.name
                ));
            }
        }
        if firewalld_running() {
            warnings.push("firewalld is running: its own tables decide too, and a reload may flush others".into());
        }
        warnings
    }
}

fn port_set(ports: &PortSet) -> NftSet {
    NftSet {
        kind: "inet_service".into(),
        flags: vec!["interval".into()],
        elements: ports.ranges().iter().map(|r| (u128::from(r.start()), u128::from(r.end()))).collect(),
        unknown: Vec::new(),
    }
}

/// The accepts of one rule, creating its address sets in `objects`.
fn accept_rules(rule: &Rule, base: &str, families: &[Family], objects: &mut Objects) -> Vec<String> {
    let comment = rule.comment.as_deref().map(|c| format!(" comment \"{c}\"")).unwrap_or_default();
    let tail = format!("{} dport @{base}_ports accept{comment}", rule.proto);
    if rule.sources.any {
        return vec![tail];
    }
    let mut out = Vec::new();
    if rule.sources.loopback {
        out.push(format!("iifname \"lo\" {tail}"));
    }
    for family in families {
        let intervals = rule.sources.intervals(*family);
        if intervals.is_empty() {
            continue;
        }
        let (kind, suffix, match_) = match family {
            Family::V4 => ("ipv4_addr", "v4", "ip"),
            Family::V6 => ("ipv6_addr", "v6", "ip6"),
        };
        let set = format!("{base}_{suffix}");
        objects.sets.insert(
            set.clone(),
            NftSet { kind: kind.into(), flags: vec!["interval".into()], elements: intervals, unknown: Vec::new() },
        );
        out.push(format!("{match_} saddr @{set} {tail}"));
    }
    out
}

fn set_body(set: &NftSet, with_elements: bool) -> String {
    let mut body = format!("type {};", set.kind);
    if !set.flags.is_empty() {
        let _ = write!(body, " flags {};", set.flags.join(", "));
    }
    if with_elements && !(set.elements.is_empty() && set.unknown.is_empty()) {
        let _ = write!(body, " elements = {{ {} }}", elements_text(set));
    }
    body
}

fn elements_text(set: &NftSet) -> String {
    let family = match set.kind.as_str() {
        "ipv4_addr" => Some(Family::V4),
        "ipv6_addr" => Some(Family::V6),
        _ => None,
    };
    let known = set.elements.iter().map(|&(a, b)| match family {
        Some(family) => format_interval(family, (a, b)),
        None if a == b => a.to_string(),
        None => format!("{a}-{b}"),
    });
    known.chain(set.unknown.iter().cloned()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Firewall;
    use crate::ruleset::Sources;

    fn nft(jump_from: Option<&str>) -> Nftables {
        Nftables::new(&Tools::new(None), "open_ports", jump_from).unwrap()
    }

    fn ruleset() -> Ruleset {
        let sources: Vec<_> =
            ["198.18.0.0/16", "198.19.0.5", "2001:db8::/32", "loopback"].iter().map(|s| s.parse().unwrap()).collect();
        Ruleset {
            rules: vec![
                Rule {
                    ports: "80,443,1000-2000".parse().unwrap(),
                    proto: Proto::Tcp,
                    sources: Sources::from_list(&sources),
                    comment: Some("a b".into()),
                },
                Rule {
                    ports: "53".parse().unwrap(),
                    proto: Proto::Udp,
                    sources: Sources::from_list(&["any".parse().unwrap()]),
                    comment: None,
                },
            ],
            enforce: true,
        }
    }

    /// `nft -j list table inet open_ports` after loading the rendered table (nft 1.0.6).
    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "open_ports", "handle": 2}}, {"set": {"family": "inet", "name": "enforce_tcp", "table": "open_ports", "type": "inet_service", "handle": 2, "flags": ["interval"], "elem": [80, 443, {"range": [1000, 2000]}]}}, {"set": {"family": "inet", "name": "enforce_udp", "table": "open_ports", "type": "inet_service", "handle": 3, "flags": ["interval"], "elem": [53]}}, {"set": {"family": "inet", "name": "r1_ports", "table": "open_ports", "type": "inet_service", "handle": 4, "flags": ["interval"], "elem": [80, 443, {"range": [1000, 2000]}]}}, {"set": {"family": "inet", "name": "r1_v4", "table": "open_ports", "type": "ipv4_addr", "handle": 5, "flags": ["interval"], "elem": [{"prefix": {"addr": "198.18.0.0", "len": 16}}, "198.19.0.5"]}}, {"set": {"family": "inet", "name": "r1_v6", "table": "open_ports", "type": "ipv6_addr", "handle": 6, "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8::", "len": 32}}]}}, {"set": {"family": "inet", "name": "r2_ports", "table": "open_ports", "type": "inet_service", "handle": 7, "flags": ["interval"], "elem": [53]}}, {"chain": {"family": "inet", "table": "open_ports", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 8, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 9, "comment": "a b", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@r1_ports"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 10, "comment": "a b", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@r1_v4"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@r1_ports"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 11, "comment": "a b", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@r1_v6"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@r1_ports"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 12, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": "@r2_ports"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 13, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@enforce_tcp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 14, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": "@enforce_udp"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "open_ports", "chain": "input", "handle": 15, "expr": [{"return": null}]}}]}"#;

    #[test]
    fn what_nft_lists_reads_back_equal_to_what_was_rendered() {
        let nft = nft(None);
        let wanted = nft.describe_objects(&nft.desired(&ruleset()));
        assert_eq!(nft.describe(&nft.parse(LISTED).unwrap()), wanted);
        assert!(
            wanted
                .contains("\tset r1_v4 { type ipv4_addr; flags interval; elements = { 198.18.0.0/16, 198.19.0.5 } }\n"),
            "{wanted}"
        );
        assert!(wanted.contains("\t\tiifname \"lo\" tcp dport @r1_ports accept comment \"a b\"\n"), "{wanted}");
    }

    #[test]
    fn a_changed_element_or_a_foreign_rule_makes_a_difference() {
        let nft = nft(None);
        let wanted = nft.describe_objects(&nft.desired(&ruleset()));
        let edited = LISTED.replace("\"elem\": [53]}}, {\"chain\"", "\"elem\": [54]}}, {\"chain\"");
        assert_ne!(nft.describe(&nft.parse(&edited).unwrap()), wanted);
        let counted = LISTED
            .replace("[{\"return\": null}]", "[{\"counter\": {\"packets\": 0, \"bytes\": 0}}, {\"return\": null}]");
        assert_ne!(nft.describe(&nft.parse(&counted).unwrap()), wanted);
    }

    #[test]
    fn jump_mode_names_objects_after_the_module_and_filters_families() {
        let nft = nft(Some("ip filter input"));
        let objects = nft.desired(&ruleset());
        assert!(objects.sets.contains_key("open_ports_r1_v4") && !objects.sets.contains_key("open_ports_r1_v6"));
        let script =
            nft.script(&State { table_exists: true, hook_chain_exists: true, ..State::default() }, Some(&objects));
        assert!(script.starts_with("add chain ip filter open_ports\nflush chain ip filter open_ports\n"), "{script}");
        assert!(script.ends_with("insert rule ip filter input jump open_ports\n"), "{script}");
        assert!(Nftables::new(&Tools::new(None), "x", Some("bridge filter input")).is_err());
    }
}
