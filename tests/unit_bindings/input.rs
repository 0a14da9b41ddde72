//! Bad input: every case gives `failed`, exit status 1 and a message naming
//! the option (or the item and key of `expect`) and the problem. The module
//! never changes anything, so there is nothing else to check.

use portmatrix_tests::module::{command_for, run, run_with_args_text};

const CASES: &[(&str, &str)] = &[
    (r#"{"expect": [{"port": 80, "unit": "a"}"#, "are not valid JSON"),
    (r#"{"timeout": 1}"#, "missing required arguments: expect"),
    (r#"{"expect": [80]}"#, "argument 'expect[0]' is of type int and we were unable to convert to dict"),
    (
        r#"{"expect": [{"port": 80, "unit": "a", "colour": "red"}]}"#,
        "Unsupported parameters for (unit_bindings) module: expect[0].colour. Supported parameters include: bind, port, proto, state, unit",
    ),
    (
        r#"{"expect": [{"port": 80, "unit": "a"}], "colour": 1}"#,
        "Unsupported parameters for (unit_bindings) module: colour. Supported parameters include: expect, facts, fail_on_mismatch, timeout",
    ),
    (r#"{"expect": [{"unit": "a"}]}"#, "missing required arguments: expect[0].port"),
    (
        r#"{"expect": [{"port": 80, "state": "free"}, {"port": 80, "unit": "x", "proto": "icmp"}]}"#,
        "value of expect[1].proto must be one of: tcp, udp, got: icmp",
    ),
    (
        r#"{"expect": [{"port": 80, "unit": "a", "state": "closed"}]}"#,
        "value of expect[0].state must be one of: listening, free, got: closed",
    ),
    (
        r#"{"expect": [{"port": 80, "unit": "a", "bind": "public"}]}"#,
        "value of expect[0].bind must be one of: any, loopback, got: public",
    ),
    (r#"{"expect": [{"port": "abc", "unit": "a"}]}"#, "expect[0].port: \"abc\" is not a port number"),
    (r#"{"expect": [{"port": 0, "unit": "a"}]}"#, "expect[0].port: \"0\" is not a valid port: ports are 1-65535"),
    (
        r#"{"expect": [{"port": 65536, "unit": "a"}]}"#,
        "expect[0].port: \"65536\" is not a valid port: ports are 1-65535",
    ),
    (
        r#"{"expect": [{"port": 18446744073709551615, "unit": "a"}]}"#,
        "expect[0].port: \"18446744073709551615\" is not a valid port: ports are 1-65535",
    ),
    (
        r#"{"expect": [{"port": 9223372036854775808, "unit": "a"}]}"#,
        "expect[0].port: \"9223372036854775808\" is not a valid port: ports are 1-65535",
    ),
    (r#"{"expect": [{"port": -1, "unit": "a"}]}"#, "expect[0].port: \"-1\" is not a valid port: ports are 1-65535"),
    (
        r#"{"expect": [{"port": 1e30, "unit": "a"}]}"#,
        "expect[0].port: \"1e+30\" is not a valid port: ports are 1-65535",
    ),
    (r#"{"expect": [{"port": 80.5, "unit": "a"}]}"#, "expect[0].port: \"80.5\" is not a whole number"),
    (r#"{"expect": [{"port": "9000-8000", "state": "free"}]}"#, "expect[0].port: range \"9000-8000\" is reversed"),
    (r#"{"expect": [{"port": true, "state": "free"}]}"#, "expect[0].port: invalid type: boolean `true`"),
    (r#"{"expect": [{"port": 80}]}"#, "expect[0].unit is required with state=listening"),
    (
        r#"{"expect": [{"port": 80, "unit": "dcos.target"}]}"#,
        "expect[0].unit \"dcos.target\" is a target unit, which holds no processes",
    ),
    (r#"{"expect": [{"port": 80, "unit": " "}]}"#, "expect[0].unit is empty"),
    (
        r#"{"expect": [{"port": 80, "state": "free", "bind": "loopback"}]}"#,
        "expect[0].bind=loopback only applies to state=listening",
    ),
    (r#"{"expect": [{"port": 80, "unit": "a"}], "timeout": -1}"#, "timeout must be 0 or more seconds, got -1"),
    (r#"{"expect": [{"port": 80, "unit": "a"}], "timeout": 99999999999}"#, "timeout must be at most 86400 seconds"),
    (
        r#"{"expect": [{"port": 80, "unit": "a"}], "timeout": "soon"}"#,
        "argument 'timeout' is of type str and we were unable to convert to int",
    ),
    (
        r#"{"expect": [{"port": 80, "unit": "a"}], "fail_on_mismatch": "perhaps"}"#,
        "argument 'fail_on_mismatch' is of type str and we were unable to convert to bool",
    ),
    (r#"{"expect": []}"#, "expect is empty: name at least one port"),
];

#[test]
fn bad_input_fails_cleanly() {
    for (args, expected) in CASES {
        let run = run_with_args_text(command_for("unit_bindings"), args);
        run.assert_failed_with(expected);
        assert!(run.json.get("results").is_none(), "no verdicts on bad input: {args}");
        assert!(run.stderr.is_empty(), "nothing on stderr for {args}: {}", run.stderr);
    }
}

#[test]
fn a_missing_args_file_is_a_clean_failure() {
    let mut command = command_for("unit_bindings");
    command.arg("/nonexistent/portmatrix-args");
    run(command).assert_failed_with("cannot read the arguments from /nonexistent/portmatrix-args");
}

#[test]
fn key_value_strings_are_coerced_and_unit_names_read_as_systemctl_does() {
    // A port nothing in a fresh namespace holds; strings as key=value gives them.
    let sandbox = portmatrix_tests::sandbox::Sandbox::new();
    let run = sandbox.run_module_text(
        "unit_bindings",
        r#"{"expect": [{"port": "8080", "unit": "dcos-marathon"}], "timeout": "0", "fail_on_mismatch": "no"}"#,
    );
    run.assert_ok();
    assert_eq!(run.json["results"][0]["unit"], "dcos-marathon.service");
    assert_eq!(run.json["results"][0]["port"], 8080);
    assert_eq!(run.msg(), "8080/tcp: nothing listening, expected dcos-marathon.service");
}
