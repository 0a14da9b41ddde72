//! Running an external tool with bounds: a hanging `nft` or `iptables-restore`
//! must not hang the module (Ansible would wait for its own timeout with no
//! result), and a tool printing without end must not exhaust its memory.
//!
//! The tool runs in a process group of its own; when the time bound passes,
//! or its output passes the size bound, the whole group is killed (a wrapper
//! script's children too) and the run is an error naming the command. Its
//! standard input is written, and its output read, by threads of their own,
//! so that no pipe can fill up and block the other side.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The bounds of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long the tool may take, from start to its last byte of output.
    pub timeout: Duration,
    /// How many bytes it may print on stdout, and again on stderr.
    pub max_output: usize,
}

/// What a finished tool left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit status (it may be a failure: the caller decides).
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr.
    pub stderr: Vec<u8>,
}

/// Why a tool did not finish within its bounds.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The tool could not be started (or waited for).
    #[error("cannot run {command}")]
    Spawn {
        /// The command line, for messages.
        command: String,
        /// What the system said.
        source: io::Error,
    },
    /// The time bound passed; the tool and its process group were killed.
    #[error("{command} did not finish within {} s and was killed", after.as_secs_f64())]
    TimedOut {
        /// The command line, for messages.
        command: String,
        /// The bound that passed.
        after: Duration,
    },
    /// The tool printed more than the output bound; it was killed.
    #[error("{command} printed more than {limit} bytes and was killed")]
    TooMuchOutput {
        /// The command line, for messages.
        command: String,
        /// The bound, in bytes.
        limit: usize,
    },
}

/// The command line as a person would type it (for messages).
pub fn display(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `command` with `input` on its stdin (or /dev/null), within `limits`.
/// The caller sets program, arguments and environment; this sets the pipes
/// and the process group. Errors show the command line as [`display`] does.
pub fn run(command: Command, input: Option<Vec<u8>>, limits: Limits) -> Result<Output, RunError> {
    let shown = display(&command);
    run_shown_as(command, shown, input, limits)
}

/// [`run`], with errors showing the command as `shown` (say, `nft -f -`
/// rather than the full path the program was found at).
pub fn run_shown_as(
    mut command: Command,
    shown: String,
    input: Option<Vec<u8>>,
    limits: Limits,
) -> Result<Output, RunError> {
    let deadline = Instant::now() + limits.timeout;
    let mut child = command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| RunError::Spawn { command: shown.clone(), source })?;
    let group = child.id();

    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits without reading all of it closes the pipe; its
        // exit status tells why, so the write error itself is not kept.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    let (sender, outputs) = mpsc::channel();
    for (stream, pipe) in [(0, child.stdout.take().map(Pipe::Out)), (1, child.stderr.take().map(Pipe::Err))] {
        let Some(pipe) = pipe else { continue };
        let sender = sender.clone();
        std::thread::spawn(move || {
            let read = read_at_most(pipe, limits.max_output);
            if read.is_err() {
                kill_group(group);
            }
            let _ = sender.send((stream, read));
        });
    }
    let (done, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });

    let timed_out = || RunError::TimedOut { command: shown.clone(), after: limits.timeout };
    let status = match status.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(Ok(status)) => status,
        Ok(Err(source)) => return Err(RunError::Spawn { command: shown, source }),
        Err(_) => {
            kill_group(group);
            // Reaped by the waiting thread; the group is gone with it.
            let _ = status.recv();
            return Err(timed_out());
        }
    };
    // A child the tool left behind may still hold its pipes: the deadline
    // bounds the wait for them too.
    let mut streams = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match outputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((stream, Ok(bytes))) => streams[stream] = bytes,
            Ok((_, Err(TooMuch))) => {
                return Err(RunError::TooMuchOutput { command: shown, limit: limits.max_output });
            }
            Err(_) => {
                kill_group(group);
                return Err(timed_out());
            }
        }
    }
    let [stdout, stderr] = streams;
    Ok(Output { status, stdout, stderr })
}

enum Pipe {
    Out(std::process::ChildStdout),
    Err(std::process::ChildStderr),
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Pipe::Out(pipe) => pipe.read(buf),
            Pipe::Err(pipe) => pipe.read(buf),
        }
    }
}

struct TooMuch;

/// Reads to the end, or fails as soon as more than `limit` bytes came. A read
/// error ends the stream (the tool's exit status tells what happened).
fn read_at_most(pipe: impl Read, limit: usize) -> Result<Vec<u8>, TooMuch> {
    let mut bytes = Vec::new();
    let _ = pipe.take(limit as u64 + 1).read_to_end(&mut bytes);
    if bytes.len() > limit { Err(TooMuch) } else { Ok(bytes) }
}

fn kill_group(group: u32) {
    if let Ok(group) = libc::pid_t::try_from(group) {
        // SAFETY: kill(2) takes plain integers; a negative pid names the
        // process group this module created for the tool, and nothing else.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { timeout: Duration::from_secs(5), max_output: 1 << 20 };

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn input_goes_in_output_comes_back_with_the_status() {
        let out = run(sh("cat; echo err >&2; exit 3"), Some(b"hello".to_vec()), LIMITS).unwrap();
        assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (b"hello".as_slice(), b"err\n".as_slice()));
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_hanging_tool_and_its_children_are_killed_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-lived");
        let script = format!("(sleep 2; touch {}) & sleep 60", marker.display());
        let start = Instant::now();
        let limits = Limits { timeout: Duration::from_millis(300), ..LIMITS };
        let err = run(sh(&script), None, limits).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2), "killed at the bound, not later");
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(err.to_string().starts_with("/bin/sh -c (sleep 2;"), "{err}");
        assert!(err.to_string().ends_with("did not finish within 0.3 s and was killed"), "{err}");
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the tool's background child was killed with it");
    }

    #[test]
    fn a_tool_that_never_reads_its_input_still_ends() {
        let limits = Limits { timeout: Duration::from_millis(300), ..LIMITS };
        let err = run(sh("sleep 60"), Some(vec![b'x'; 1 << 20]), limits).unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
    }

    #[test]
    fn endless_output_is_cut_at_the_bound() {
        let limits = Limits { max_output: 4096, ..LIMITS };
        let err = run(sh("yes"), None, limits).unwrap_err();
        assert!(matches!(err, RunError::TooMuchOutput { limit: 4096, .. }), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = run(Command::new("/nonexistent/tool"), None, LIMITS).unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }), "{err}");
    }
}
