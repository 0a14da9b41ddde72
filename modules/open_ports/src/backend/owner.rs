//! Ownership of firewall objects. Every object the module creates carries a
//! marker that names the module and its `name`, in a form that survives a
//! save and a restore of the ruleset (`iptables-save`/`-restore`, `nft list
//! ruleset` / `nft -f`): a comment. The module changes or removes only
//! objects that carry it; a same-named object without it belongs to someone
//! else, is never touched, and makes a run that would need it fail.
//!
//! Where the marker sits, per backend:
//! - iptables: the first rule of the module's chain (the established/related
//!   accept) and every hook rule carry `-m comment --comment "MARKER"`;
//!   chains cannot carry comments of their own.
//! - nftables: the first rule of the module's chain carries `comment
//!   "MARKER"` (rule comments exist on every nft version the module supports;
//!   table and chain comments need nft 0.9.7 and Linux 5.10, and nft 1.0.6
//!   does not show them in its JSON); so does every `jump` it inserts. The
//!   module's sets are the sets its marked chain refers to.

use std::fmt;

/// The marker of one `name`: `portmatrix open_ports NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker(String);

/// The start of every marker, whatever the name: the hooks of all of the
/// module's names may sit together on top of a chain.
pub const PREFIX: &str = "portmatrix open_ports ";

impl Marker {
    /// The marker for `name` (a valid `name` option: no quotes or spaces).
    pub fn new(name: &str) -> Marker {
        Marker(format!("{PREFIX}{name}"))
    }

    /// The comment text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A same-named object that does not carry the marker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{object} exists but carries no marker of this module (comment \"{marker}\"): it was not created by \
     open_ports with name={name}, so it is left exactly as it is and nothing was changed. Pick another `name` \
     for the module's objects{hint}"
)]
pub struct NotOurs {
    /// The object, as the backend's own tools name it (`table inet filter`).
    pub object: String,
    /// The marker that was looked for.
    pub marker: Marker,
    /// The `name` option.
    pub name: String,
    /// More advice, starting with "; " (or empty).
    pub hint: String,
}
