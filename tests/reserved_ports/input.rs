//! Bad input: every case gives `failed`, exit status 1, a message naming the
//! option and the problem, and changes nothing (checked in a sandbox whose
//! reservation and sysctl file are set beforehand).

use portmatrix_tests::module::{command_for, run};
use portmatrix_tests::sandbox::Sandbox;

const FILE: &str = "/etc/sysctl.d/90-reserved-ports.conf";
const FILE_BEFORE: &str = "# kept\nnet.ipv4.ip_local_reserved_ports = 9000\n";

const CASES: &[(&str, &str)] = &[
    ("{\"ports\": [8080", "are not valid JSON"),
    ("", "are not valid JSON"),
    ("[8080]", "must be a JSON object, not list"),
    (r#"{"ports": {"a": 1}}"#, "argument 'ports' is of type dict and we were unable to convert to list"),
    (
        r#"{"ports": [8080], "persist": "perhaps"}"#,
        "argument 'persist' is of type str and we were unable to convert to bool",
    ),
    (
        r#"{"ports": [8080], "min_free_ephemeral": "lots"}"#,
        "argument 'min_free_ephemeral' is of type str and we were unable to convert to int",
    ),
    (r#"{"ports": [8080], "state": "gone"}"#, "value of state must be one of: present, absent, got: gone"),
    (
        r#"{"ports": [8080], "colour": "red"}"#,
        "Unsupported parameters for (reserved_ports) module: colour. Supported parameters include: exclusive, lock_timeout, min_free_ephemeral, persist, ports, state, sysctl_file",
    ),
    (r#"{"state": "present"}"#, "missing required arguments: ports"),
    (r#"{"ports": ["abc"]}"#, "ports[0]: \"abc\" is not a port number"),
    (r#"{"ports": [8080, "9000-8000"]}"#, "ports[1]: range \"9000-8000\" is reversed"),
    (r#"{"ports": ["80-"]}"#, "ports[0]: \"80-\" is not a valid port range"),
    (r#"{"ports": [0]}"#, "ports[0]: \"0\" is not a valid port: ports are 1-65535"),
    (r#"{"ports": ["65536"]}"#, "ports[0]: \"65536\" is not a valid port: ports are 1-65535"),
    (r#"{"ports": [65536]}"#, "ports[0]: \"65536\" is not a valid port"),
    (r#"{"ports": [-1]}"#, "ports[0]: \"-1\" is not a valid port"),
    (r#"{"ports": [""]}"#, "ports[0]: empty port"),
    (r#"{"ports": ""}"#, "ports[0]: empty port"),
    (r#"{"ports": "80,,90"}"#, "ports[1]: empty port"),
    (r#"{"ports": [true]}"#, "ports[0]: invalid type: boolean `true`, expected a port 1-65535"),
    (r#"{"ports": [80.5]}"#, "ports[0]: \"80.5\" is not a whole number: ports are 1-65535"),
    (r#"{"ports": [18446744073709551615]}"#, "ports[0]: \"18446744073709551615\" is not a valid port"),
    (r#"{"ports": [9223372036854775808]}"#, "ports[0]: \"9223372036854775808\" is not a valid port"),
    (r#"{"ports": [1e30]}"#, "ports[0]: \"1e+30\" is not a valid port"),
    (r#"{"ports": []}"#, "ports is empty"),
    (r#"{"ports": [80], "state": "absent", "exclusive": true}"#, "exclusive=true only makes sense with state=present"),
    (r#"{"ports": [80], "min_free_ephemeral": -1}"#, "min_free_ephemeral must be between 0 and 65535, got -1"),
    (r#"{"ports": [80], "min_free_ephemeral": 65536}"#, "min_free_ephemeral must be between 0 and 65535, got 65536"),
    (
        r#"{"ports": [80], "min_free_ephemeral": 9999999999}"#,
        "min_free_ephemeral must be between 0 and 65535, got 9999999999",
    ),
    (
        r#"{"ports": [80], "min_free_ephemeral": "9999999999"}"#,
        "min_free_ephemeral must be between 0 and 65535, got 9999999999",
    ),
    (r#"{"ports": [80], "lock_timeout": -1}"#, "lock_timeout must be between 0 and 3600 seconds, got -1"),
    (r#"{"ports": [80], "lock_timeout": 3601}"#, "lock_timeout must be between 0 and 3600 seconds, got 3601"),
    (
        r#"{"ports": [80], "lock_timeout": 9223372036854775807}"#,
        "lock_timeout must be between 0 and 3600 seconds, got 9223372036854775807",
    ),
    (r#"{"ports": [80], "lock_timeout": "86400"}"#, "lock_timeout must be between 0 and 3600 seconds, got 86400"),
    (
        r#"{"ports": [80], "lock_timeout": "soon"}"#,
        "argument 'lock_timeout' is of type str and we were unable to convert to int",
    ),
    (r#"{"ports": [80], "sysctl_file": "relative.conf"}"#, "sysctl_file must be an absolute path"),
    // Ansible's own flags: a value AnsibleModule would not read as a boolean
    // is refused, never taken as false (a check would become a real change).
    (
        r#"{"ports": [8080], "_ansible_check_mode": "maybe"}"#,
        r#"_ansible_check_mode must be a boolean (true or false), got "maybe": the module did not run"#,
    ),
    (r#"{"ports": [8080], "_ansible_check_mode": 2}"#, "_ansible_check_mode must be a boolean (true or false), got 2"),
    (
        r#"{"ports": [8080], "_ansible_check_mode": [true]}"#,
        "_ansible_check_mode must be a boolean (true or false), got [true]",
    ),
    (
        r#"{"ports": [8080], "_ansible_check_mode": {}}"#,
        "_ansible_check_mode must be a boolean (true or false), got {}",
    ),
    (
        r#"{"ports": [8080], "_ansible_diff": "maybe"}"#,
        r#"_ansible_diff must be a boolean (true or false), got "maybe""#,
    ),
    (r#"{"ports": [8080], "_ansible_no_log": 2}"#, "_ansible_no_log must be a boolean (true or false), got 2"),
];

#[test]
fn bad_input_fails_cleanly_and_changes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    sandbox.write(FILE, FILE_BEFORE);
    for (args, expected) in CASES {
        let run = sandbox.run_module_text("reserved_ports", args);
        run.assert_failed_with(expected);
        assert_eq!(sandbox.reserved(), "9000", "kernel untouched after {args}");
        assert_eq!(sandbox.read(FILE), FILE_BEFORE, "file untouched after {args}");
        assert_eq!(sandbox.sh("ls -A /etc/sysctl.d"), "90-reserved-ports.conf\n", "no stray files after {args}");
    }
}

#[test]
fn an_unreadable_no_log_echoes_no_arguments() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    for no_log in [r#""maybe""#, "2", "[true]", "{}"] {
        let args = format!(
            r#"{{"ports": [8080], "sysctl_file": "/etc/sysctl.d/90-s3cr3t.conf", "_ansible_no_log": {no_log}}}"#
        );
        let run = sandbox.run_module_text("reserved_ports", &args);
        run.assert_failed_with(&format!("_ansible_no_log must be a boolean (true or false), got {no_log}"));
        assert!(run.json.get("invocation").is_none(), "no arguments echoed: {}", run.json);
        assert!(!run.json.to_string().contains("s3cr3t"), "no argument anywhere in the result: {}", run.json);
        assert_eq!(sandbox.reserved(), "9000", "kernel untouched with _ansible_no_log {no_log}");
        assert_eq!(sandbox.sh("ls -A /etc/sysctl.d"), "", "no file written with _ansible_no_log {no_log}");
    }
}

#[test]
fn a_missing_args_file_is_a_clean_failure() {
    let mut command = command_for("reserved_ports");
    command.arg("/nonexistent/portmatrix-args");
    let run = run(command);
    run.assert_failed_with("cannot read the arguments from /nonexistent/portmatrix-args");
}

#[test]
fn key_value_strings_are_coerced_like_ansible_does() {
    let sandbox = Sandbox::new();
    let run = sandbox.run_module_text(
        "reserved_ports",
        r#"{"ports": "8080,8081-8090", "persist": "no", "min_free_ephemeral": "0", "exclusive": "False"}"#,
    );
    run.assert_ok();
    assert_eq!(sandbox.reserved(), "8080-8090");
    assert_eq!(sandbox.read_optional(FILE), None, "persist=no writes no file");
}
