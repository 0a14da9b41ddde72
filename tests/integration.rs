//! Integration tests across the modules, in one binary (linked once).
//! Kernel and container tests need root; `make test` runs everything.

mod docs;
mod reserved_ports;
mod artifacts;
