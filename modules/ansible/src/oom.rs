//! A run that runs out of memory still ends with its one JSON object.
//!
//! When an allocation fails, Rust prints a line on stderr and aborts: Ansible
//! then has no JSON to read and reports "MODULE FAILURE". [`OomGuard`] is a
//! global allocator that hands every request to the system allocator and,
//! when one fails, prints a `failed` object instead and exits 1. That path
//! allocates nothing: the object is put together in a buffer on the stack
//! and written with write(2), and the process ends with _exit(2).
//!
//! A failed allocation under an address-space limit (`ulimit -v`,
//! `prlimit --as`) or with overcommit refused is caught this way. A cgroup
//! memory limit is not: there the kernel's OOM killer sends SIGKILL, which
//! no process can answer. What keeps a module within such a limit is that
//! its memory is bounded by its arguments, which are capped
//! ([`crate::MAX_ARGS_BYTES`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;

use crate::output::{RawStdout, claim};

/// The global allocator of every portmatrix module: the system allocator,
/// with one difference: when memory runs out, the run still ends with its
/// one JSON object (`failed`, exit status 1) instead of an abort with none.
/// Install it with [`oom_guard!`](crate::oom_guard).
///
/// Code that handles allocation failure itself (`try_reserve`) gets that
/// object and exit too instead of an error: in a module, the outcome is the
/// same failed task, with a clearer message.
pub struct OomGuard;

// SAFETY: every call goes to `System` with the caller's arguments unchanged;
// a null from it never reaches the caller, because the process ends first.
unsafe impl GlobalAlloc for OomGuard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        let ptr = unsafe { System.alloc(layout) };
        if ptr.is_null() {
            out_of_memory(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as given.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if ptr.is_null() {
            out_of_memory(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as given.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            out_of_memory(new_size);
        }
        new
    }
}

/// Installs [`OomGuard`] as the program's global allocator. One line at the
/// top level of a module's `main.rs`:
///
/// ```
/// portmatrix_ansible::oom_guard!();
///
/// fn main() {}
/// ```
#[macro_export]
macro_rules! oom_guard {
    () => {
        #[global_allocator]
        static PORTMATRIX_OOM_GUARD: $crate::OomGuard = $crate::OomGuard;
    };
}

/// The module's name for the message; set by [`crate::run`] first thing.
static MODULE: OnceLock<&'static str> = OnceLock::new();

pub(crate) fn set_module(name: &'static str) {
    let _ = MODULE.set(name);
}

#[cold]
fn out_of_memory(requested: usize) -> ! {
    // The status of an object printed already stands; an allocation after
    // printing cannot happen in practice (run() exits right after), but a
    // second object would break the protocol, so none is printed then.
    let exit_code = match claim(1) {
        Ok(()) => {
            let mut text = StackText::new();
            oom_object(&mut text, MODULE.get().copied().unwrap_or("the module"), requested, address_space_limit());
            let _ = RawStdout.write_all(text.as_bytes());
            1
        }
        Err(printed) => printed,
    };
    // SAFETY: ends the process at once: no destructor, no atexit handler,
    // nothing that could allocate again.
    unsafe { libc::_exit(exit_code) }
}

/// The soft address-space limit in bytes, if one is set.
fn address_space_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &raw mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The failure object, one line, e.g. `{"failed": true, "changed": false,
/// "msg": "reserved_ports ran out of memory (allocating 67108864 bytes
/// failed under an address-space limit of 64 MiB): the arguments are too
/// large for this host's memory limit"}`.
fn oom_object(text: &mut StackText, module: &str, requested: usize, limit: Option<u64>) {
    text.push_str(r#"{"failed": true, "changed": false, "msg": ""#);
    // Module names are identifiers; anything else is left out rather than
    // escaped, so the object stays valid JSON whatever the name.
    for c in module.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-') {
        let _ = text.write_char(c);
    }
    let _ = write!(text, " ran out of memory (allocating {requested} bytes failed");
    if let Some(limit) = limit {
        let _ = write!(text, " under an address-space limit of {} MiB", limit >> 20);
    }
    text.push_str(r#"): the arguments are too large for this host's memory limit"}"#);
    text.push_str("\n");
}

/// Text in a fixed buffer on the stack; what does not fit is dropped (the
/// object above is at most about 300 bytes, far below the size).
struct StackText {
    buf: [u8; 512],
    len: usize,
}

impl StackText {
    fn new() -> Self {
        StackText { buf: [0; 512], len: 0 }
    }

    fn push_str(&mut self, s: &str) {
        let _ = self.write_str(s);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(module: &str, requested: usize, limit: Option<u64>) -> serde_json::Value {
        let mut text = StackText::new();
        oom_object(&mut text, module, requested, limit);
        assert!(text.as_bytes().ends_with(b"}\n"), "one line, complete");
        serde_json::from_slice(text.as_bytes()).expect("valid JSON")
    }

    #[test]
    fn the_object_is_a_clean_failure_naming_module_request_and_limit() {
        let json = object("reserved_ports", 67_108_864, Some(64 << 20));
        assert_eq!(json["failed"], true);
        assert_eq!(json["changed"], false);
        assert_eq!(
            json["msg"],
            "reserved_ports ran out of memory (allocating 67108864 bytes failed under an address-space limit of 64 MiB): \
             the arguments are too large for this host's memory limit"
        );
        let json = object("open_ports", 1, None);
        assert_eq!(
            json["msg"],
            "open_ports ran out of memory (allocating 1 bytes failed): the arguments are too large for this host's memory limit"
        );
    }

    #[test]
    fn any_module_name_gives_valid_json() {
        let json = object("we\"ird\\na\nme", usize::MAX, Some(u64::MAX));
        assert!(json["msg"].as_str().unwrap().starts_with("weirdname ran out of memory"), "{json}");
    }
}
