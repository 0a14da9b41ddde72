//! Integration tests across the modules, in one binary (linked once).
//! Kernel and container tests need root; `make test` runs everything.

mod artifacts;
mod big_input;
mod dcos_matrix;
mod dcos_role;
mod docs;
mod images;
mod matrix_doc;
mod open_ports;
mod reserved_ports;
mod role_docs;
mod unit_bindings;
