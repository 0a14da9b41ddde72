//! DNAT rules of the host whose original destination port is one the module
//! enforces. A packet DNAT'd to a container or a task (Docker, CNI port
//! mapping, netavark, a Mesos bridge-mode task) is forwarded: it never passes
//! the input hook, so the module's drops do not apply to it unless
//! `forward` is on. Without `forward`, each such rule is named in a warning.
//! The rules are read by portmatrix-netfilter's DNAT reader.

use portmatrix_netfilter::dnat::{DnatRule, read};
use portmatrix_portset::PortSet;

use crate::ruleset::{Proto, Ruleset};
use crate::tools::Tools;

/// The enforced ports `rule` DNATs, per protocol.
fn enforced(rule: &DnatRule, ruleset: &Ruleset) -> Vec<(Proto, PortSet)> {
    rule.protos
        .iter()
        .map(|proto| {
            let enforced = ruleset.enforced(*proto);
            let hit = match &rule.ports {
                Some(ports) => enforced.intersection(ports),
                None => enforced,
            };
            (*proto, hit)
        })
        .filter(|(_, hit)| !hit.is_empty())
        .collect()
}

/// The warnings for a ruleset that enforces without `forward`: one per DNAT
/// rule whose original destination port is enforced. Hosts whose rules
/// cannot be read get a warning saying so.
pub fn warnings(tools: &Tools, ruleset: &Ruleset) -> Vec<String> {
    if !ruleset.enforce || ruleset.forward {
        return Vec::new();
    }
    let (rules, unread) = read(tools);
    let mut warnings: Vec<String> = rules
        .iter()
        .filter_map(|rule| {
            let hit = enforced(rule, ruleset);
            (!hit.is_empty()).then(|| {
                let ports: Vec<String> = hit.iter().map(|(proto, ports)| format!("{ports}/{proto}")).collect();
                format!(
                    "{} `{}` DNATs enforced port(s) {}: forwarded packets never pass the input hook, so anyone \
                     reaches what it publishes; set forward: true to apply the rules to them too",
                    rule.place,
                    rule.rule,
                    ports.join(", ")
                )
            })
        })
        .collect();
    warnings.extend(unread.into_iter().map(|e| format!("could not check the host's DNAT rules: {e}")));
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::{Rule, Sources};
    use portmatrix_netfilter::dnat::from_iptables_save;

    fn enforcing(ports: &str) -> Ruleset {
        let rule =
            Rule { ports: ports.parse().unwrap(), proto: Proto::Tcp, sources: Sources::default(), comment: None };
        Ruleset { rules: vec![rule], enforce: true, forward: false }
    }

    #[test]
    fn a_rule_names_the_enforced_ports_it_dnats() {
        let rules = from_iptables_save(
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n",
            "iptables",
        );
        assert_eq!(enforced(&rules[0], &enforcing("8080,9000")), vec![(Proto::Tcp, "8080".parse().unwrap())]);
        assert!(enforced(&rules[0], &enforcing("9000")).is_empty());
    }
}
