//! The Ansible binary-module protocol, written once for every portmatrix
//! module. It knows nothing about ports.
//!
//! Ansible copies a binary module to the target, writes the task's arguments
//! as one JSON object to a file and runs `MODULE ARGS_FILE`; the module prints
//! exactly one JSON object on stdout. [`run`] does all of that around a
//! module's own logic:
//!
//! ```no_run
//! use portmatrix_ansible::{run, Invocation, ModuleSpec, Response, Failure};
//! static SPEC: ModuleSpec = ModuleSpec { name: "example", short_description: "", version: "0", options: &[] };
//! fn main() {
//!     run(&SPEC, |invocation: &Invocation| -> Result<Response, Failure> {
//!         Ok(Response::new(false, "nothing to do"))
//!     })
//! }
//! ```

mod coerce;
mod help;
mod input;
mod oom;
mod output;
mod response;
mod spec;
mod validate;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use input::{AnsibleFlags, ArgsSource, BadFlag, Command, InputError, MAX_ARGS_BYTES};
pub use oom::OomGuard;
pub use response::{Diff, Failure, Response, error_chain, first_lines};
pub use spec::{DefaultValue, Kind, ModuleSpec, OptionSpec};
pub use validate::{ArgumentError, ArgumentErrors, MAX_LISTED};

/// One run of a module: validated options and Ansible's flags.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Every declared option, coerced to its declared type, defaults filled in.
    pub params: Map<String, Value>,
    pub check_mode: bool,
    pub diff: bool,
}

impl Invocation {
    /// Validates user options against `spec`. Takes them over: they are
    /// converted where they are, not copied: arguments may be megabytes.
    pub fn new(spec: &ModuleSpec, given: Map<String, Value>, flags: AnsibleFlags) -> Result<Self, ArgumentErrors> {
        let params = validate::validate(spec.name, spec.options, given)?;
        Ok(Invocation { params, check_mode: flags.check_mode, diff: flags.diff })
    }

    /// The options as the module's own typed struct. After validation this
    /// fails only where the struct's types are stricter than the spec (a
    /// port list's elements, say); the error names the option and element.
    /// Read from the params where they are: no copy of them is made.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, OptionError> {
        serde_path_to_error::deserialize(&self.params)
            .map_err(|e| OptionError { option: e.path().to_string(), problem: e.into_inner().to_string() })
    }
}

/// A value that passed the spec's type check but not the module's own
/// rules, e.g. `ports[2]: "70000" is not a valid port: ports are 1-65535`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {problem}")]
pub struct OptionError {
    pub option: String,
    pub problem: String,
}

/// Runs a module: reads the command line, validates the arguments, calls
/// `module`, prints one JSON object and exits 0 (success) or 1 (failure).
/// A panic anywhere still ends in a `failed` object, and so does running
/// out of memory when the module installs [`OomGuard`] (see [`oom_guard!`]).
pub fn run<F>(spec: &'static ModuleSpec, module: F) -> !
where
    F: FnOnce(&Invocation) -> Result<Response, Failure>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    run_prepared(spec, |echo| prepare(spec, &args, echo), module)
}

/// As [`run`], for a mode of the module's own that reads its arguments
/// itself (the boot restore of `open_ports` reads a saved request): `read` gives
/// the user options and Ansible's flags, which are validated against `spec`
/// as Ansible's would be; the result is printed and the process exits alike.
pub fn run_with_arguments<R, F>(spec: &'static ModuleSpec, read: R, module: F) -> !
where
    R: FnOnce() -> Result<(Map<String, Value>, AnsibleFlags), Failure>,
    F: FnOnce(&Invocation) -> Result<Response, Failure>,
{
    run_prepared(
        spec,
        |echo| {
            echo.no_log = true;
            let (given, flags) = read()?;
            (echo.diff, echo.no_log) = (flags.diff, flags.no_log);
            Ok(Some(Invocation::new(spec, given, flags)?))
        },
        module,
    )
}

fn run_prepared<P, F>(spec: &'static ModuleSpec, prepare: P, module: F) -> !
where
    P: FnOnce(&mut response::Echo) -> Result<Option<Invocation>, Failure>,
    F: FnOnce(&Invocation) -> Result<Response, Failure>,
{
    oom::set_module(spec.name);
    install_panic_hook(spec.name);
    let mut echo = response::Echo::default();
    let output = match prepare(&mut echo) {
        Ok(Some(invocation)) => {
            let result = module(&invocation);
            // Ansible shows the validated options as invocation.module_args:
            // the module is done with them, so they move into the result.
            echo.module_args = Some(invocation.params);
            match result {
                Ok(result) => response::success(result, echo),
                Err(failure) => response::failure(failure, echo),
            }
        }
        Ok(None) => std::process::exit(0),
        Err(failure) => response::failure(failure, echo),
    };
    output::emit_and_exit(&output.json, output.exit_code)
}

/// Everything before the module's own logic. `Ok(None)`: a human mode
/// (--help, --version) that has already printed its text.
fn prepare(spec: &ModuleSpec, args: &[String], echo: &mut response::Echo) -> Result<Option<Invocation>, Failure> {
    let source = match input::parse_command_line(spec.name, args)? {
        Command::Help => {
            print!("{}", help::render(spec));
            return Ok(None);
        }
        Command::Version => {
            println!("{} {} (portmatrix)", spec.name, spec.version);
            return Ok(None);
        }
        Command::Run(source) => source,
    };
    // Until the flags are read, no_log counts as set: a failure to read them
    // (an unreadable `_ansible_no_log` among them) echoes no arguments.
    echo.no_log = true;
    let (given, flags) = input::read_arguments(&source)?;
    echo.diff = flags.diff;
    echo.no_log = flags.no_log;
    Ok(Some(Invocation::new(spec, given, flags)?))
}

/// Release builds abort on panic, so the hook itself reports the failure and
/// exits before the abort: Ansible then shows a message, not "MODULE FAILURE".
fn install_panic_hook(module: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(std::string::ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = format!("internal error in {module}: {what}{place}; this is a bug in portmatrix, please report it");
        output::emit_and_exit(&serde_json::json!({ "failed": true, "changed": false, "msg": msg }), 1);
    }));
}
