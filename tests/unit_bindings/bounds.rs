//! A result's size stays bounded whatever the input: many expectations over
//! ranges full of sockets give each result a few owners and a count, each
//! mismatch a few named ports and a count, and `msg` a few lines and a
//! count, never expectations x sockets. Sizes are kept well below what
//! would strain a shared machine: the tester's repro, 500 copies of a
//! 200-port range with 200 listeners, took 16.8 MB of JSON and 110 MB of
//! memory before the caps.

use portmatrix_tests::listeners::{Hierarchy, Listener, UnitCgroup};
use portmatrix_tests::module::{ModuleRun, run_with_args_text};
use portmatrix_tests::module_binary;
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};
use unit_bindings::MISMATCHES_IN_MSG;
use unit_bindings::check::{OWNERS_IN_ALL_RESULTS, OWNERS_PER_RESULT, PROBLEMS_PER_VERDICT};

const FIRST: u16 = 20_000;
const LISTENERS: u16 = 200;
const ITEMS: usize = 500;

/// Address space for the run: measured need 9-12 MiB (before the caps it
/// held 110 MB resident).
const ADDRESS_SPACE: usize = 32 << 20;

/// Generous sizes of the JSON of one owner (its port, address, pid,
/// process, unit, `delegated_unit`, `socket_unit`, `activates` and `forwarder`: about 190
/// bytes here) and of a result's fields other than `owners` and `msg`.
const OWNER_JSON: usize = 210;
const RESULT_FIELDS_JSON: usize = 200;

/// One listener holding every port of FIRST..FIRST+LISTENERS, in bulk.service.
fn listeners(sandbox: &Sandbox, unit: &UnitCgroup) -> Listener {
    let specs: Vec<String> = (FIRST..FIRST + LISTENERS).map(|port| format!("tcp:0.0.0.0:{port}")).collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    Listener::start(sandbox, Some(unit), &specs)
}

fn run_limited(sandbox: &Sandbox, args: &Value) -> ModuleRun {
    let mut command = sandbox.command("prlimit");
    command.arg(format!("--as={ADDRESS_SPACE}")).arg(module_binary("unit_bindings"));
    run_with_args_text(command, &args.to_string())
}

#[test]
fn many_ranges_full_of_sockets_give_a_bounded_result_with_exact_counts() {
    let sandbox = Sandbox::new();
    let unit = UnitCgroup::new(Hierarchy::V2, "bulk.service");
    let listener = listeners(&sandbox, &unit);
    let range = format!("{FIRST}-{}", FIRST + LISTENERS - 1);
    let expect = vec![json!({"port": range, "state": "free"}); ITEMS];
    let run = run_limited(&sandbox, &json!({"fail_on_mismatch": false, "expect": expect}));
    run.assert_ok();
    assert_eq!(run.json["mismatches"], ITEMS);

    // Every result counts all 200 sockets, lists the 20 on the lowest ports
    // (the 500 x 20 listed fit the budget for all results exactly), and
    // names 5 conflicting ports and how many more.
    assert_eq!(ITEMS * OWNERS_PER_RESULT, OWNERS_IN_ALL_RESULTS);
    let holder = format!("python3 (pid {}, unit bulk.service)", listener.pid);
    let named: Vec<String> =
        (FIRST..).take(PROBLEMS_PER_VERDICT).map(|port| format!("{port} held by {holder}; ")).collect();
    let more = usize::from(LISTENERS) - PROBLEMS_PER_VERDICT;
    let line = format!("{range}/tcp: {}and {more} more ports held, expected free", named.concat());
    let lowest: Vec<u64> = (u64::from(FIRST)..).take(OWNERS_PER_RESULT).collect();
    let results = run.json["results"].as_array().unwrap();
    assert_eq!(results.len(), ITEMS);
    for result in results {
        assert_eq!(result["owners_total"], LISTENERS, "{result}");
        let ports: Vec<u64> =
            result["owners"].as_array().unwrap().iter().map(|o| o["port"].as_u64().unwrap()).collect();
        assert_eq!(ports, lowest, "the lowest ports first");
        assert_eq!(result["owners"][0]["unit"], "bulk.service");
        assert_eq!(result["msg"], line.as_str());
    }

    // The task's msg: the first 50 mismatch lines, then a count.
    let lines: Vec<&str> = run.msg().lines().collect();
    assert_eq!(lines.len(), MISMATCHES_IN_MSG + 1);
    assert!(lines[..MISMATCHES_IN_MSG].iter().all(|l| *l == line), "{}", lines[0]);
    assert_eq!(
        lines[MISMATCHES_IN_MSG],
        format!("... and {} more mismatches (see results)", ITEMS - MISMATCHES_IN_MSG)
    );

    // The whole result, from the caps: each result's fields, its listed
    // owners and its msg; the task's msg; a little for the rest.
    let result_max = RESULT_FIELDS_JSON + OWNERS_PER_RESULT * OWNER_JSON + line.len();
    let bound = ITEMS * result_max + (MISMATCHES_IN_MSG + 1) * (line.len() + 1) + 1000;
    let size = run.json.to_string().len();
    assert!(size < bound, "the result is {size} bytes, more than the {bound} the caps allow");
    assert!(bound < 2_500_000, "the bound itself is small: {bound}");
}

#[test]
fn facts_stay_whole_while_results_are_capped() {
    let sandbox = Sandbox::new();
    let unit = UnitCgroup::new(Hierarchy::V2, "bulk.service");
    let _listener = listeners(&sandbox, &unit);
    let range = format!("{FIRST}-{}", FIRST + LISTENERS - 1);
    let run = run_limited(&sandbox, &json!({"facts": true, "expect": [{"port": range, "unit": "bulk.service"}]}));
    run.assert_ok();
    assert_eq!(run.msg(), "all 1 expectations hold");
    let facts = run.json["ansible_facts"]["port_bindings"].as_array().unwrap();
    assert_eq!(facts.len(), usize::from(LISTENERS), "one fact per socket");
    assert_eq!(run.json["results"][0]["owners"].as_array().unwrap().len(), OWNERS_PER_RESULT);
    assert_eq!(run.json["results"][0]["owners_total"], LISTENERS);
}
