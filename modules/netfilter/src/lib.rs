//! Reading a host's netfilter rules as its own tools print them, written
//! once for every module that reads them:
//!
//! - [`iptables_text`]: the words of an `iptables-save` rule spec (quoted
//!   values kept whole), and the variant `iptables -V` names;
//! - [`nft_text`]: nft's JSON (`nft -j`) back as nft syntax;
//! - [`dnat`]: the DNAT rules of both worlds, with the original destination
//!   ports each takes (`open_ports` warns of those it enforces, `unit_bindings`
//!   reports the ports they take).

pub mod dnat;
pub mod iptables_text;
pub mod nft_text;
mod proto;

pub use proto::Proto;
