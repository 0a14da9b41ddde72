//! Host-side helpers that every portmatrix module shares, written once:
//!
//! - [`lock`]: one read-plan-apply at a time per object on a host (a lock file
//!   under `/run/portmatrix`, waited for with a bound);
//! - [`command`]: an external tool (nft, iptables-restore) run with a time
//!   bound and an output bound, its whole process group killed when the bound
//!   passes;
//! - [`tools`]: a tool looked up on the module's PATH (absolute entries only)
//!   and run through [`command`], its failure quoting its stderr;
//! - [`atomic`]: a file replaced so that a reader (or a crash) sees the old
//!   content or the new, never a mix, and only while it is still what the
//!   caller read;
//! - [`file`]: a file read only when it is a regular file (not one of /proc
//!   or /sys, whose reads can have side effects), and only up to a size
//!   bound, so that a FIFO, a device or an endless file can neither hang a
//!   module nor exhaust its memory.
//!
//! Nothing here knows about ports or Ansible; errors are typed and name the
//! path or command they concern.

#![deny(missing_docs)]

pub mod atomic;
pub mod command;
pub mod file;
pub mod lock;
pub mod tools;
