//! iptables (legacy or `nf_tables` variant, as the host's `iptables -V` says),
//! IPv4 and IPv6: one chain of the module's own per family in the filter
//! table, written whole with `iptables-restore --noflush` (which replaces
//! that chain alone, atomically) and hooked into `jump_from` (INPUT) at
//! position 1, once. State is read with `iptables-save -t filter`, of which
//! only the module's chain and its hook lines are looked at.

use std::fmt::Write;

use portmatrix_portset::{PortRange, PortSet};

use super::{FirewallError, Step, Transaction, firewalld_running};
use crate::ruleset::{Proto, Rule, Ruleset};
use crate::source::Family;
use crate::tools::Tools;

/// multiport takes at most 15 ports, a range counting as two.
const MULTIPORT_SLOTS: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Legacy,
    Nft,
}

#[derive(Debug, Clone)]
pub struct Iptables {
    tools: Tools,
    name: String,
    hook: String,
    variant: Variant,
    /// Legacy iptables-restore >= 1.6.2 takes the xtables lock with --wait;
    /// the `nf_tables` variant needs no lock (the kernel serialises transactions).
    wait: bool,
}

/// The module's chain in one family's filter table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilyState {
    pub chain_exists: bool,
    /// The chain's rules as iptables-save prints them (`-A NAME ...`).
    pub lines: Vec<String>,
    /// How many `-A HOOK -j NAME` rules there are.
    pub hooks: usize,
    pub hook_chain_exists: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub v4: FamilyState,
    pub v6: FamilyState,
}

impl State {
    fn family(&self, family: Family) -> &FamilyState {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub fn exists(&self) -> bool {
        [&self.v4, &self.v6].iter().any(|f| f.chain_exists || f.hooks > 0)
    }
}

fn save_tool(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    }
}

fn restore_tool(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    }
}

/// `iptables v1.8.9 (nf_tables)` / `(legacy)`; before 1.8 there is no suffix
/// and only legacy existed. Returns the variant and whether --wait works.
pub fn parse_version(text: &str) -> (Variant, bool) {
    let variant = if text.contains("nf_tables") { Variant::Nft } else { Variant::Legacy };
    let version: Vec<u32> = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .map(|v| v.split('.').map_while(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let wait = variant == Variant::Legacy && version.as_slice() >= [1, 6, 2].as_slice();
    (variant, wait)
}

impl Iptables {
    /// The host's iptables, as `iptables -V` describes it.
    pub fn detect(tools: &Tools, name: &str, jump_from: Option<&str>) -> Result<Iptables, FirewallError> {
        let version = tools.run("iptables", &["-V"], None)?;
        let (variant, wait) = parse_version(&version);
        Ok(Iptables {
            tools: tools.clone(),
            name: name.to_string(),
            hook: jump_from.unwrap_or("INPUT").to_string(),
            variant,
            wait,
        })
    }

    fn read_family(&self, family: Family) -> Result<FamilyState, FirewallError> {
        let saved = self.tools.run(save_tool(family), &["-t", "filter"], None)?;
        Ok(parse_save(&saved, &self.name, &self.hook))
    }

    fn hook_line(&self) -> String {
        format!("-A {} -j {}", self.hook, self.name)
    }

    /// The chain's rules for `family`, exactly as iptables-save prints them.
    pub fn chain_lines(&self, ruleset: &Ruleset, family: Family) -> Vec<String> {
        let n = &self.name;
        let mut lines = vec![format!("-A {n} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")];
        for rule in ruleset.rules.iter().filter(|r| r.applies_to(family)) {
            let comment = rule.comment.as_deref().map(comment_match).unwrap_or_default();
            for source in source_matches(rule, family) {
                for ports in multiport_chunks(&rule.ports) {
                    lines.push(format!(
                        "-A {n}{source} -p {} -m multiport --dports {ports}{comment} -j ACCEPT",
                        rule.proto
                    ));
                }
            }
        }
        for proto in Proto::ALL {
            for ports in multiport_chunks(&ruleset.enforced(proto)) {
                lines.push(format!("-A {n} -p {proto} -m multiport --dports {ports} -j DROP"));
            }
        }
        lines.push(format!("-A {n} -j RETURN"));
        lines
    }

    fn describe_family(&self, family: Family, state: &FamilyState) -> String {
        if !state.chain_exists && state.hooks == 0 {
            return String::new();
        }
        let mut out = format!("# {}: filter table\n", restore_tool(family).trim_end_matches("-restore"));
        for _ in 0..state.hooks {
            let _ = writeln!(out, "{}", self.hook_line());
        }
        if state.chain_exists {
            let _ = writeln!(out, ":{}", self.name);
        }
        for line in &state.lines {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    fn restore_args(&self) -> Vec<String> {
        let mut args = vec!["--noflush".to_string()];
        if self.wait {
            args.push("--wait=10".into());
        }
        args
    }

    /// A restore script that makes the family's state `to`, from `from`.
    fn script(&self, from: &FamilyState, to: &FamilyState) -> String {
        let (n, hook) = (&self.name, &self.hook);
        let mut out = String::from("*filter\n");
        let delete_hook = format!("-D {hook} -j {n}\n");
        if to.chain_exists {
            let _ = writeln!(out, ":{n} - [0:0]");
            for line in &to.lines {
                let _ = writeln!(out, "{line}");
            }
            for _ in from.hooks..to.hooks {
                let _ = writeln!(out, "-I {hook} 1 -j {n}");
            }
            for _ in to.hooks..from.hooks {
                out.push_str(&delete_hook);
            }
        } else {
            out.push_str(&delete_hook.repeat(from.hooks));
            if from.chain_exists {
                let _ = writeln!(out, ":{n} - [0:0]\n-X {n}");
            }
        }
        out.push_str("COMMIT\n");
        out
    }

    fn desired_family(&self, desired: Option<&Ruleset>, family: Family) -> FamilyState {
        match desired {
            Some(ruleset) => FamilyState {
                chain_exists: true,
                lines: self.chain_lines(ruleset, family),
                hooks: 1,
                hook_chain_exists: true,
            },
            None => FamilyState::default(),
        }
    }
}

impl super::Firewall for Iptables {
    type State = State;

    fn label(&self) -> String {
        match self.variant {
            Variant::Legacy => "iptables-legacy".into(),
            Variant::Nft => "iptables-nft".into(),
        }
    }

    fn read(&self) -> Result<State, FirewallError> {
        Ok(State { v4: self.read_family(Family::V4)?, v6: self.read_family(Family::V6)? })
    }

    fn describe(&self, state: &State) -> String {
        Family::ALL.iter().map(|f| self.describe_family(*f, state.family(*f))).collect()
    }

    fn render(&self, state: &State, desired: Option<&Ruleset>) -> Result<Transaction, FirewallError> {
        let mut tx = Transaction::default();
        for family in Family::ALL {
            let now = state.family(family);
            let want = self.desired_family(desired, family);
            if desired.is_some() && !now.hook_chain_exists {
                return Err(FirewallError::JumpFrom(format!(
                    "chain {} does not exist in the {} filter table",
                    self.hook,
                    save_tool(family).trim_end_matches("-save")
                )));
            }
            tx.after.push_str(&self.describe_family(family, &want));
            if self.describe_family(family, now) == self.describe_family(family, &want) {
                continue;
            }
            tx.steps.push(Step {
                tool: restore_tool(family),
                args: self.restore_args(),
                input: self.script(now, &want),
                undo: Some(self.script(&want, now)),
            });
        }
        Ok(tx)
    }

    fn warnings(&self, _state: &State, desired: Option<&Ruleset>) -> Vec<String> {
        let mut warnings = Vec::new();
        if desired.is_some() && firewalld_running() {
            warnings.push(
                "firewalld is running: it replaces iptables rules on every reload, so this chain may vanish; \
                 open the ports through firewalld instead, or stop it"
                    .to_string(),
            );
        }
        warnings
    }
}

/// The module's part of `iptables-save -t filter` output.
pub fn parse_save(saved: &str, name: &str, hook: &str) -> FamilyState {
    let own = format!("-A {name} ");
    let hook_rule = format!("-A {hook} -j {name}");
    let mut state = FamilyState::default();
    for line in saved.lines() {
        if let Some(chain) = line.strip_prefix(':').and_then(|l| l.split_whitespace().next()) {
            state.chain_exists |= chain == name;
            state.hook_chain_exists |= chain == hook;
        } else if line.starts_with(&own) {
            state.lines.push(line.to_string());
        } else if line == hook_rule {
            state.hooks += 1;
        }
    }
    state
}

fn comment_match(comment: &str) -> String {
    // iptables-save (xtables_save_string) prints a value bare only when it is
    // made of letters, digits, `_` and `-`; anything else is quoted (the
    // options allow no quote or backslash, which it would escape).
    if comment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        format!(" -m comment --comment {comment}")
    } else {
        format!(" -m comment --comment \"{comment}\"")
    }
}

/// The source part of each accept: ` -i lo`, ` -s CIDR`, or nothing for any.
fn source_matches(rule: &Rule, family: Family) -> Vec<String> {
    if rule.sources.any {
        return vec![String::new()];
    }
    let lo = rule.sources.loopback.then(|| " -i lo".to_string());
    // iptables-save leaves out `-s 0.0.0.0/0`, so a whole family is written without it.
    let nets = rule.sources.nets_of(family).map(|c| if c.is_everything() { String::new() } else { format!(" -s {c}") });
    lo.into_iter().chain(nets).collect()
}

/// The ports in multiport's `A,B:C` form, at most 15 slots per match.
fn multiport_chunks(ports: &PortSet) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut used = 0;
    for range in ports.ranges() {
        let cost = if range.start() == range.end() { 1 } else { 2 };
        if used + cost > MULTIPORT_SLOTS {
            chunks.push(current.join(","));
            current.clear();
            used = 0;
        }
        current.push(multiport_range(*range));
        used += cost;
    }
    if !current.is_empty() {
        chunks.push(current.join(","));
    }
    chunks
}

fn multiport_range(range: PortRange) -> String {
    if range.start() == range.end() { range.start().to_string() } else { format!("{}:{}", range.start(), range.end()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::Sources;

    fn ipt() -> Iptables {
        Iptables {
            tools: Tools::new(None),
            name: "open_ports".into(),
            hook: "INPUT".into(),
            variant: Variant::Nft,
            wait: false,
        }
    }

    fn rule(ports: &str, proto: Proto, sources: &[&str], comment: Option<&str>) -> Rule {
        let parsed: Vec<_> = sources.iter().map(|s| s.parse().unwrap()).collect();
        Rule {
            ports: ports.parse().unwrap(),
            proto,
            sources: Sources::from_list(&parsed),
            comment: comment.map(Into::into),
        }
    }

    #[test]
    fn comments_are_quoted_as_iptables_save_prints_them() {
        assert_eq!(comment_match("Admin_Router-1"), " -m comment --comment Admin_Router-1");
        assert_eq!(comment_match("zk/exhibitor"), " -m comment --comment \"zk/exhibitor\"");
        assert_eq!(comment_match("a b"), " -m comment --comment \"a b\"");
    }

    #[test]
    fn versions_tell_variant_and_lock_support() {
        assert_eq!(parse_version("iptables v1.8.9 (nf_tables)\n"), (Variant::Nft, false));
        assert_eq!(parse_version("iptables v1.8.9 (legacy)\n"), (Variant::Legacy, true));
        assert_eq!(parse_version("iptables v1.4.21\n"), (Variant::Legacy, false));
        assert_eq!(parse_version("iptables v1.6.2\n"), (Variant::Legacy, true));
    }

    #[test]
    fn chain_lines_follow_the_documented_order_per_family() {
        let set = Ruleset {
            rules: vec![
                rule("80,443", Proto::Tcp, &["198.18.0.0/16", "2001:db8::/32", "loopback"], Some("web front")),
                rule("53", Proto::Udp, &["any"], None),
            ],
            enforce: true,
        };
        assert_eq!(
            ipt().chain_lines(&set, Family::V4),
            [
                "-A open_ports -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-A open_ports -i lo -p tcp -m multiport --dports 80,443 -m comment --comment \"web front\" -j ACCEPT",
                "-A open_ports -s 198.18.0.0/16 -p tcp -m multiport --dports 80,443 -m comment --comment \"web front\" -j ACCEPT",
                "-A open_ports -p udp -m multiport --dports 53 -j ACCEPT",
                "-A open_ports -p tcp -m multiport --dports 80,443 -j DROP",
                "-A open_ports -p udp -m multiport --dports 53 -j DROP",
                "-A open_ports -j RETURN",
            ]
        );
        let v6 = ipt().chain_lines(&set, Family::V6);
        assert!(v6.contains(&"-A open_ports -s 2001:db8::/32 -p tcp -m multiport --dports 80,443 -m comment --comment \"web front\" -j ACCEPT".to_string()));
    }

    #[test]
    fn multiport_takes_fifteen_slots_a_range_counting_two() {
        let ports: PortSet = (1..=20).map(|p| (p * 10).to_string()).collect::<Vec<_>>().join(",").parse().unwrap();
        assert_eq!(multiport_chunks(&ports).len(), 2);
        assert_eq!(
            multiport_chunks(&"1-2,4-5,7-8,10-11,13-14,16-17,19-20,22".parse().unwrap()),
            ["1:2,4:5,7:8,10:11,13:14,16:17,19:20,22"]
        );
        assert_eq!(multiport_chunks(&"1-2,4-5,7-8,10-11,13-14,16-17,19-20,22-23".parse().unwrap()).len(), 2);
    }

    #[test]
    fn only_the_own_chain_and_hook_are_read() {
        let saved = "*filter\n:INPUT DROP [0:0]\n:DOCKER - [0:0]\n:open_ports - [0:0]\n-A INPUT -j open_ports\n\
                     -A INPUT -j DOCKER\n-A DOCKER -s 1.2.3.4/32 -j ACCEPT\n-A open_ports -j RETURN\n-A open_ports_x -j RETURN\nCOMMIT\n";
        let state = parse_save(saved, "open_ports", "INPUT");
        assert_eq!(
            state,
            FamilyState {
                chain_exists: true,
                lines: vec!["-A open_ports -j RETURN".into()],
                hooks: 1,
                hook_chain_exists: true
            }
        );
    }

    #[test]
    fn scripts_insert_the_hook_once_and_undo_restores() {
        let now = FamilyState { hook_chain_exists: true, ..FamilyState::default() };
        let want = ipt().desired_family(Some(&Ruleset::default()), Family::V4);
        let script = ipt().script(&now, &want);
        assert_eq!(
            script,
            "*filter\n:open_ports - [0:0]\n-A open_ports -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A open_ports -j RETURN\n-I INPUT 1 -j open_ports\nCOMMIT\n"
        );
        assert_eq!(
            ipt().script(&want, &now),
            "*filter\n-D INPUT -j open_ports\n:open_ports - [0:0]\n-X open_ports\nCOMMIT\n"
        );
    }
}
