//! Native nftables. The module's objects live in one of two placements:
//! - a table of its own, `inet NAME`, with a base chain `input` on the input
//!   hook (the default);
//! - with `jump_from: FAMILY TABLE CHAIN`, a regular chain `NAME` and sets
//!   `NAME_*` inside that table (a jump cannot cross tables), plus one `jump
//!   NAME` on top of CHAIN.
//!
//! Ports and sources are named sets with the interval flag: one lookup per
//! packet and rule, however long the lists. Everything is applied with one
//! `nft -f` transaction.
//!
//! The module finds its objects by their marker (see [`super::owner`]),
//! wherever they are: a copy left in another placement (after `jump_from`
//! changed) is removed in the same transaction, and a same-named object of
//! someone else is never touched.
//!
//! State is read as JSON (`nft -j list ...`), not as text: the JSON form is a
//! stable, documented schema (libnftables-json(5)), where the text form
//! re-wraps long element lists and names ports and priorities by taste. Set
//! elements are compared as merged intervals, rules as the nft syntax they
//! are rebuilt into, so the same content in another shape is still equal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::nft_json::{ListedRule, Listing, XTABLES};
use super::owner::{Marker, NotOurs, PREFIX};
use super::{FirewallError, Step};
use crate::ruleset::{Proto, Rule, Ruleset};
use crate::source::{Family, format_interval};
use crate::tools::Tools;
use portmatrix_portset::PortSet;

const ESTABLISHED: &str = "ct state established,related accept";
const OWN_CHAIN_HEADER: &str = "type filter hook input priority 0; policy accept;";
/// With `forward`, the own table's second base chain: DNAT'd packets judged
/// by their original destination port (`ct original proto-dst`).
const FORWARD_CHAIN: &str = "forward";
const FORWARD_CHAIN_HEADER: &str = "type filter hook forward priority 0; policy accept;";

/// Where the module's objects are (or are wanted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub family: String,
    pub table: String,
    /// `inet NAME`, the module's own table (else a chain in another table).
    pub own_table: bool,
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

/// A marked `jump NAME` in a chain of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftHook {
    pub chain: String,
    /// Only hooks of the module (any `name`) come before it.
    pub on_top: bool,
}

/// The module's objects in one place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Objects {
    pub sets: BTreeMap<String, NftSet>,
    /// The chain holding the rules (`input` in its own table, else `NAME`):
    /// its base chain header, if any, and its rules.
    pub header: Option<String>,
    pub rules: Vec<String>,
    /// In its own table, the rules of its `forward` base chain, when it has
    /// one (`forward: true`).
    pub forward: Option<Vec<String>>,
    pub hooks: Vec<NftHook>,
    /// In its own table, any other chain (someone added it): as nft syntax,
    /// so that it shows in the diff and the table is rewritten without it.
    pub extra_chains: Vec<String>,
}

/// What stands in the way of the requested placement, or of removing one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Others {
    /// Tables that exist (`FAMILY TABLE`).
    pub tables: BTreeSet<String>,
    /// Chains that exist (`FAMILY TABLE CHAIN`).
    pub chains: BTreeSet<String>,
    /// Same-named objects without the marker (`table inet NAME`, `chain NAME
    /// of table ip filter`).
    pub unmarked: BTreeSet<String>,
    /// Sets of others whose names the module's sets could take, per table
    /// (`NAME_*`; in its own table, none).
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Per table, rules and maps of others that jump to or go to `NAME`,
    /// or use one of its sets.
    pub jumps: BTreeMap<String, Vec<String>>,
    /// Why `jump_from` cannot be used, found when reading its table: it is
    /// the table or chain of an instance of this module, or iptables-nft's.
    pub jump_into: Option<String>,
    /// Input-hook base chains of other tables that drop by default.
    /// `(chain, what it does)`: "drops by default", or ends in a catch-all rule.
    pub dropping_input_chains: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct State {
    pub places: BTreeMap<Place, Objects>,
    /// Per place, the chain and handle of each hook, to delete it by.
    pub handles: BTreeMap<Place, Vec<(String, u64)>>,
    pub others: Others,
}

#[derive(Debug, Clone)]
pub struct Nftables {
    tools: Tools,
    name: String,
    marker: Marker,
    /// Where the module's objects are wanted.
    place: Place,
    /// jump mode: the chain to hook into.
    hook_chain: Option<String>,
}

impl Nftables {
    pub fn new(tools: &Tools, name: &str, jump_from: Option<&str>) -> Result<Nftables, FirewallError> {
        let (place, hook_chain) = match jump_from {
            None => (Place { family: "inet".into(), table: name.into(), own_table: true }, None),
            Some(text) => match text.split_whitespace().collect::<Vec<_>>().as_slice() {
                [family, table, chain] if ["ip", "ip6", "inet"].contains(family) => (
                    Place { family: (*family).to_string(), table: (*table).to_string(), own_table: false },
                    Some((*chain).to_string()),
                ),
                _ => {
                    return Err(FirewallError::JumpFrom(format!(
                        "{text:?} is not an nftables base chain: write `FAMILY TABLE CHAIN` with FAMILY ip, ip6 or \
                         inet, e.g. `inet filter input`"
                    )));
                }
            },
        };
        Ok(Nftables { tools: tools.clone(), name: name.to_string(), marker: Marker::new(name), place, hook_chain })
    }

    fn marker_rule(&self) -> String {
        format!("{ESTABLISHED} comment \"{}\"", self.marker)
    }

    fn hook_rule(&self) -> String {
        format!("jump {} comment \"{}\"", self.name, self.marker)
    }

    /// The chain that holds the rules in `place`.
    fn rule_chain<'a>(&'a self, place: &Place) -> &'a str {
        if place.own_table { "input" } else { &self.name }
    }

    fn set_prefix(&self, place: &Place) -> String {
        if place.own_table { String::new() } else { format!("{}_", self.name) }
    }

    fn families(&self) -> Vec<Family> {
        match self.place.family.as_str() {
            "ip" => vec![Family::V4],
            "ip6" => vec![Family::V6],
            _ => Family::ALL.to_vec(),
        }
    }

    fn list(&self, what: &[&str]) -> Result<Listing, FirewallError> {
        let args: Vec<&str> = ["-j", "list"].iter().chain(what).copied().collect();
        let text = self.tools.run("nft", &args, None)?;
        Listing::parse(&text)
            .map_err(|detail| FirewallError::Unreadable { command: format!("nft {}", args.join(" ")), detail })
    }

    /// The objects of the module in one listed table, or `None` when the
    /// place holds nothing marked. Notes what belongs to others in `others`,
    /// and the hooks' handles in `handles`.
    fn read_place(
        &self,
        place: &Place,
        listing: &Listing,
        others: &mut Others,
        handles: &mut Vec<(String, u64)>,
    ) -> Option<Objects> {
        let table = format!("{} {}", place.family, place.table);
        let requested = *place == self.place;
        let rule_chain = self.rule_chain(place);
        let chain_rules = || listing.rules.iter().filter(|r| r.chain == rule_chain);
        // The marker rule anywhere in the chain: a rule someone put above it
        // does not make the chain someone else's.
        let marked = chain_rules().any(|r: &ListedRule| r.text == self.marker_rule());
        let has_chain = listing.chains.iter().any(|c| c.name == rule_chain);
        let prefix = self.set_prefix(place);
        let mut objects = Objects::default();
        if marked {
            objects.header = listing.chains.iter().find(|c| c.name == rule_chain).and_then(|c| c.header.clone());
            objects.rules = chain_rules().map(|r| r.text.clone()).collect();
            // Its sets: those its rules use (by their expressions, never by
            // a comment's text) and that are named as it names them.
            let used: BTreeSet<&str> = chain_rules().flat_map(|r| r.sets.iter().map(String::as_str)).collect();
            for (name, set) in &listing.sets {
                if place.own_table || (used.contains(name.as_str()) && name.starts_with(&prefix)) {
                    objects.sets.insert(name.clone(), set.clone());
                }
            }
            if place.own_table {
                let forward = listing
                    .chains
                    .iter()
                    .find(|c| c.name == FORWARD_CHAIN && c.header.as_deref() == Some(FORWARD_CHAIN_HEADER));
                objects.forward = forward
                    .map(|c| listing.rules.iter().filter(|r| r.chain == c.name).map(|r| r.text.clone()).collect());
                let known = [Some(rule_chain), forward.map(|c| c.name.as_str())];
                objects.extra_chains = extra_chains(listing, &known);
            }
        } else if requested && place.own_table {
            others.unmarked.insert(format!("table {table}"));
        } else if requested && has_chain {
            others.unmarked.insert(format!("chain {} of table {table}", self.name));
        }
        if !place.own_table {
            let theirs = listing.sets.keys().filter(|n| n.starts_with(&prefix) && !objects.sets.contains_key(*n));
            others.sets.entry(table.clone()).or_default().extend(theirs.cloned());
            let hook = self.hook_rule();
            let mut others_seen = BTreeSet::new();
            for rule in listing.rules.iter().filter(|r| r.chain != self.name) {
                if rule.text == hook {
                    objects
                        .hooks
                        .push(NftHook { chain: rule.chain.clone(), on_top: !others_seen.contains(&rule.chain) });
                    handles.push((rule.chain.clone(), rule.handle));
                } else if rule.jumps_to(&self.name) {
                    others
                        .jumps
                        .entry(table.clone())
                        .or_default()
                        .push(format!("{} in chain {}", rule.text, rule.chain));
                } else if let Some(set) = rule.sets.iter().find(|s| objects.sets.contains_key(*s)) {
                    let user = format!("{} in chain {} (uses set {set})", rule.text, rule.chain);
                    others.jumps.entry(table.clone()).or_default().push(user);
                }
                if !(rule.text.starts_with("jump ") && rule.text.contains(&format!("comment \"{PREFIX}"))) {
                    others_seen.insert(rule.chain.clone());
                }
            }
            for (map, _) in listing.map_targets.iter().filter(|(_, target)| *target == self.name) {
                others.jumps.entry(table.clone()).or_default().push(format!("the verdict map {map}"));
            }
            if requested {
                others.jump_into = self.unusable_jump_table(place, listing);
            }
        }
        (marked || !objects.hooks.is_empty()).then_some(objects)
    }

    /// Why the `jump_from` table cannot take the module's objects: another
    /// instance's own table or chain (its next run would remove them), or the
    /// table iptables-nft keeps (native objects there break `iptables`).
    fn unusable_jump_table(&self, place: &Place, listing: &Listing) -> Option<String> {
        let chain = self.hook_chain.as_deref()?;
        let table = format!("{} {}", place.family, place.table);
        let marked_by = |chain: &str, owner: &str| {
            let rule = format!("{ESTABLISHED} comment \"{PREFIX}{owner}");
            listing.rules.iter().any(|r| r.chain == chain && r.text.starts_with(&rule))
        };
        if place.family == "inet" && marked_by("input", &format!("{}\"", place.table)) {
            return Some(format!(
                "names table {table}, the table of open_ports with name={}: its next run would remove what this \
                 one puts there; hook into a chain of the host's own instead",
                place.table
            ));
        }
        if marked_by(chain, "") {
            return Some(format!(
                "names chain {table} {chain}, a chain of open_ports itself: hook into a chain of the host's own instead"
            ));
        }
        let xtables = ["ip", "ip6"].contains(&place.family.as_str()) && XTABLES.contains(&place.table.as_str());
        let builtin = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"].contains(&chain);
        if listing.has_xt || (xtables && builtin) {
            return Some(format!(
                "names table {table}, which iptables-nft keeps: native nftables objects there break `iptables` \
                 (\"table is incompatible\"); use backend: iptables with jump_from: {chain}"
            ));
        }
        None
    }

    /// What the ruleset becomes in the requested place.
    pub fn desired(&self, ruleset: &Ruleset) -> Objects {
        let place = &self.place;
        let prefix = self.set_prefix(place);
        let families = self.families();
        let mut objects = Objects::default();
        let mut rules = vec![self.marker_rule()];
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
        objects.forward = ruleset.forward.then(|| forward_rules(ruleset, &families));
        objects.rules = rules;
        objects.header = place.own_table.then(|| OWN_CHAIN_HEADER.to_string());
        if let Some(chain) = &self.hook_chain {
            objects.hooks = vec![NftHook { chain: chain.clone(), on_top: true }];
        }
        objects
    }

    /// The objects of one place in nft syntax: the table block as `nft list
    /// table` would show it (own objects only).
    fn describe_place(&self, place: &Place, objects: &Objects) -> String {
        let mut out = format!("table {} {} {{\n", place.family, place.table);
        for (name, set) in &objects.sets {
            let _ = writeln!(out, "\tset {name} {{ {} }}", set_body(set, true));
        }
        let _ = writeln!(out, "\tchain {} {{", self.rule_chain(place));
        if let Some(header) = &objects.header {
            let _ = writeln!(out, "\t\t{header}");
        }
        for rule in &objects.rules {
            let _ = writeln!(out, "\t\t{rule}");
        }
        out.push_str("\t}\n");
        if let Some(rules) = &objects.forward {
            let _ = writeln!(out, "\tchain {FORWARD_CHAIN} {{\n\t\t{FORWARD_CHAIN_HEADER}");
            for rule in rules {
                let _ = writeln!(out, "\t\t{rule}");
            }
            out.push_str("\t}\n");
        }
        for chain in &objects.extra_chains {
            out.push_str(chain);
        }
        for hook in &objects.hooks {
            let _ = writeln!(out, "\tchain {} {{", hook.chain);
            if !hook.on_top {
                out.push_str("\t\t# below rules of others:\n");
            }
            let _ = writeln!(out, "\t\t{}\n\t}}", self.hook_rule());
        }
        out.push_str("}\n");
        out
    }

    /// nft commands that turn `from` into `to` in one place.
    fn place_script(
        &self,
        place: &Place,
        from: Option<&Objects>,
        to: Option<&Objects>,
        handles: &[(String, u64)],
    ) -> String {
        let (f, t) = (&place.family, &place.table);
        let mut out = String::new();
        if place.own_table {
            match to {
                // Create-then-delete makes the delete valid on a first run;
                // all of it is one transaction.
                Some(want) => {
                    let _ = writeln!(out, "table {f} {t}\ndelete table {f} {t}");
                    out.push_str(&self.describe_place(place, want));
                }
                None => {
                    let _ = writeln!(out, "delete table {f} {t}");
                }
            }
            return out;
        }
        let n = &self.name;
        for (chain, handle) in handles {
            let _ = writeln!(out, "delete rule {f} {t} {chain} handle {handle}");
        }
        let old_sets = from.map(|o| &o.sets);
        if let Some(want) = to {
            let _ = writeln!(out, "add chain {f} {t} {n}\nflush chain {f} {t} {n}");
            for (name, set) in old_sets.into_iter().flatten() {
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
            for rule in &want.rules {
                let _ = writeln!(out, "add rule {f} {t} {n} {rule}");
            }
            for hook in &want.hooks {
                let _ = writeln!(out, "insert rule {f} {t} {} {}", hook.chain, self.hook_rule());
            }
        } else {
            if from.is_some_and(|o| !o.rules.is_empty()) {
                let _ = writeln!(out, "flush chain {f} {t} {n}\ndelete chain {f} {t} {n}");
            }
            for name in old_sets.into_iter().flat_map(BTreeMap::keys) {
                let _ = writeln!(out, "delete set {f} {t} {name}");
            }
        }
        out
    }

    /// Whether `name` reads as a name to this host's nft: its keywords
    /// (drop, counter, meta, ...) do not, and differ between versions, so nft
    /// itself is asked, in check mode (`-c`: nothing is applied).
    fn check_name(&self) -> Result<(), FirewallError> {
        match self.tools.run("nft", &["-c", "-f", "-"], Some(&format!("table inet {}\n", self.name))) {
            Ok(_) => Ok(()),
            Err(crate::tools::ToolError::Failed { stderr, .. }) if stderr.contains("syntax error") => {
                Err(FirewallError::NftName {
                    name: self.name.clone(),
                    detail: format!("this host's nft reads it as a keyword ({stderr}); pick another name"),
                })
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl super::Firewall for Nftables {
    type State = State;

    fn label(&self) -> String {
        "nftables".into()
    }

    /// Lists every chain, then reads each table that may hold the module's
    /// objects: `inet NAME`, every table with a chain called NAME, and the
    /// table `jump_from` names.
    fn read(&self) -> Result<State, FirewallError> {
        let chains = self.list(&["chains"])?;
        let mut state = State::default();
        let mut places = BTreeSet::new();
        for chain in &chains.chains {
            state.others.tables.insert(format!("{} {}", chain.family, chain.table));
            state.others.chains.insert(listed_chain(&chain.family, &chain.table, &chain.name));
            if chain.family == "inet" && chain.table == self.name {
                places.insert(Place { family: chain.family.clone(), table: chain.table.clone(), own_table: true });
            } else if chain.name == self.name {
                places.insert(Place { family: chain.family.clone(), table: chain.table.clone(), own_table: false });
            }
            let own = chain.family == self.place.family && chain.table == self.place.table;
            if chain.hook.as_deref() == Some("input") && !own && self.place.own_table {
                let name = listed_chain(&chain.family, &chain.table, &chain.name);
                if chain.policy.as_deref() == Some("drop") {
                    state.others.dropping_input_chains.push((name, "drops by default".into()));
                } else if let Some(last) = self.list(&["chain", &chain.family, &chain.table, &chain.name])?.rules.last()
                    && last.catch_all.is_some()
                {
                    let what = format!("ends in the catch-all rule `{}` (handle {})", last.text, last.handle);
                    state.others.dropping_input_chains.push((name, what));
                }
            }
        }
        // An own table with no chain at all is still a same-named table.
        for table in self.list(&["tables"])?.tables {
            state.others.tables.insert(format!("{} {}", table.0, table.1));
            if table.0 == "inet" && table.1 == self.name {
                places.insert(Place { family: table.0.clone(), table: table.1.clone(), own_table: true });
            }
        }
        if state.others.tables.contains(&format!("{} {}", self.place.family, self.place.table)) {
            places.insert(self.place.clone());
        }
        for place in places {
            let listing = self.list(&["table", &place.family, &place.table])?;
            let mut handles = Vec::new();
            if let Some(objects) = self.read_place(&place, &listing, &mut state.others, &mut handles) {
                state.handles.insert(place.clone(), handles);
                state.places.insert(place, objects);
            }
        }
        Ok(state)
    }

    fn target(&self, now: &State, desired: Option<&Ruleset>) -> Result<State, FirewallError> {
        let mut target = State { places: BTreeMap::new(), handles: BTreeMap::new(), others: now.others.clone() };
        if let Some(ruleset) = desired {
            self.check_name()?;
            let place = &self.place;
            let table = format!("{} {}", place.family, place.table);
            if let Some(chain) = &self.hook_chain {
                if ruleset.forward {
                    return Err(FirewallError::JumpFrom(format!(
                        "{} {} {chain} cannot be used with forward: true: the rules for forwarded packets need a \
                         forward base chain, which only the module's own table gives it; leave jump_from out, or \
                         run open_ports twice (with jump_from for input, and a second name with forward: true)",
                        place.family, place.table
                    )));
                }
                let hook_chain = listed_chain(&place.family, &place.table, chain);
                if !now.others.chains.contains(&hook_chain) {
                    return Err(FirewallError::JumpFrom(format!(
                        "chain {hook_chain} does not exist: name an existing base chain"
                    )));
                }
                if let Some(why) = &now.others.jump_into {
                    return Err(FirewallError::JumpFrom(why.clone()));
                }
            }
            let want = self.desired(ruleset);
            let same_named = if place.own_table {
                format!("table {table}")
            } else {
                format!("chain {} of table {table}", self.name)
            };
            let taken_set =
                now.others.sets.get(&table).and_then(|theirs| want.sets.keys().find(|s| theirs.contains(*s)));
            let collision = if now.others.unmarked.contains(&same_named) {
                Some(same_named)
            } else {
                taken_set.map(|set| format!("set {set} of table {table}"))
            };
            if let Some(object) = collision {
                return Err(NotOurs {
                    object,
                    marker: self.marker.clone(),
                    name: self.name.clone(),
                    hint: if place.own_table {
                        String::new()
                    } else {
                        format!(" (the module names its chain and its sets `{}_*` after it)", self.name)
                    },
                }
                .into());
            }
            target.places.insert(place.clone(), want);
        }
        for (place, _) in now.places.iter().filter(|(p, _)| !target.places.contains_key(*p) && !p.own_table) {
            let table = format!("{} {}", place.family, place.table);
            if let Some(by) = now.others.jumps.get(&table).filter(|j| !j.is_empty()) {
                return Err(FirewallError::StillReferenced {
                    object: format!("chain {} of table {table}", self.name),
                    by: by.clone(),
                });
            }
        }
        Ok(target)
    }

    fn steps(&self, from: &State, to: &State) -> Vec<Step> {
        let places: BTreeSet<&Place> = from.places.keys().chain(to.places.keys()).collect();
        let mut input = String::new();
        for place in places {
            let (old, new) = (from.places.get(place), to.places.get(place));
            if old == new {
                continue;
            }
            let handles = from.handles.get(place).map_or(&[][..], Vec::as_slice);
            input.push_str(&self.place_script(place, old, new, handles));
        }
        if input.is_empty() {
            return Vec::new();
        }
        vec![Step { tool: "nft".into(), args: vec!["-f".into(), "-".into()], input }]
    }

    fn describe(&self, state: &State) -> String {
        state.places.iter().map(|(place, objects)| self.describe_place(place, objects)).collect()
    }

    fn warnings(&self, now: &State, desired: Option<&Ruleset>) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some(_) = desired else {
            for object in &now.others.unmarked {
                warnings.push(format!("{object} carries no marker of this module and was left as it is"));
            }
            return warnings;
        };
        if let (Some(ruleset), [family]) = (desired, self.families().as_slice()) {
            let other = match family {
                Family::V4 => Family::V6,
                Family::V6 => Family::V4,
            };
            let unused: Vec<String> =
                ruleset.rules.iter().flat_map(|r| r.sources.nets_of(other)).map(ToString::to_string).collect();
            if ruleset.enforce || !unused.is_empty() {
                warnings.push(format!(
                    "jump_from {} {} {} covers {} only: the module neither accepts nor drops {} packets there{}",
                    self.place.family,
                    self.place.table,
                    self.hook_chain.as_deref().unwrap_or_default(),
                    family_name(*family),
                    family_name(other),
                    if unused.is_empty() {
                        String::new()
                    } else {
                        format!(" (sources not used: {})", unused.join(", "))
                    }
                ));
            }
        }
        if self.place.own_table {
            for (chain, what) in &now.others.dropping_input_chains {
                warnings.push(format!(
                    "the input chain `{chain}` {what}, and an accept in table inet {} does not override another \
                     table's drop or reject: the ports stay closed unless that chain accepts them; hook in there \
                     with jump_from: \"{chain}\"",
                    self.name
                ));
            }
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
        let kind = match family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let (suffix, match_) = family_set(*family);
        let set = format!("{base}_{suffix}");
        objects.sets.insert(
            set.clone(),
            NftSet { kind: kind.into(), flags: vec!["interval".into()], elements: intervals, unknown: Vec::new() },
        );
        out.push(format!("{match_} saddr @{set} {tail}"));
    }
    out
}

/// The forward chain's rules: a DNAT'd packet (`ct status dnat`) to a port of
/// a rule, by its original destination port (`ct original proto-dst`, the
/// port before the DNAT), from the rule's sources; with enforce, the same
/// ports from everyone else dropped. Established flows are accepted first,
/// so replies (which carry the same original tuple) are never dropped.
/// Packets that were not DNAT'd are never matched; `loopback` sources do not
/// apply (a forwarded packet never arrives on `lo`). The sets are the input
/// chain's.
fn forward_rules(ruleset: &Ruleset, families: &[Family]) -> Vec<String> {
    let mut rules = vec![ESTABLISHED.to_string()];
    for (index, rule) in ruleset.rules.iter().enumerate() {
        let comment = rule.comment.as_deref().map(|c| format!(" comment \"{c}\"")).unwrap_or_default();
        let dnat = format!("ct status dnat meta l4proto {} ct original proto-dst @r{}_ports", rule.proto, index + 1);
        if rule.sources.any {
            rules.push(format!("{dnat} accept{comment}"));
            continue;
        }
        for family in families.iter().filter(|f| rule.sources.nets_of(**f).next().is_some()) {
            let (suffix, match_) = family_set(*family);
            rules.push(format!("{dnat} {match_} saddr @r{}_{suffix} accept{comment}", index + 1));
        }
    }
    for proto in Proto::ALL.into_iter().filter(|p| !ruleset.enforced(*p).is_empty()) {
        rules.push(format!("ct status dnat meta l4proto {proto} ct original proto-dst @enforce_{proto} drop"));
    }
    rules
}

/// The suffix of a rule's address set of `family`, and its nft match.
fn family_set(family: Family) -> (&'static str, &'static str) {
    match family {
        Family::V4 => ("v4", "ip"),
        Family::V6 => ("v6", "ip6"),
    }
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

fn listed_chain(family: &str, table: &str, chain: &str) -> String {
    format!("{family} {table} {chain}")
}

/// The chains of the module's own table other than its `known` ones, in nft
/// syntax (someone else added them).
fn extra_chains(listing: &Listing, known: &[Option<&str>]) -> Vec<String> {
    listing
        .chains
        .iter()
        .filter(|c| !known.contains(&Some(c.name.as_str())))
        .map(|c| {
            let mut text = format!("\tchain {} {{\n", c.name);
            for line in c.header.iter().chain(listing.rules.iter().filter(|r| r.chain == c.name).map(|r| &r.text)) {
                let _ = writeln!(text, "\t\t{line}");
            }
            text.push_str("\t}\n");
            text
        })
        .collect()
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}
