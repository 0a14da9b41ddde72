//! The host's tools, as every module runs them (portmatrix-host).

pub use portmatrix_host::tools::{ToolError, Tools};
