//! The one JSON object a run prints on stdout. Three places may want to
//! print it: the end of [`crate::run`], the panic hook and the
//! out-of-memory guard ([`crate::OomGuard`]). Whichever comes first prints;
//! any later one prints nothing and ends the process with the status of the
//! object already printed, so Ansible never reads two objects.

use std::io::{self, Write};
use std::sync::atomic::{AtomicI32, Ordering};

use serde_json::Value;

/// No object printed yet; otherwise `PRINTED` holds the printed object's
/// exit status (0 or 1).
const NOT_YET: i32 = i32::MIN;
static PRINTED: AtomicI32 = AtomicI32::new(NOT_YET);

/// Claims stdout for an object to be printed with `exit_code`. `Err` holds
/// the exit status of the object printed before.
pub(crate) fn claim(exit_code: i32) -> Result<(), i32> {
    PRINTED.compare_exchange(NOT_YET, exit_code, Ordering::SeqCst, Ordering::SeqCst).map(|_| ())
}

/// Prints `json` as the run's one object (one line) and exits with
/// `exit_code`; if an object was printed already, only exits, with its status.
pub(crate) fn emit_and_exit(json: &Value, exit_code: i32) -> ! {
    // The buffer is allocated before stdout is claimed: an allocation that
    // fails here still leaves the out-of-memory guard free to print.
    let mut out = io::BufWriter::with_capacity(64 << 10, RawStdout);
    if let Err(printed) = claim(exit_code) {
        std::process::exit(printed);
    }
    // Serialising a Value allocates nothing, so nothing can run out of
    // memory half-way through the object. Straight to the file descriptor:
    // std's line-buffered stdout would scan every token for newlines.
    // Nothing useful can be done if stdout is gone; the exit status remains.
    let _ = serde_json::to_writer(&mut out, json);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
    std::process::exit(exit_code)
}

/// File descriptor 1, written with write(2): no buffer, no lock, no
/// allocation, so the out-of-memory guard can use it too.
pub(crate) struct RawStdout;

impl Write for RawStdout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `data` is a valid buffer of `data.len()` bytes.
            let written = unsafe { libc::write(1, data.as_ptr().cast(), data.len()) };
            if let Ok(written) = usize::try_from(written) {
                return Ok(written);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_claim_prints_and_later_ones_learn_its_status() {
        // The only test in this binary that claims stdout (it is global).
        assert_eq!(claim(0), Ok(()));
        assert_eq!(claim(1), Err(0), "a second object is never printed");
        assert_eq!(claim(0), Err(0));
    }
}
