//! The protocol end to end, through a real binary (the `protocol_probe` fixture).

use assert_cmd::Command;
use portmatrix_ansible::MAX_ARGS_BYTES;
use serde_json::{Value, json};

fn probe() -> Command {
    Command::cargo_bin("protocol_probe").unwrap()
}

/// Runs the probe with `args` as an args file, the way Ansible does.
fn run_with_file(args: &str) -> (Value, i32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, args).unwrap();
    let out = probe().arg(&path).output().unwrap();
    parse(out)
}

fn parse(out: std::process::Output) -> (Value, i32) {
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line of output: {stdout:?}");
    (serde_json::from_str(&stdout).expect("stdout is one JSON object"), out.status.code().unwrap())
}

#[test]
fn args_file_is_validated_coerced_and_echoed() {
    let (json, code) = run_with_file(
        r#"{"name": 80, "count": "7", "enabled": "off", "items": "a,b",
        "entries": [{"port": "5050"}], "_ansible_verbosity": 2, "_ansible_future_key": {}}"#,
    );
    assert_eq!(code, 0);
    assert_eq!(json["failed"], json!(false));
    let params = &json["params"];
    assert_eq!(params["name"], json!("80"));
    assert_eq!(params["count"], json!(7));
    assert_eq!(params["enabled"], json!(false));
    assert_eq!(params["items"], json!(["a", "b"]));
    assert_eq!(params["entries"], json!([{"port": 5050, "proto": "tcp"}]));
    assert_eq!(json["invocation"]["module_args"], *params);
    assert!(json.get("diff").is_none(), "no diff unless asked");
    assert_eq!(json["warnings"], json!(["a warning"]));
}

#[test]
fn stdin_mode_and_check_and_diff_flags() {
    let out = probe().arg("-").write_stdin(r#"{"_ansible_check_mode": true, "_ansible_diff": true}"#).output().unwrap();
    let (json, code) = parse(out);
    assert_eq!(code, 0);
    assert_eq!(json["check_mode"], json!(true));
    assert_eq!(json["changed"], json!(false));
    assert_eq!(json["diff"][0]["after"], json!("after\n"));
}

#[test]
fn bad_input_fails_cleanly_with_exit_one() {
    let cases: &[(&str, &str)] = &[
        ("{not json", "are not valid JSON"),
        ("[1, 2]", "must be a JSON object, not list"),
        ("", "are not valid JSON"),
        (
            r#"{"bogus": 1}"#,
            "Unsupported parameters for (protocol_probe) module: bogus. Supported parameters include: count, enabled, entries, fail, items, mode, name, panic",
        ),
        (r#"{"count": "many"}"#, "argument 'count' is of type str and we were unable to convert to int"),
        (
            r#"{"count": 18446744073709551615}"#,
            "argument 'count' is of type int and we were unable to convert to int: 18446744073709551615 is out of range",
        ),
        (r#"{"count": 1e30}"#, "to int: 1e+30 is out of range"),
        (r#"{"count": 2.5}"#, "to int: 2.5 is not an integer"),
        (r#"{"mode": "c"}"#, "value of mode must be one of: a, b, got: c"),
        (r#"{"entries": [{"proto": "udp"}]}"#, "missing required arguments: entries[0].port"),
        (r#"{"entries": [{"port": 1, "extra": true}]}"#, "module: entries[0].extra."),
        (r#"{"fail": true}"#, "asked to fail"),
    ];
    for (args, expected) in cases {
        let (json, code) = run_with_file(args);
        assert_eq!(code, 1, "{args}");
        assert_eq!(json["failed"], json!(true), "{args}");
        let msg = json["msg"].as_str().unwrap();
        assert!(msg.contains(expected), "{args}: {msg}");
    }
}

#[test]
fn missing_args_file_names_the_file() {
    let (json, code) = parse(probe().arg("/nonexistent/args").output().unwrap());
    assert_eq!(code, 1);
    assert!(json["msg"].as_str().unwrap().contains("cannot read the arguments from /nonexistent/args"), "{json}");
}

#[test]
fn no_arguments_explain_usage() {
    let (json, code) = parse(probe().output().unwrap());
    assert_eq!(code, 1);
    assert!(json["msg"].as_str().unwrap().contains("protocol_probe ARGS_FILE"), "{json}");
}

#[test]
fn a_panic_still_gives_one_failed_object() {
    let (json, code) = run_with_file(r#"{"panic": true}"#);
    assert_eq!(code, 1);
    assert_eq!(json["failed"], json!(true));
    assert!(json["msg"].as_str().unwrap().contains("internal error in protocol_probe: asked to panic"), "{json}");
}

#[test]
fn help_and_version_are_for_people() {
    let help = probe().arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("mode (str, default: a, choices: a, b)"), "{text}");
    assert!(text.contains("port (int, required)"), "{text}");
    let version = probe().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(version.stdout).unwrap(),
        format!("protocol_probe {} (portmatrix)\n", env!("CARGO_PKG_VERSION"))
    );
}

/// `{"items": [1,1,...]}` padded with spaces to exactly `size` bytes, and
/// the number of items in it.
fn args_of_size(size: usize) -> (String, usize) {
    let items = (size - r#"{"items": []}"#.len()).div_ceil(2);
    let list = vec!["1"; items].join(",");
    let mut text = format!(r#"{{"items": [{list}]}}"#);
    text.insert_str(text.len() - 1, &" ".repeat(size - text.len()));
    assert_eq!(text.len(), size);
    (text, items)
}

#[test]
fn arguments_up_to_the_cap_are_read() {
    let (text, items) = args_of_size(MAX_ARGS_BYTES);
    let (json, code) = run_with_file(&text);
    assert_eq!(code, 0, "{}", json["msg"]);
    assert_eq!(json["params"]["items"].as_array().unwrap().len(), items);
}

#[test]
fn an_args_file_over_the_cap_fails_with_its_size_and_the_cap() {
    let (text, _) = args_of_size(MAX_ARGS_BYTES + 1);
    let (json, code) = run_with_file(&text);
    assert_eq!(code, 1);
    assert_eq!(json["failed"], json!(true));
    let msg = json["msg"].as_str().unwrap();
    assert!(
        msg.contains(&format!(" are {} bytes, more than the {MAX_ARGS_BYTES} bytes (4 MiB)", MAX_ARGS_BYTES + 1)),
        "{msg}"
    );
}

#[test]
fn stdin_over_the_cap_fails_cleanly() {
    let (text, _) = args_of_size(MAX_ARGS_BYTES + 1);
    let (json, code) = parse(probe().arg("-").write_stdin(text).output().unwrap());
    assert_eq!(code, 1);
    let msg = json["msg"].as_str().unwrap();
    assert!(msg.contains(&format!("in standard input are more than the {MAX_ARGS_BYTES} bytes")), "{msg}");
}

#[test]
fn an_endless_args_source_is_not_read_to_its_end() {
    // Read to its end, /dev/zero would never finish: the cap stops it.
    let (json, code) = parse(probe().arg("/dev/zero").output().unwrap());
    assert_eq!(code, 1);
    assert!(json["msg"].as_str().unwrap().contains("/dev/zero are more than the"), "{json}");
    // std's Command: assert_cmd's pipe_stdin would read /dev/zero into memory first.
    let zero = std::fs::File::open("/dev/zero").unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("protocol_probe"))
        .arg("-")
        .stdin(zero)
        .output()
        .unwrap();
    let (json, code) = parse(out);
    assert_eq!(code, 1);
    assert!(json["msg"].as_str().unwrap().contains("standard input are more than the"), "{json}");
}

#[test]
fn running_out_of_memory_still_gives_one_failed_object() {
    // Parsing a list at the cap takes 64 MiB for its elements alone; 32 MiB
    // of address space is far above what the probe needs to start (about
    // 4 MiB), so the run gets going and an allocation fails.
    let (text, _) = args_of_size(MAX_ARGS_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new("prlimit")
        .arg(format!("--as={}", 32 << 20))
        .arg(assert_cmd::cargo::cargo_bin("protocol_probe"))
        .arg(&path)
        .output()
        .expect("prlimit (util-linux) runs");
    let (json, code) = parse(out);
    assert_eq!(code, 1);
    assert_eq!(json["failed"], json!(true));
    assert_eq!(json["changed"], json!(false));
    let msg = json["msg"].as_str().unwrap();
    assert!(msg.starts_with("protocol_probe ran out of memory (allocating "), "{msg}");
    assert!(
        msg.ends_with(
            "under an address-space limit of 32 MiB): the arguments are too large for this host's memory limit"
        ),
        "{msg}"
    );
}
