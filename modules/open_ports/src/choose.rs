//! Which backend runs: the one asked for, or with `backend: auto` the one
//! that already holds the module's objects, else native nftables when the
//! host's ruleset is native nftables, else the host's iptables.

use serde_json::Value;

use crate::backend::Firewall;
use crate::backend::FirewallError;
use crate::backend::iptables::Iptables;
use crate::backend::nftables::Nftables;
use crate::options::{BackendChoice, Request};
use crate::tools::Tools;

pub enum Chosen {
    Nftables(Nftables),
    Iptables(Iptables),
}

/// The tables iptables-nft creates (`ip`, `ip6`, `arp`, `bridge` families);
/// any other table was made with nft itself.
const XTABLES: &[&str] = &["filter", "nat", "mangle", "raw", "security", "broute"];

pub fn native_tables(listing: &str) -> Vec<String> {
    let doc: Value = serde_json::from_str(listing).unwrap_or_default();
    doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("table"))
        .filter_map(|t| Some((t["family"].as_str()?, t["name"].as_str()?)))
        .filter(|(family, name)| !(["ip", "ip6", "arp", "bridge"].contains(family) && XTABLES.contains(name)))
        .map(|(family, name)| format!("{family} {name}"))
        .collect()
}

pub fn choose(request: &Request, tools: &Tools) -> Result<Chosen, FirewallError> {
    let jump_from = request.jump_from.as_deref();
    let nftables = || Nftables::new(tools, &request.name, jump_from).map(Chosen::Nftables);
    let detect_iptables = || {
        if jump_from.is_some_and(|j| j.split_whitespace().count() > 1) {
            return Err(FirewallError::JumpFrom(format!(
                "{:?} names an nftables chain; iptables hooks into a chain of the filter table, such as INPUT",
                jump_from.unwrap_or_default()
            )));
        }
        Iptables::detect(tools, &request.name, jump_from)
    };
    let iptables = || detect_iptables().map(Chosen::Iptables);
    match request.backend {
        BackendChoice::Nftables => return nftables(),
        BackendChoice::Iptables => return iptables(),
        BackendChoice::Auto => {}
    }
    match jump_from.map(|j| j.split_whitespace().count()) {
        Some(3) => return nftables(),
        Some(1) => return iptables(),
        _ => {}
    }
    let (has_nft, has_iptables) = (tools.has("nft"), tools.has("iptables"));
    if has_iptables {
        // The backend that already holds the module's objects stays.
        let ipt = detect_iptables()?;
        if ipt.read()?.exists() {
            return Ok(Chosen::Iptables(ipt));
        }
    }
    if has_nft {
        let listing = tools.run("nft", &["-j", "list", "tables"], None)?;
        if !native_tables(&listing).is_empty() {
            return nftables();
        }
    }
    match (has_iptables, has_nft) {
        (true, _) => iptables(),
        (false, true) => nftables(),
        (false, false) => Err(FirewallError::NoBackend(tools.path())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_nft_tables_are_not_native() {
        let listing = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "filter", "handle": 1}},
            {"table": {"family": "ip6", "name": "nat", "handle": 2}}, {"table": {"family": "inet", "name": "filter", "handle": 3}},
            {"table": {"family": "ip", "name": "docker_like", "handle": 4}}]}"#;
        assert_eq!(native_tables(listing), ["inet filter", "ip docker_like"]);
        assert!(native_tables(r#"{"nftables": [{"metainfo": {}}]}"#).is_empty());
    }
}
