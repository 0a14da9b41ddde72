//! What a module hands back, and the one JSON object that goes to stdout.

use serde::Serialize;
use serde_json::{Map, Value};

/// One before/after pair, shown by `ansible-playbook --diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub before_header: String,
    pub after_header: String,
    pub before: String,
    pub after: String,
}

impl Diff {
    /// A diff of one named thing (a file, a kernel setting).
    pub fn of(header: impl Into<String>, before: impl Into<String>, after: impl Into<String>) -> Self {
        let header = header.into();
        Diff { before_header: header.clone(), after_header: header, before: before.into(), after: after.into() }
    }
}

/// A successful run's result.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub changed: bool,
    pub msg: String,
    pub warnings: Vec<String>,
    pub diffs: Vec<Diff>,
    /// Module-specific return values.
    pub fields: Map<String, Value>,
}

impl Response {
    pub fn new(changed: bool, msg: impl Into<String>) -> Self {
        Response { changed, msg: msg.into(), ..Default::default() }
    }

    /// Adds a return value. Values that cannot be serialised are a bug in
    /// the module and become null rather than a broken result.
    pub fn field(mut self, key: &str, value: impl Serialize) -> Self {
        self.fields.insert(key.to_string(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }
}

/// A failed run's result: a message for the operator, plus whatever return
/// values help them see what was found before it failed.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    pub msg: String,
    pub warnings: Vec<String>,
    pub fields: Map<String, Value>,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Self {
        Failure { msg: msg.into(), ..Default::default() }
    }

    pub fn field(mut self, key: &str, value: impl Serialize) -> Self {
        self.fields.insert(key.to_string(), serde_json::to_value(value).unwrap_or(Value::Null));
        self
    }
}

/// Any error becomes a failure whose message is the error and each of its
/// causes, outermost first (library errors do not repeat their source).
impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::new(error_chain(&error))
    }
}

pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut msg = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        cause = inner.source();
    }
    msg
}

/// A task's `msg` that names many items, one line each: the first `limit`
/// of `lines`, then `... and N more WHAT` for the rest of `total`, so that a
/// result stays readable however many items fail (each still has its own
/// entry in the result).
pub fn first_lines<'a>(lines: impl IntoIterator<Item = &'a str>, total: usize, limit: usize, what: &str) -> String {
    let named: Vec<&str> = lines.into_iter().take(limit).collect();
    let msg = named.join("\n");
    if total > named.len() { format!("{msg}\n... and {} more {what}", total - named.len()) } else { msg }
}

/// The result object, and the exit status that goes with it.
pub struct Output {
    pub json: Value,
    pub exit_code: i32,
}

/// How the run was asked for: decides whether diffs and arguments are echoed.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub diff: bool,
    pub no_log: bool,
    pub module_args: Option<Map<String, Value>>,
}

pub fn success(response: Response, echo: Echo) -> Output {
    let mut json = Map::new();
    json.insert("changed".into(), response.changed.into());
    json.insert("failed".into(), false.into());
    json.insert("msg".into(), response.msg.into());
    json.insert("warnings".into(), response.warnings.into());
    if echo.diff {
        let diffs = serde_json::to_value(&response.diffs).unwrap_or(Value::Null);
        json.insert("diff".into(), diffs);
    }
    finish(json, response.fields, echo, 0)
}

pub fn failure(failure: Failure, echo: Echo) -> Output {
    let mut json = Map::new();
    json.insert("changed".into(), false.into());
    json.insert("failed".into(), true.into());
    json.insert("msg".into(), failure.msg.into());
    json.insert("warnings".into(), failure.warnings.into());
    finish(json, failure.fields, echo, 1)
}

fn finish(mut json: Map<String, Value>, fields: Map<String, Value>, echo: Echo, exit_code: i32) -> Output {
    for (key, value) in fields {
        // The protocol's own keys are not the module's to overwrite.
        json.entry(key).or_insert(value);
    }
    if let (Some(args), false) = (echo.module_args, echo.no_log) {
        // Moved in, not serialised again: the arguments may be megabytes.
        let invocation = Map::from_iter([("module_args".to_string(), Value::Object(args))]);
        json.insert("invocation".into(), Value::Object(invocation));
    }
    Output { json: Value::Object(json), exit_code }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_lines_names_the_first_items_and_counts_the_rest() {
        let items = ["a", "b", "c"];
        assert_eq!(first_lines(items, 3, 5, "x"), "a\nb\nc");
        assert_eq!(first_lines(items, 3, 2, "problems"), "a\nb\n... and 1 more problems");
        // The total may count items the iterator no longer has.
        assert_eq!(first_lines(items, 10, 3, "(see results)"), "a\nb\nc\n... and 7 more (see results)");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write /etc/x")]
    struct Outer {
        source: std::io::Error,
    }

    #[test]
    fn failure_message_carries_the_cause_chain() {
        let error = Outer { source: std::io::Error::other("disk full") };
        assert_eq!(Failure::from(error).msg, "cannot write /etc/x: disk full");
    }

    #[test]
    fn diff_only_when_asked_and_module_cannot_overwrite_protocol_keys() {
        let response = Response { diffs: vec![Diff::of("f", "a", "b")], ..Response::new(true, "done") }
            .field("changed", false)
            .field("reserved", "80");
        let plain = success(response.clone(), Echo::default());
        assert_eq!(plain.json["changed"], json!(true));
        assert_eq!(plain.json["reserved"], json!("80"));
        assert!(plain.json.get("diff").is_none());
        let with_diff = success(response, Echo { diff: true, ..Echo::default() });
        assert_eq!(with_diff.json["diff"][0]["after"], json!("b"));
        assert_eq!(with_diff.exit_code, 0);
    }

    #[test]
    fn failure_exits_one_and_echoes_arguments_unless_no_log() {
        let args: Map<String, Value> = json!({"ports": [1]}).as_object().unwrap().clone();
        let echo = Echo { module_args: Some(args), ..Echo::default() };
        let out = failure(Failure::new("bad"), echo.clone());
        assert_eq!(out.exit_code, 1);
        assert_eq!(out.json["failed"], json!(true));
        assert_eq!(out.json["invocation"]["module_args"]["ports"], json!([1]));
        let hidden = failure(Failure::new("bad"), Echo { no_log: true, ..echo });
        assert!(hidden.json.get("invocation").is_none());
    }
}
