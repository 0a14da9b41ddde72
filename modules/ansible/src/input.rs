//! Where a module's arguments come from, and which of them are Ansible's own.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::coerce;

/// The most a module reads as its argument object, in bytes (4 MiB); more
/// is refused with a clean failure before anything is parsed.
///
/// Real inputs are far below it: the DC/OS matrix's firewall rules for a
/// node with 2,000 cluster sources are 55 KB, 5,000 ports by 2,000 IPv6
/// sources 88 KB, and every port from 1 to 65535 listed one by one as strings
/// 579 KB. The cap leaves room seven times over that last one, and bounds the
/// memory a run can take, since parsed JSON takes a multiple of its text:
/// about 20 times for long lists of numbers or strings, up to about 110
/// times for lists of tiny dicts (the README's "Limits").
pub const MAX_ARGS_BYTES: usize = 4 << 20;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Version,
    /// `MODULE ARGS_FILE` (how Ansible runs a binary module) or `MODULE -`.
    Run(ArgsSource),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsSource {
    File(PathBuf),
    Stdin,
}

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "no arguments given: run as `{module} ARGS_FILE` (as Ansible does), `{module} -` with JSON on stdin, or `{module} --help`"
    )]
    NoArguments { module: String },
    #[error("too many command-line arguments: expected one ARGS_FILE, `-`, --help or --version")]
    TooManyArguments,
    #[error("cannot read the arguments from {source_name}")]
    Read { source_name: String, source: std::io::Error },
    /// A regular file over the cap ([`MAX_ARGS_BYTES`]), with its size.
    #[error(
        "the arguments in {source_name} are {size} bytes, more than the {limit} bytes ({} MiB) a portmatrix module reads: split the task into smaller ones",
        .limit >> 20
    )]
    TooLarge { source_name: String, size: u64, limit: usize },
    /// A pipe or stdin, whose size is not known: only that it is too much.
    #[error(
        "the arguments in {source_name} are more than the {limit} bytes ({} MiB) a portmatrix module reads: split the task into smaller ones",
        .limit >> 20
    )]
    TooLargeStream { source_name: String, limit: usize },
    #[error("the arguments in {source_name} are not UTF-8 text")]
    NotUtf8 { source_name: String, source: std::str::Utf8Error },
    #[error("the arguments in {source_name} are not valid JSON")]
    NotJson { source_name: String, source: serde_json::Error },
    #[error("the arguments in {source_name} must be a JSON object, not {found}")]
    NotAnObject { source_name: String, found: &'static str },
    /// `_ansible_check_mode`, `_ansible_diff` or `_ansible_no_log` holds what
    /// `AnsibleModule` would not read as a boolean: guessing `false` could
    /// turn a check into a real change, or echo arguments meant to be hidden.
    #[error(
        "{}: the module did not run, so nothing was changed",
        .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    BadFlags { problems: Vec<BadFlag> },
}

/// One of Ansible's boolean flags with a value that is not a boolean.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} must be a boolean (true or false), got {quoted}")]
pub struct BadFlag {
    pub key: String,
    /// The value as given, in JSON, shortened when long.
    pub quoted: String,
}

impl ArgsSource {
    fn name(&self) -> String {
        match self {
            ArgsSource::File(path) => path.display().to_string(),
            ArgsSource::Stdin => "standard input".to_string(),
        }
    }
}

pub fn parse_command_line(module: &str, args: &[String]) -> Result<Command, InputError> {
    match args {
        [] => Err(InputError::NoArguments { module: module.to_string() }),
        [one] => Ok(match one.as_str() {
            "--help" | "-h" => Command::Help,
            "--version" | "-V" => Command::Version,
            "-" => Command::Run(ArgsSource::Stdin),
            path => Command::Run(ArgsSource::File(Path::new(path).to_path_buf())),
        }),
        _ => Err(InputError::TooManyArguments),
    }
}

/// The settings Ansible passes as `_ansible_*` keys that a module honours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnsibleFlags {
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
}

/// Reads the argument object and splits it into user options and flags.
/// Unknown `_ansible_*` keys are dropped: new ansible-core versions add some.
/// A flag the module honours must read as a boolean the way `AnsibleModule`
/// reads it (`true`, `"yes"`, `1`, ...): anything else is refused.
pub fn read_arguments(source: &ArgsSource) -> Result<(Map<String, Value>, AnsibleFlags), InputError> {
    read_arguments_bounded(source, MAX_ARGS_BYTES)
}

fn read_arguments_bounded(source: &ArgsSource, limit: usize) -> Result<(Map<String, Value>, AnsibleFlags), InputError> {
    let source_name = source.name();
    let bytes = match source {
        ArgsSource::File(path) => portmatrix_host::file::read_any_bounded(path, limit),
        ArgsSource::Stdin => portmatrix_host::file::read_bounded(std::io::stdin().lock(), limit),
    }
    .map_err(|e| InputError::Read { source_name: source_name.clone(), source: e })?;
    let Some(bytes) = bytes else {
        // A regular file's size is known; a pipe's is not (and not read on).
        let size = match source {
            ArgsSource::File(path) => std::fs::metadata(path).ok().filter(std::fs::Metadata::is_file).map(|m| m.len()),
            ArgsSource::Stdin => None,
        };
        return Err(match size {
            Some(size) => InputError::TooLarge { source_name, size, limit },
            None => InputError::TooLargeStream { source_name, limit },
        });
    };

    // As text first: serde_json's parser for &str is the one the modules use
    // too, so the binaries carry one parser, not two (4 KB less).
    let text =
        std::str::from_utf8(&bytes).map_err(|e| InputError::NotUtf8 { source_name: source_name.clone(), source: e })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| InputError::NotJson { source_name: source_name.clone(), source: e })?;
    // The text is not needed once parsed: free it before validation adds its own.
    drop(bytes);
    let mut object = match value {
        Value::Object(map) => map,
        other => return Err(InputError::NotAnObject { source_name, found: coerce::python_type(&other) }),
    };
    // New-style Python modules receive {"ANSIBLE_MODULE_ARGS": {...}}; accept
    // that wrapping too, so arguments copied from a Python module's run work.
    if let (1, Some(Value::Object(inner))) = (object.len(), object.get_mut("ANSIBLE_MODULE_ARGS")) {
        object = std::mem::take(inner);
    }
    split_internal_keys(object)
}

/// The flags a module honours; every other `_ansible_*` key is dropped.
const FLAG_KEYS: [&str; 3] = ["_ansible_check_mode", "_ansible_diff", "_ansible_no_log"];

/// How much of a bad flag's value a message quotes.
const MAX_QUOTED: usize = 80;

fn split_internal_keys(object: Map<String, Value>) -> Result<(Map<String, Value>, AnsibleFlags), InputError> {
    let mut flags = AnsibleFlags::default();
    let mut user = Map::new();
    let mut problems = Vec::new();
    for (key, value) in object {
        if !key.starts_with("_ansible_") {
            user.insert(key, value);
            continue;
        }
        if !FLAG_KEYS.contains(&key.as_str()) {
            continue;
        }
        let Ok(Value::Bool(on)) = coerce::to_bool(&value) else {
            problems.push(BadFlag { quoted: quote_short(&value), key });
            continue;
        };
        match key.as_str() {
            "_ansible_check_mode" => flags.check_mode = on,
            "_ansible_diff" => flags.diff = on,
            _ => flags.no_log = on,
        }
    }
    if problems.is_empty() { Ok((user, flags)) } else { Err(InputError::BadFlags { problems }) }
}

/// `value` as JSON, cut at [`MAX_QUOTED`] characters (a flag could hold
/// megabytes).
fn quote_short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_line_modes() {
        let parse = |args: &[&str]| {
            parse_command_line("m", &args.iter().map(std::string::ToString::to_string).collect::<Vec<_>>())
        };
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
        assert_eq!(parse(&["--version"]).unwrap(), Command::Version);
        assert_eq!(parse(&["-"]).unwrap(), Command::Run(ArgsSource::Stdin));
        assert_eq!(parse(&["/tmp/args"]).unwrap(), Command::Run(ArgsSource::File("/tmp/args".into())));
        assert!(parse(&[]).unwrap_err().to_string().contains("m ARGS_FILE"));
        assert!(matches!(parse(&["a", "b"]), Err(InputError::TooManyArguments)));
    }

    #[test]
    fn arguments_over_the_cap_are_refused_with_size_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args");
        let text = format!("{{\"items\": [{}1]}}", "1,".repeat(1000));
        std::fs::write(&path, &text).unwrap();
        let source = ArgsSource::File(path.clone());
        let (user, _) = read_arguments_bounded(&source, text.len()).unwrap();
        assert_eq!(user["items"].as_array().unwrap().len(), 1001);
        let err = read_arguments_bounded(&source, text.len() - 1).unwrap_err();
        assert!(
            matches!(&err, InputError::TooLarge { size, limit, .. } if *size == text.len() as u64 && *limit == text.len() - 1),
            "{err:?}"
        );
        let message = InputError::TooLarge { source_name: "/tmp/args".into(), size: 5_000_000, limit: MAX_ARGS_BYTES }
            .to_string();
        assert_eq!(
            message,
            "the arguments in /tmp/args are 5000000 bytes, more than the 4194304 bytes (4 MiB) a portmatrix module reads: split the task into smaller ones"
        );
    }

    #[test]
    fn arguments_that_are_not_text_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("args");
        std::fs::write(&path, b"{\"name\": \"\xff\"}").unwrap();
        let err = read_arguments_bounded(&ArgsSource::File(path.clone()), 100).unwrap_err();
        assert_eq!(err.to_string(), format!("the arguments in {} are not UTF-8 text", path.display()));
    }

    #[test]
    fn internal_keys_are_split_and_unknown_ones_dropped() {
        let object = json!({"ports": [1], "_ansible_check_mode": true, "_ansible_diff": "yes",
                            "_ansible_brand_new_key": 7, "_ansible_verbosity": 3});
        let (user, flags) = split_internal_keys(object.as_object().unwrap().clone()).unwrap();
        assert_eq!(Value::Object(user), json!({"ports": [1]}));
        assert_eq!(flags, AnsibleFlags { check_mode: true, diff: true, no_log: false });
        let words = json!({"_ansible_check_mode": "no", "_ansible_diff": 1, "_ansible_no_log": 0.0});
        let (_, flags) = split_internal_keys(words.as_object().unwrap().clone()).unwrap();
        assert_eq!(flags, AnsibleFlags { check_mode: false, diff: true, no_log: false });
    }

    #[test]
    fn flags_that_are_not_booleans_are_refused_naming_key_and_value() {
        for bad in [json!("maybe"), json!(2), json!([true]), json!({}), json!(null), json!(-1), json!("")] {
            for key in FLAG_KEYS {
                let object = json!({ "ports": [1], key: bad.clone() });
                let err = split_internal_keys(object.as_object().unwrap().clone()).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!(
                        "{key} must be a boolean (true or false), got {bad}: the module did not run, so nothing was changed"
                    )
                );
            }
        }
        let both = json!({"_ansible_check_mode": "maybe", "_ansible_diff": true, "_ansible_no_log": [1]});
        let err = split_internal_keys(both.as_object().unwrap().clone()).unwrap_err().to_string();
        assert!(err.starts_with("_ansible_check_mode must be a boolean (true or false), got \"maybe\"; _ansible_no_log must be a boolean (true or false), got [1]: "), "{err}");
        let long = json!({"_ansible_diff": "x".repeat(10_000)});
        let err = split_internal_keys(long.as_object().unwrap().clone()).unwrap_err().to_string();
        assert!(err.len() < 300 && err.contains("... (10002 bytes)"), "{err}");
    }
}
