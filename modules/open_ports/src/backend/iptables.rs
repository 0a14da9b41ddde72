//! iptables (legacy or `nf_tables` variant, as the host's `iptables -V` says),
//! IPv4 and IPv6: one chain of the module's own per family in the filter
//! table, written whole with `iptables-restore --noflush` (which replaces
//! that chain alone, atomically) and hooked on top of `jump_from` (INPUT),
//! once. With `forward`, a second chain `NAME-fwd` for DNAT'd packets, hooked
//! on top of DOCKER-USER when Docker made that chain (Docker sends forwarded
//! traffic there before its own accepts), else of FORWARD; both chains of a
//! family change in one restore. State is read with `iptables-save -t
//! filter`, every line of which must be understood; of the rules only the
//! module's chains, their marked hooks and other rules that jump to them are
//! kept.

use std::collections::BTreeSet;
use std::fmt::Write;

use portmatrix_portset::{PortRange, PortSet};

use super::owner::{Marker, NotOurs, PREFIX};
use super::{FirewallError, Step};
use crate::options::FORWARD_SUFFIX;
use crate::ruleset::{Proto, Rule, Ruleset};
use crate::source::Family;
use crate::tools::{ToolError, Tools};
pub use portmatrix_netfilter::iptables_text::{Variant, parse_version, save_words};

/// multiport takes at most 15 ports, a range counting as two.
const MULTIPORT_SLOTS: usize = 15;

/// The most rules the module writes into its chain per family. iptables has
/// no sets: every source times every 15-port multiport match is a rule, so
/// rules grow as the product of two lists; 1,000 ports x 1,000 sources are
/// 67,000 rules (applied in 1.5 s on legacy, 4.6 s on nft). Beyond this the
/// memory and time of one run stop being a small multiple of its input.
pub const MAX_RULES: usize = 200_000;

#[derive(Debug, Clone)]
pub struct Iptables {
    tools: Tools,
    name: String,
    marker: Marker,
    hook: String,
    variant: Variant,
    /// Legacy iptables-restore >= 1.6.2 takes the xtables lock with --wait;
    /// the `nf_tables` variant needs no lock (the kernel serialises transactions).
    wait: bool,
    /// Read only tables that are loaded already (see [`Iptables::loaded_only`]).
    only_loaded: bool,
    /// `""` for the host's `iptables-save` and friends, or `-legacy` / `-nft`
    /// for a variant named explicitly (`iptables-legacy-save`).
    suffix: &'static str,
}

/// The module's chains: `Input` (NAME, hooked into `jump_from`) and, with
/// `forward`, `Forward` (NAME-fwd, hooked where Docker and CNI send
/// forwarded traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Input,
    Forward,
}

impl Part {
    pub const ALL: [Part; 2] = [Part::Input, Part::Forward];
}

/// Docker's chain for the user's own rules on forwarded traffic: FORWARD
/// jumps to it before any of Docker's accepts, and Docker never flushes it.
pub const DOCKER_USER: &str = "DOCKER-USER";

/// A marked rule that jumps to one of the module's chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub chain: String,
    /// Whether only hooks of the module (any `name`) come before it in its
    /// chain: then its accepts apply before any rule of others.
    pub on_top: bool,
}

/// What the module owns of one of its chains in one family's filter table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Objects {
    /// The chain's rules as iptables-save prints them (`-A NAME ...`), when
    /// the chain exists and carries the marker.
    pub chain: Option<Vec<String>>,
    pub hooks: Vec<Hook>,
}

/// What is at one of the module's chain names in one family's filter table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainState {
    pub objects: Objects,
    /// A chain of that name that does not carry the marker: someone else's.
    pub foreign: bool,
    /// Rules that are not the module's and jump (or go) to the chain.
    pub foreign_jumps: Vec<String>,
}

/// One family's filter table, as far as the module is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilyState {
    pub input: ChainState,
    pub forward: ChainState,
    /// Every chain of the table (hooks need theirs to exist).
    pub chains: BTreeSet<String>,
    /// Whether FORWARD jumps to DOCKER-USER (as Docker makes it): only then
    /// is that chain where forwarded traffic is judged.
    pub docker_user_used: bool,
    /// Chains of any instance of the module (any `name`): never a `jump_from`.
    pub instance_chains: BTreeSet<String>,
    /// The family's tool that is missing on PATH, when it could not be read.
    pub missing: Option<String>,
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

    fn family_mut(&mut self, family: Family) -> &mut FamilyState {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Whether the module has anything here.
    pub fn exists(&self) -> bool {
        [&self.v4, &self.v6].iter().any(|f| f.has_objects())
    }
}

impl FamilyState {
    pub fn part(&self, part: Part) -> &ChainState {
        match part {
            Part::Input => &self.input,
            Part::Forward => &self.forward,
        }
    }

    fn part_mut(&mut self, part: Part) -> &mut ChainState {
        match part {
            Part::Input => &mut self.input,
            Part::Forward => &mut self.forward,
        }
    }

    /// Whether the module has anything in this family.
    fn has_objects(&self) -> bool {
        Part::ALL.iter().any(|p| self.part(*p).objects != Objects::default())
    }

    /// Whether the module's objects differ between two states of the family.
    fn objects_differ(&self, other: &FamilyState) -> bool {
        Part::ALL.iter().any(|p| self.part(*p).objects != other.part(*p).objects)
    }
}

fn family_label(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

impl Iptables {
    /// The host's iptables, as `iptables -V` describes it.
    pub fn detect(tools: &Tools, name: &str, jump_from: Option<&str>) -> Result<Iptables, FirewallError> {
        let version = tools.run("iptables", &["-V"], None)?;
        let (variant, wait) = parse_version(&version).ok_or_else(|| FirewallError::Unreadable {
            command: "iptables -V".into(),
            detail: format!("{:?} is not an iptables version line", version.trim()),
        })?;
        Ok(Iptables {
            tools: tools.clone(),
            name: name.to_string(),
            marker: Marker::new(name),
            hook: jump_from.unwrap_or("INPUT").to_string(),
            variant,
            wait,
            only_loaded: false,
            suffix: "",
        })
    }

    /// The variant that is not the host's, by its explicit tool names
    /// (`iptables-legacy-save`), when they are on PATH: for a copy of the
    /// module's chain left from before the host switched variants. Only ever
    /// reads what is loaded.
    pub fn other_variant(&self) -> Option<Iptables> {
        let (variant, suffix) = match self.variant {
            Variant::Nft => (Variant::Legacy, "-legacy"),
            Variant::Legacy => (Variant::Nft, "-nft"),
        };
        let other = Iptables { variant, suffix, wait: variant == Variant::Legacy, only_loaded: true, ..self.clone() };
        self.tools.has(&other.save_tool(Family::V4)).then_some(other)
    }

    fn save_tool(&self, family: Family) -> String {
        format!("{}{}-save", family_label(family), self.suffix)
    }

    fn restore_tool(&self, family: Family) -> String {
        format!("{}{}-restore", family_label(family), self.suffix)
    }

    /// For looking only (another backend runs, or `auto` is choosing): an
    /// iptables-legacy table that is not loaded is not loaded to be read
    /// (legacy tables are kernel modules, loaded by the first call) and
    /// reads as empty.
    pub fn loaded_only(self) -> Iptables {
        Iptables { only_loaded: true, ..self }
    }

    /// Whether a legacy filter table would have to be loaded to be read.
    /// `/proc/net/ip_tables_names` lists the loaded ones of this namespace.
    fn legacy_filter_missing(&self, family: Family) -> bool {
        let names = match family {
            Family::V4 => "/proc/net/ip_tables_names",
            Family::V6 => "/proc/net/ip6_tables_names",
        };
        self.variant == Variant::Legacy
            && !std::fs::read_to_string(names).is_ok_and(|t| t.lines().any(|l| l == "filter"))
    }

    /// One family's filter table; a family whose tool is missing reads as
    /// empty and says so (IPv4 still gets removed by `absent`, and `present`
    /// refuses to write one family only).
    fn read_family(&self, family: Family) -> Result<FamilyState, FirewallError> {
        let tool = self.save_tool(family);
        if !self.tools.has(&tool) {
            return Ok(FamilyState { missing: Some(tool), ..FamilyState::default() });
        }
        let saved = self.tools.run(&tool, &["-t", "filter"], None)?;
        parse_save(&saved, &self.name, &self.marker)
            .map_err(|detail| FirewallError::Unreadable { command: format!("{tool} -t filter"), detail })
    }

    /// How many rules [`Iptables::chain_lines`] and [`Iptables::forward_lines`]
    /// would write, without writing them.
    fn rule_count(ruleset: &Ruleset, family: Family) -> usize {
        let rules = || ruleset.rules.iter().filter(|r| r.applies_to(family));
        let accepts: usize = rules().map(|r| source_matches(r, family).len() * multiport_groups(&r.ports).len()).sum();
        let drops: usize = Proto::ALL.iter().map(|p| multiport_groups(&ruleset.enforced(*p)).len()).sum();
        let forward = if ruleset.forward {
            let accepts: usize = rules().map(|r| forward_sources(r, family).len() * r.ports.ranges().len()).sum();
            let drops: usize = Proto::ALL.iter().map(|p| ruleset.enforced(*p).ranges().len()).sum();
            accepts + drops + 2
        } else {
            0
        };
        accepts + drops + 2 + forward
    }

    /// The chain's rules for `family`, exactly as iptables-save prints them;
    /// the first carries the marker.
    pub fn chain_lines(&self, ruleset: &Ruleset, family: Family) -> Vec<String> {
        let n = &self.name;
        let mut lines = vec![marker_rule(n, &self.marker, Part::Input)];
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

    /// The forward chain's rules for `family`, exactly as iptables-save
    /// prints them. Only DNAT'd packets reach the chain (its hook matches
    /// `--ctstate DNAT`); established flows return at once (their replies
    /// carry the same original port and must pass), so each rule judges the
    /// first packet of a connection by its original destination port
    /// (`--ctorigdstport`, one rule per range: conntrack has no port lists).
    /// `loopback` sources do not apply: a forwarded packet never arrives on lo.
    pub fn forward_lines(&self, ruleset: &Ruleset, family: Family) -> Vec<String> {
        let n = chain_name(&self.name, Part::Forward);
        let mut lines = vec![marker_rule(&self.name, &self.marker, Part::Forward)];
        for rule in ruleset.rules.iter().filter(|r| r.applies_to(family)) {
            let comment = rule.comment.as_deref().map(comment_match).unwrap_or_default();
            for source in forward_sources(rule, family) {
                for range in rule.ports.ranges() {
                    lines.push(format!(
                        "-A {n}{source} -p {} -m conntrack --ctorigdstport {}{comment} -j ACCEPT",
                        rule.proto,
                        multiport_range(*range)
                    ));
                }
            }
        }
        for proto in Proto::ALL {
            for range in ruleset.enforced(proto).ranges() {
                lines.push(format!(
                    "-A {n} -p {proto} -m conntrack --ctorigdstport {} -j DROP",
                    multiport_range(*range)
                ));
            }
        }
        lines.push(format!("-A {n} -j RETURN"));
        lines
    }

    fn describe_family(&self, family: Family, state: &FamilyState) -> String {
        if !state.has_objects() {
            return String::new();
        }
        let mut out = format!("# {}: filter table\n", family_label(family));
        for part in Part::ALL {
            let objects = &state.part(part).objects;
            for hook in &objects.hooks {
                // Where a hook sits matters: below others' rules it comes too late.
                let place = if hook.on_top { "1".to_string() } else { "(below rules of others)".to_string() };
                let _ = writeln!(out, "-I {} {place} {}", hook.chain, hook_spec(&self.name, &self.marker, part));
            }
            if let Some(lines) = &objects.chain {
                let _ = writeln!(out, ":{}", chain_name(&self.name, part));
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
            }
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

    /// A restore script that makes the family's objects `to`, from `from`,
    /// for both chains in one transaction: the old hooks out, each chain
    /// declared (which empties it) and filled, the new hooks in on top; or a
    /// chain no longer wanted emptied and deleted.
    fn script(&self, from: &FamilyState, to: &FamilyState) -> String {
        let mut out = String::from("*filter\n");
        let parts = || Part::ALL.into_iter().map(|p| (p, &from.part(p).objects, &to.part(p).objects));
        for (part, from, to) in parts().filter(|(_, f, t)| f != t) {
            let spec = hook_spec(&self.name, &self.marker, part);
            for hook in &from.hooks {
                let _ = writeln!(out, "-D {} {spec}", hook.chain);
            }
            if let Some(lines) = &to.chain {
                let _ = writeln!(out, ":{} - [0:0]", chain_name(&self.name, part));
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
            }
            for hook in &to.hooks {
                let _ = writeln!(out, "-I {} 1 {spec}", hook.chain);
            }
        }
        for (part, _, _) in parts().filter(|(_, f, t)| f.chain.is_some() && t.chain.is_none()) {
            let n = chain_name(&self.name, part);
            let _ = writeln!(out, ":{n} - [0:0]\n-X {n}");
        }
        out.push_str("COMMIT\n");
        out
    }

    fn target_family(
        &self,
        family: Family,
        now: &FamilyState,
        desired: Option<&Ruleset>,
    ) -> Result<FamilyState, FirewallError> {
        let mut target = now.clone();
        target.input.objects = self.target_input(family, now, desired)?;
        target.forward.objects = self.target_forward(family, now, desired.filter(|r| r.forward))?;
        Ok(target)
    }

    fn target_input(
        &self,
        family: Family,
        now: &FamilyState,
        desired: Option<&Ruleset>,
    ) -> Result<Objects, FirewallError> {
        Ok(if let Some(ruleset) = desired {
            if let Some(tool) = &now.missing {
                return Err(ToolError::Missing { tool: tool.clone(), path: self.tools.path() }.into());
            }
            let count = Self::rule_count(ruleset, family);
            if count > MAX_RULES {
                return Err(FirewallError::TooManyRules { table: family_label(family), count, max: MAX_RULES });
            }
            if now.input.foreign {
                return Err(self.not_ours(family, Part::Input).into());
            }
            if now.instance_chains.contains(&self.hook) {
                return Err(FirewallError::JumpFrom(format!(
                    "names chain {}, a chain of open_ports itself: hook into a chain of the host's own instead",
                    self.hook
                )));
            }
            if !now.chains.contains(&self.hook) {
                return Err(FirewallError::JumpFrom(format!(
                    "chain {} does not exist in the {} filter table",
                    self.hook,
                    family_label(family)
                )));
            }
            Objects {
                chain: Some(self.chain_lines(ruleset, family)),
                hooks: vec![Hook { chain: self.hook.clone(), on_top: true }],
            }
        } else {
            self.unreferenced(family, now, Part::Input)?;
            Objects::default()
        })
    }

    /// The forward chain and its hook: on top of DOCKER-USER when the family
    /// has that chain, else of FORWARD (`desired` is `None` without `forward`).
    fn target_forward(
        &self,
        family: Family,
        now: &FamilyState,
        desired: Option<&Ruleset>,
    ) -> Result<Objects, FirewallError> {
        let Some(ruleset) = desired else {
            self.unreferenced(family, now, Part::Forward)?;
            return Ok(Objects::default());
        };
        if now.forward.foreign {
            return Err(self.not_ours(family, Part::Forward).into());
        }
        let hook = if now.docker_user_used { DOCKER_USER } else { "FORWARD" };
        Ok(Objects {
            chain: Some(self.forward_lines(ruleset, family)),
            hooks: vec![Hook { chain: hook.to_string(), on_top: true }],
        })
    }

    /// Refuses to remove a chain of the module that rules of others still jump to.
    fn unreferenced(&self, family: Family, now: &FamilyState, part: Part) -> Result<(), FirewallError> {
        let chain = now.part(part);
        if chain.objects.chain.is_some() && !chain.foreign_jumps.is_empty() {
            return Err(FirewallError::StillReferenced {
                object: self.not_ours(family, part).object,
                by: chain.foreign_jumps.clone(),
            });
        }
        Ok(())
    }

    fn not_ours(&self, family: Family, part: Part) -> NotOurs {
        NotOurs {
            object: format!("chain {} of the {} filter table", chain_name(&self.name, part), family_label(family)),
            marker: self.marker.clone(),
            name: self.name.clone(),
            hint: String::new(),
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
        let mut state = State::default();
        for family in Family::ALL {
            if !(self.only_loaded && self.legacy_filter_missing(family)) {
                *state.family_mut(family) = self.read_family(family)?;
            }
        }
        Ok(state)
    }

    fn target(&self, now: &State, desired: Option<&Ruleset>) -> Result<State, FirewallError> {
        Ok(State {
            v4: self.target_family(Family::V4, &now.v4, desired)?,
            v6: self.target_family(Family::V6, &now.v6, desired)?,
        })
    }

    fn steps(&self, from: &State, to: &State) -> Vec<Step> {
        Family::ALL
            .into_iter()
            .filter(|f| from.family(*f).objects_differ(to.family(*f)))
            .map(|f| Step {
                tool: self.restore_tool(f),
                args: self.restore_args(),
                input: self.script(from.family(f), to.family(f)),
            })
            .collect()
    }

    fn describe(&self, state: &State) -> String {
        Family::ALL.iter().map(|f| self.describe_family(*f, state.family(*f))).collect()
    }

    fn unchecked(&self, now: &State) -> Vec<String> {
        Family::ALL
            .into_iter()
            .filter_map(|family| {
                let tool = now.family(family).missing.as_ref()?;
                Some(format!(
                    "the {} filter table was not checked for {}: {tool} was not found on PATH ({})",
                    family_label(family),
                    self.name,
                    self.tools.path()
                ))
            })
            .collect()
    }

    fn warnings(&self, now: &State, desired: Option<&Ruleset>) -> Vec<String> {
        let mut warnings = self.unchecked(now);
        if desired.is_none() {
            for family in Family::ALL {
                for part in Part::ALL.into_iter().filter(|p| now.family(family).part(*p).foreign) {
                    warnings.push(format!(
                        "{} carries no marker of this module and was left as it is",
                        self.not_ours(family, part).object
                    ));
                }
            }
        }
        warnings
    }
}

/// The module's part of `iptables-save -t filter` output. Every line must be
/// one iptables-save writes (a comment, the table, a chain, a rule, COMMIT):
/// anything else means the output cannot be trusted, and is named.
pub fn parse_save(saved: &str, name: &str, marker: &Marker) -> Result<FamilyState, String> {
    let names = Part::ALL.map(|p| chain_name(name, p));
    let specs = Part::ALL.map(|p| hook_spec(name, marker, p));
    let module_hook = format!("-m comment --comment \"{PREFIX}");
    let instance_rule = format!("-m conntrack --ctstate RELATED,ESTABLISHED {module_hook}");
    let mut state = FamilyState::default();
    let mut own_lines: [Vec<String>; 2] = Default::default();
    // Per chain: whether a rule of others has been seen yet.
    let mut others_seen: BTreeSet<String> = BTreeSet::new();
    let (mut table, mut committed) = (false, false);
    for line in saved.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let unexpected = || format!("unexpected line {line:?}");
        if line == "*filter" && !table {
            table = true;
        } else if line == "COMMIT" && table && !committed {
            committed = true;
        } else if let Some(declaration) = line.strip_prefix(':').filter(|_| table && !committed) {
            let [chain, _policy, _counters] = declaration.split(' ').collect::<Vec<_>>()[..] else {
                return Err(unexpected());
            };
            state.chains.insert(chain.to_string());
        } else if let Some(rule) = line.strip_prefix("-A ").filter(|_| table && !committed) {
            let (chain, spec) = rule.split_once(' ').ok_or_else(unexpected)?;
            if let Some(i) = names.iter().position(|n| n == chain) {
                own_lines[i].push(line.to_string());
            } else if let Some(i) = specs.iter().position(|s| s == spec) {
                let hook = Hook { chain: chain.to_string(), on_top: !others_seen.contains(chain) };
                state.part_mut(Part::ALL[i]).objects.hooks.push(hook);
            } else if let Some(i) = names.iter().position(|n| jumps_to(spec, n)) {
                state.part_mut(Part::ALL[i]).foreign_jumps.push(line.to_string());
            }
            if !spec.starts_with(&module_hook) {
                others_seen.insert(chain.to_string());
            }
            if spec.starts_with(&instance_rule) {
                state.instance_chains.insert(chain.to_string());
            }
            if chain == "FORWARD" && jumps_to(spec, DOCKER_USER) {
                state.docker_user_used = true;
            }
        } else {
            return Err(unexpected());
        }
    }
    if !committed {
        return Err("no `*filter` table with its COMMIT line".into());
    }
    for (i, lines) in own_lines.into_iter().enumerate() {
        let part = Part::ALL[i];
        if state.chains.contains(&names[i]) {
            // The marker rule anywhere in the chain: a rule someone put above
            // it does not make the chain someone else's.
            if lines.contains(&marker_rule(name, marker, part)) {
                state.part_mut(part).objects.chain = Some(lines);
            } else {
                state.part_mut(part).foreign = true;
            }
        }
    }
    Ok(state)
}

/// The chain of a part: NAME, or NAME-fwd.
fn chain_name(name: &str, part: Part) -> String {
    match part {
        Part::Input => name.to_string(),
        Part::Forward => format!("{name}{FORWARD_SUFFIX}"),
    }
}

/// A chain's first rule, which carries its marker, as iptables-save prints
/// it: written and looked for in this one form. The input chain accepts
/// established flows; the forward chain returns them to the host's rules.
fn marker_rule(name: &str, marker: &Marker, part: Part) -> String {
    let verdict = match part {
        Part::Input => "ACCEPT",
        Part::Forward => "RETURN",
    };
    format!(
        "-A {} -m conntrack --ctstate RELATED,ESTABLISHED{} -j {verdict}",
        chain_name(name, part),
        comment_match(marker.text())
    )
}

/// A hook rule's spec (after `-A CHAIN `), as iptables-save prints it: the
/// marker first (so every hook of the module starts alike), then, for the
/// forward chain, only DNAT'd packets.
fn hook_spec(name: &str, marker: &Marker, part: Part) -> String {
    let only = match part {
        Part::Input => "",
        Part::Forward => " -m conntrack --ctstate DNAT",
    };
    format!("{}{only} -j {}", comment_match(marker.text()).trim_start(), chain_name(name, part))
}

/// Whether a rule's spec has `-j NAME` or `-g NAME` (as options: words
/// inside a quoted comment are not options).
fn jumps_to(spec: &str, name: &str) -> bool {
    let words = save_words(spec);
    words.windows(2).any(|w| matches!(w[0].as_str(), "-j" | "-g" | "--jump" | "--goto") && w[1] == name)
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

/// The source part of each forward accept: ` -s CIDR`, or nothing for any
/// (never `-i lo`: no forwarded packet arrives on loopback).
fn forward_sources(rule: &Rule, family: Family) -> Vec<String> {
    source_matches(rule, family).into_iter().filter(|s| s != " -i lo").collect()
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

/// The ports cut into multiport matches: at most 15 slots each, a range
/// counting as two.
fn multiport_groups(ports: &PortSet) -> Vec<&[PortRange]> {
    let ranges = ports.ranges();
    let mut groups = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (index, range) in ranges.iter().enumerate() {
        let cost = if range.start() == range.end() { 1 } else { 2 };
        if used + cost > MULTIPORT_SLOTS {
            groups.push(&ranges[start..index]);
            (start, used) = (index, 0);
        }
        used += cost;
    }
    if start < ranges.len() {
        groups.push(&ranges[start..]);
    }
    groups
}

/// The ports in multiport's `A,B:C` form, one string per match.
fn multiport_chunks(ports: &PortSet) -> Vec<String> {
    multiport_groups(ports)
        .into_iter()
        .map(|group| group.iter().map(|r| multiport_range(*r)).collect::<Vec<_>>().join(","))
        .collect()
}

fn multiport_range(range: PortRange) -> String {
    if range.start() == range.end() { range.start().to_string() } else { format!("{}:{}", range.start(), range.end()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Firewall;
    use crate::ruleset::Sources;

    fn ipt() -> Iptables {
        Iptables {
            tools: Tools::new(None, std::time::Duration::from_secs(5)),
            name: "open_ports".into(),
            marker: Marker::new("open_ports"),
            hook: "INPUT".into(),
            variant: Variant::Nft,
            wait: false,
            only_loaded: false,
            suffix: "",
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

    const MARKED: &str = "-A open_ports -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portmatrix open_ports open_ports\" -j ACCEPT";
    const HOOK: &str = "-A INPUT -m comment --comment \"portmatrix open_ports open_ports\" -j open_ports";

    fn save(body: &str) -> String {
        format!(
            "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n{body}COMMIT\n# Completed\n"
        )
    }

    #[test]
    fn comments_are_quoted_as_iptables_save_prints_them() {
        assert_eq!(comment_match("Admin_Router-1"), " -m comment --comment Admin_Router-1");
        assert_eq!(comment_match("zk/exhibitor"), " -m comment --comment \"zk/exhibitor\"");
        assert_eq!(comment_match("a b"), " -m comment --comment \"a b\"");
    }

    #[test]
    fn versions_tell_variant_and_lock_support_and_garbage_is_no_version() {
        assert_eq!(parse_version("iptables v1.8.9 (nf_tables)\n"), Some((Variant::Nft, false)));
        assert_eq!(parse_version("iptables v1.8.9 (legacy)\n"), Some((Variant::Legacy, true)));
        assert_eq!(parse_version("iptables v1.4.21\n"), Some((Variant::Legacy, false)));
        assert_eq!(parse_version("iptables v1.6.2\n"), Some((Variant::Legacy, true)));
        for garbage in ["", "garbage", "iptables vX.Y (nf_tables)", "iptables v1.8.9 (something)", "nft v1.0.6"] {
            assert_eq!(parse_version(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn chain_lines_follow_the_documented_order_per_family() {
        let set = Ruleset {
            rules: vec![
                rule("80,443", Proto::Tcp, &["198.18.0.0/16", "2001:db8::/32", "loopback"], Some("web front")),
                rule("53", Proto::Udp, &["any"], None),
            ],
            enforce: true,
            forward: true,
        };
        assert_eq!(
            ipt().chain_lines(&set, Family::V4),
            [
                MARKED,
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
        // The forward chain: one rule per range, no loopback, established returned.
        assert_eq!(
            ipt().forward_lines(&set, Family::V4),
            [
                "-A open_ports-fwd -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"portmatrix open_ports open_ports\" -j RETURN",
                "-A open_ports-fwd -s 198.18.0.0/16 -p tcp -m conntrack --ctorigdstport 80 -m comment --comment \"web front\" -j ACCEPT",
                "-A open_ports-fwd -s 198.18.0.0/16 -p tcp -m conntrack --ctorigdstport 443 -m comment --comment \"web front\" -j ACCEPT",
                "-A open_ports-fwd -p udp -m conntrack --ctorigdstport 53 -j ACCEPT",
                "-A open_ports-fwd -p tcp -m conntrack --ctorigdstport 80 -j DROP",
                "-A open_ports-fwd -p tcp -m conntrack --ctorigdstport 443 -j DROP",
                "-A open_ports-fwd -p udp -m conntrack --ctorigdstport 53 -j DROP",
                "-A open_ports-fwd -j RETURN",
            ]
        );
        assert_eq!(Iptables::rule_count(&set, Family::V4), 7 + 8);
    }

    #[test]
    fn the_forward_chain_hooks_into_docker_user_when_docker_made_it() {
        let set =
            Ruleset { rules: vec![rule("8080", Proto::Tcp, &["198.18.0.0/16"], None)], enforce: true, forward: true };
        let chains = |names: &[&str]| FamilyState {
            chains: names.iter().map(ToString::to_string).collect(),
            ..FamilyState::default()
        };
        let plain = chains(&["INPUT", "FORWARD"]);
        let docker = FamilyState { docker_user_used: true, ..chains(&["INPUT", "FORWARD", "DOCKER-USER"]) };
        let now = State { v4: plain.clone(), v6: plain };
        let want = ipt().target(&now, Some(&set)).unwrap();
        assert_eq!(want.v4.forward.objects.hooks, [Hook { chain: "FORWARD".into(), on_top: true }]);
        let script = &ipt().steps(&now, &want)[0].input;
        assert!(script.contains("\n-I FORWARD 1 -m comment --comment \"portmatrix open_ports open_ports\" -m conntrack --ctstate DNAT -j open_ports-fwd\n"), "{script}");
        // Docker started since: the hook moves to DOCKER-USER in one restore.
        // A DOCKER-USER chain that FORWARD does not jump to judges nothing.
        let unused =
            State { v4: FamilyState { chains: docker.chains.clone(), ..want.v4.clone() }, v6: want.v6.clone() };
        assert!(ipt().steps(&unused, &ipt().target(&unused, Some(&set)).unwrap()).is_empty(), "stays in FORWARD");
        let later = State {
            v4: FamilyState { chains: docker.chains.clone(), docker_user_used: true, ..want.v4.clone() },
            v6: want.v6.clone(),
        };
        let moved = ipt().target(&later, Some(&set)).unwrap();
        assert_eq!(moved.v4.forward.objects.hooks, [Hook { chain: "DOCKER-USER".into(), on_top: true }]);
        let steps = ipt().steps(&later, &moved);
        assert_eq!(steps.len(), 1, "only IPv4 has DOCKER-USER");
        assert!(
            steps[0].input.contains("-D FORWARD -m comment") && steps[0].input.contains("-I DOCKER-USER 1 -m comment")
        );
        // forward turned off: the chain and its hook go, the input chain stays.
        let off = Ruleset { forward: false, ..set };
        let back = ipt().target(&moved, Some(&off)).unwrap();
        let script = &ipt().steps(&moved, &back)[0].input;
        assert!(
            script.contains("-D DOCKER-USER -m comment")
                && script.ends_with(":open_ports-fwd - [0:0]\n-X open_ports-fwd\nCOMMIT\n"),
            "{script}"
        );
        assert!(back.v4.input.objects.chain.is_some());
    }

    #[test]
    fn a_forward_chain_read_back_is_the_modules_and_a_users_of_that_name_is_not() {
        let marker = Marker::new("open_ports");
        let lines = ipt().forward_lines(
            &Ruleset { rules: vec![rule("8080", Proto::Tcp, &["any"], None)], enforce: false, forward: true },
            Family::V4,
        );
        let hook = "-A FORWARD -m comment --comment \"portmatrix open_ports open_ports\" -m conntrack --ctstate DNAT -j open_ports-fwd";
        let text = save(&format!(":open_ports-fwd - [0:0]\n{hook}\n{}\n", lines.join("\n")));
        let state = parse_save(&text, "open_ports", &marker).unwrap();
        assert_eq!(state.forward.objects.chain.as_deref(), Some(&lines[..]));
        assert_eq!(state.forward.objects.hooks, [Hook { chain: "FORWARD".into(), on_top: true }]);
        assert!(state.instance_chains.contains("open_ports-fwd"), "never a jump_from");
        let users = save(":open_ports-fwd - [0:0]\n-A FORWARD -j open_ports-fwd\n-A open_ports-fwd -j DROP\n");
        let state = parse_save(&users, "open_ports", &marker).unwrap();
        assert!(state.forward.foreign && state.forward.foreign_jumps == ["-A FORWARD -j open_ports-fwd"]);
        let forward = Ruleset { forward: true, ..Ruleset::default() };
        let err = ipt().target(&State { v4: state.clone(), v6: state }, Some(&forward)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("chain open_ports-fwd of the iptables filter table exists but carries no marker"),
            "{err}"
        );
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
    fn only_marked_objects_are_the_modules() {
        let marker = Marker::new("open_ports");
        let ours = save(&format!(
            ":DOCKER - [0:0]\n:open_ports - [0:0]\n-A INPUT -j DOCKER\n{HOOK}\n-A FORWARD -j open_ports\n\
             {MARKED}\n-A open_ports -j RETURN\n-A open_ports_x -j RETURN\n"
        ));
        let state = parse_save(&ours, "open_ports", &marker).unwrap();
        assert_eq!(state.input.objects.chain, Some(vec![MARKED.to_string(), "-A open_ports -j RETURN".into()]));
        assert_eq!(state.input.objects.hooks, [Hook { chain: "INPUT".into(), on_top: false }], "below DOCKER's jump");
        assert_eq!(state.input.foreign_jumps, ["-A FORWARD -j open_ports"]);
        assert!(!state.input.foreign);

        // A user's chain of the same name, jumped to without the marker.
        let users = save(":open_ports - [0:0]\n-A FORWARD -j open_ports\n-A open_ports -j DROP\n");
        let state = parse_save(&users, "open_ports", &marker).unwrap();
        assert!(state.input.foreign && state.input.objects == Objects::default(), "{state:?}");
        let err = ipt().target(&State { v4: state.clone(), v6: state }, Some(&Ruleset::default())).unwrap_err();
        assert!(
            err.to_string().starts_with("chain open_ports of the iptables filter table exists but carries no marker"),
            "{err}"
        );
        let absent = ipt().target(&State::default(), None).unwrap();
        assert!(ipt().steps(&State::default(), &absent).is_empty(), "absent with nothing of ours: no step");
    }

    #[test]
    fn words_in_a_comment_are_not_options() {
        assert!(!jumps_to(
            "-s 192.0.2.1/32 -m comment --comment \"was: -j open_ports before\" -j ACCEPT",
            "open_ports"
        ));
        assert!(jumps_to("-s 192.0.2.1/32 -m comment --comment \"x \\\" y\" -j open_ports", "open_ports"));
        assert!(jumps_to("-g open_ports", "open_ports") && !jumps_to("-j open_ports_x", "open_ports"));
        assert_eq!(
            save_words("-m comment --comment \"a \\\"b\\\" c\" -j X"),
            ["-m", "comment", "--comment", "a \"b\" c", "-j", "X"]
        );
    }

    #[test]
    fn hooks_of_other_names_may_sit_above_and_it_is_still_on_top() {
        let text = save(&format!(
            "-A INPUT -m comment --comment \"portmatrix open_ports other\" -j other\n{HOOK}\n-A INPUT -j DROP\n"
        ));
        let state = parse_save(&text, "open_ports", &Marker::new("open_ports")).unwrap();
        assert_eq!(state.input.objects.hooks, [Hook { chain: "INPUT".into(), on_top: true }]);
    }

    #[test]
    fn output_that_is_not_iptables_save_is_refused_naming_the_line() {
        let marker = Marker::new("open_ports");
        for (text, detail) in [
            ("", "no `*filter` table"),
            ("garbage\n", "unexpected line \"garbage\""),
            ("*filter\n:INPUT ACCEPT [0:0]\n", "no `*filter` table with its COMMIT"),
            ("*filter\n:INPUT ACCEPT\nCOMMIT\n", "unexpected line \":INPUT ACCEPT\""),
            ("*filter\n-A INPUT\nCOMMIT\n", "unexpected line \"-A INPUT\""),
            ("*filter\nCOMMIT\n*filter\nCOMMIT\n", "unexpected line \"*filter\""),
            ("*nat\nCOMMIT\n", "unexpected line \"*nat\""),
        ] {
            assert!(parse_save(text, "open_ports", &marker).unwrap_err().starts_with(detail), "{text:?}");
        }
    }

    #[test]
    fn scripts_move_hooks_to_the_top_and_remove_only_what_is_marked() {
        let empty = FamilyState { chains: ["INPUT".to_string()].into(), ..FamilyState::default() };
        let now = State { v4: empty.clone(), v6: empty };
        let want = ipt().target(&now, Some(&Ruleset::default())).unwrap();
        let steps = ipt().steps(&now, &want);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0].input,
            format!(
                "*filter\n:open_ports - [0:0]\n{MARKED}\n-A open_ports -j RETURN\n\
                 -I INPUT 1 -m comment --comment \"portmatrix open_ports open_ports\" -j open_ports\nCOMMIT\n"
            )
        );
        let back = ipt().steps(&want, &now);
        assert_eq!(
            back[0].input,
            "*filter\n-D INPUT -m comment --comment \"portmatrix open_ports open_ports\" -j open_ports\n\
             :open_ports - [0:0]\n-X open_ports\nCOMMIT\n"
        );
        let mut sunk = want.clone();
        sunk.v4.input.objects.hooks[0].on_top = false;
        assert_eq!(ipt().steps(&sunk, &want).len(), 1, "a hook below others' rules is moved back on top");
    }
}
