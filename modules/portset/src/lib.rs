//! Port sets for portmatrix: parse, validate, normalise, combine and format.
//!
//! This crate is the one place in the project that understands port numbers,
//! port ranges and lists of them. Its text format is the one the Linux kernel
//! uses for `net.ipv4.ip_local_reserved_ports`: comma-separated ports and
//! `start-end` ranges. [`PortSet`]'s `Display` prints exactly what the kernel
//! prints back (sorted, overlapping and adjacent ranges merged, no leading
//! zeros), so a value computed here can be compared with the kernel's text
//! byte for byte and written back without surprises.
//!
//! Input is read the way an operator means it: decimal only, surrounding
//! whitespace ignored, and a leading zero read as decimal (`"08080"` is 8080,
//! as Python's `int("08080")` is). The output never has leading zeros, which
//! matters because the kernel reads `01025` as octal (533).
//!
//! ```
//! use portmatrix_portset::{PortRange, PortSet};
//!
//! let written: PortSet = "9000,8082,8080,8081".parse()?;
//! assert_eq!(written.to_string(), "8080-8082,9000");
//!
//! let reserved = PortSet::parse_list("100-200,150-300\n")?;
//! assert_eq!(reserved.to_string(), "100-300");
//!
//! let ephemeral = PortRange::new(32768, 60999)?;
//! let reserved = PortSet::parse_list("30000-40000")?;
//! assert_eq!(reserved.complement_within(ephemeral).len(), 28232 - 7233);
//! # Ok::<(), portmatrix_portset::PortError>(())
//! ```
//!
//! No function in this crate panics on any input; every failure is a
//! [`PortError`] whose message names the offending text.

mod error;
mod range;
#[cfg(feature = "serde")]
mod serde_impl;
mod set;

pub use error::PortError;
pub use range::PortRange;
pub use set::PortSet;
