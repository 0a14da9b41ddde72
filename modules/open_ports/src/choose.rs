//! Which backend runs: the one asked for, or with `backend: auto` the one
//! that already holds the module's (marked) objects, else native nftables
//! when the host's ruleset is native nftables, else the host's iptables. The
//! other backend, when its tools are there, is checked for a copy of the
//! module's objects left by an earlier run with the other backend.

use crate::backend::iptables::Iptables;
use crate::backend::nft_json::{Listing, XTABLES};
use crate::backend::nftables::Nftables;
use crate::backend::{Firewall, FirewallError};
use crate::options::{BackendChoice, Request};
use crate::tools::Tools;

pub enum Chosen {
    Nftables(Nftables),
    Iptables(Iptables),
}

pub fn native_tables(listing: &Listing) -> Vec<String> {
    listing
        .tables
        .iter()
        .filter(|(family, name)| {
            !(["ip", "ip6", "arp", "bridge"].contains(&family.as_str()) && XTABLES.contains(&name.as_str()))
        })
        .map(|(family, name)| format!("{family} {name}"))
        .collect()
}

fn jump_from_words(request: &Request) -> Option<usize> {
    request.jump_from.as_deref().map(|j| j.split_whitespace().count())
}

fn nftables(request: &Request, tools: &Tools) -> Result<Nftables, FirewallError> {
    Nftables::new(tools, &request.name, request.jump_from.as_deref())
}

fn iptables(request: &Request, tools: &Tools) -> Result<Iptables, FirewallError> {
    if jump_from_words(request).is_some_and(|words| words > 1) {
        return Err(FirewallError::JumpFrom(format!(
            "{:?} names an nftables chain; iptables hooks into a chain of the filter table, such as INPUT",
            request.jump_from.as_deref().unwrap_or_default()
        )));
    }
    Iptables::detect(tools, &request.name, request.jump_from.as_deref())
}

/// Whether the host has an iptables to read: `iptables` (its variant) and
/// `iptables-save`. A family whose other tools are missing is reported when
/// it is used (see the iptables backend).
fn has_iptables(tools: &Tools) -> bool {
    tools.has("iptables") && tools.has("iptables-save")
}

pub fn choose(request: &Request, tools: &Tools) -> Result<Chosen, FirewallError> {
    match request.backend {
        BackendChoice::Nftables => return nftables(request, tools).map(Chosen::Nftables),
        BackendChoice::Iptables => return iptables(request, tools).map(Chosen::Iptables),
        BackendChoice::Auto => {}
    }
    match jump_from_words(request) {
        Some(3) => return nftables(request, tools).map(Chosen::Nftables),
        Some(1) => return iptables(request, tools).map(Chosen::Iptables),
        _ => {}
    }
    let (has_nft, has_iptables) = (tools.has("nft"), has_iptables(tools));
    if has_iptables {
        // The backend that already holds the module's objects stays.
        let ipt = iptables(request, tools)?;
        if ipt.clone().loaded_only().read()?.exists() {
            return Ok(Chosen::Iptables(ipt));
        }
    }
    if has_nft {
        let nft = nftables(request, tools)?;
        if !nft.read()?.places.is_empty() {
            return Ok(Chosen::Nftables(nft));
        }
        let text = tools.run("nft", &["-j", "list", "tables"], None)?;
        let listing = Listing::parse(&text)
            .map_err(|detail| FirewallError::Unreadable { command: "nft -j list tables".into(), detail })?;
        if !native_tables(&listing).is_empty() {
            return Ok(Chosen::Nftables(nft));
        }
    }
    match (has_iptables, has_nft) {
        (true, _) => iptables(request, tools).map(Chosen::Iptables),
        (false, true) => nftables(request, tools).map(Chosen::Nftables),
        (false, false) => Err(FirewallError::NoBackend(tools.path())),
    }
}

/// The backends that were not chosen, to look for a copy of the module's
/// objects in, when their tools are on PATH: nftables or the host's iptables,
/// and the iptables variant the host does not use now (its objects stay in
/// the kernel when the host switches variants). Each only ever removes what
/// carries the module's marker, and never loads a legacy table to look.
pub fn others(chosen: &Chosen, request: &Request, tools: &Tools) -> Vec<Result<Chosen, FirewallError>> {
    let mut others = Vec::new();
    match chosen {
        Chosen::Nftables(_) if has_iptables(tools) => match Iptables::detect(tools, &request.name, None) {
            Ok(host) => {
                others.extend(host.other_variant().map(|ipt| Ok(Chosen::Iptables(ipt))));
                others.push(Ok(Chosen::Iptables(host.loaded_only())));
            }
            Err(e) => others.push(Err(e)),
        },
        Chosen::Nftables(_) => {}
        Chosen::Iptables(ipt) => {
            if tools.has("nft") {
                others.push(Nftables::new(tools, &request.name, None).map(Chosen::Nftables));
            }
            others.extend(ipt.other_variant().map(|ipt| Ok(Chosen::Iptables(ipt))));
        }
    }
    others
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_nft_tables_are_not_native() {
        let listing = Listing::parse(
            r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "filter", "handle": 1}},
            {"table": {"family": "ip6", "name": "nat", "handle": 2}}, {"table": {"family": "inet", "name": "filter", "handle": 3}},
            {"table": {"family": "ip", "name": "docker_like", "handle": 4}}]}"#,
        )
        .unwrap();
        assert_eq!(native_tables(&listing), ["inet filter", "ip docker_like"]);
        assert!(native_tables(&Listing::parse(r#"{"nftables": [{"metainfo": {}}]}"#).unwrap()).is_empty());
        assert!(Listing::parse("garbage").is_err() && Listing::parse("{\"tables\": []}").is_err());
    }
}
