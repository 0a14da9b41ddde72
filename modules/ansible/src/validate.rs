//! Checks user options against a module's declared options, the way
//! `AnsibleModule` does, and turns them into canonical JSON (declared types,
//! defaults filled in) that a module deserialises into its own struct.

use std::fmt;

use serde_json::{Map, Value};

use crate::coerce::{self, python_type};
use crate::spec::{Kind, OptionSpec};

/// One thing wrong with the arguments. Messages follow `AnsibleModule`'s wording
/// so that users recognise them, and always name the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentError {
    #[error(
        "Unsupported parameters for ({module}) module: {}{}. Supported parameters include: {}",
        .names.join(", "), and_more(*.more), .supported.join(", ")
    )]
    Unsupported {
        module: String,
        /// The first of them, in order.
        names: Vec<String>,
        /// How many more there are.
        more: usize,
        supported: Vec<String>,
    },
    #[error("missing required arguments: {}", .names.join(", "))]
    Missing { names: Vec<String> },
    #[error("argument '{option}' is of type {found} and we were unable to convert to {wanted}: {detail}")]
    WrongType { option: String, found: &'static str, wanted: &'static str, detail: String },
    #[error("value of {option} must be one of: {}, got: {got}", .choices.join(", "))]
    NotAChoice { option: String, choices: Vec<String>, got: String },
}

/// How many problems (or unknown option names) a failure lists; the rest are
/// counted. A list of 500,000 bad items must not become a message of 50 MB.
pub const MAX_LISTED: usize = 10;

fn and_more(more: usize) -> String {
    if more == 0 { String::new() } else { format!(" and {more} more") }
}

/// All that is wrong with the arguments, reported together so that a user
/// fixes them in one round: the first [`MAX_LISTED`] problems, and how many
/// more there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArgumentErrors {
    /// The first problems found, at most [`MAX_LISTED`].
    pub listed: Vec<ArgumentError>,
    /// How many more were found.
    pub more: usize,
}

impl ArgumentErrors {
    fn push(&mut self, error: ArgumentError) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(error);
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
}

impl fmt::Display for ArgumentErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.listed.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))?;
        if self.more > 0 {
            write!(f, "; and {} more problems", self.more)?;
        }
        Ok(())
    }
}

impl std::error::Error for ArgumentErrors {}

/// Validates `given` (user options only, no `_ansible_*` keys) against
/// `options`. Returns every declared option, with defaults or null where
/// the user gave nothing.
///
/// `given` is converted in place, never copied: arguments may be megabytes
/// (see [`crate::MAX_ARGS_BYTES`]), and each copy of their parsed form costs
/// many times that.
pub fn validate(
    module: &str,
    options: &[OptionSpec],
    given: Map<String, Value>,
) -> Result<Map<String, Value>, ArgumentErrors> {
    let mut errors = ArgumentErrors::default();
    let params = validate_level(module, options, given, "", &mut errors);
    if errors.is_empty() { Ok(params) } else { Err(errors) }
}

/// One level of options: the module's own, or a dict option's sub-options.
/// `prefix` is how the level is named in messages ("" or "expect[2].").
fn validate_level(
    module: &str,
    options: &[OptionSpec],
    mut params: Map<String, Value>,
    prefix: &str,
    errors: &mut ArgumentErrors,
) -> Map<String, Value> {
    let mut unknown: Vec<&str> =
        params.keys().map(String::as_str).filter(|k| !options.iter().any(|o| o.name == *k)).collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let more = unknown.len().saturating_sub(MAX_LISTED);
        let names = unknown.iter().take(MAX_LISTED).map(|k| format!("{prefix}{k}")).collect();
        let mut supported: Vec<String> = options.iter().map(|o| o.name.to_string()).collect();
        supported.sort();
        errors.push(ArgumentError::Unsupported { module: module.to_string(), names, more, supported });
        // The result is discarded: what the other options hold still gets
        // checked, so that every problem is reported in one round.
    }

    let mut missing = Vec::new();
    for option in options {
        // An explicit null means "not given", so the default applies.
        if let Some(slot) = params.get_mut(option.name).filter(|v| !v.is_null()) {
            let raw = std::mem::take(slot);
            *slot = convert(module, &format!("{prefix}{}", option.name), option, raw, errors);
            continue;
        }
        let value = if option.required {
            missing.push(format!("{prefix}{}", option.name));
            Value::Null
        } else {
            option.default.to_json()
        };
        params.insert(option.name.to_string(), value);
    }
    if !missing.is_empty() {
        errors.push(ArgumentError::Missing { names: missing });
    }
    params
}

fn convert(module: &str, name: &str, option: &OptionSpec, raw: Value, errors: &mut ArgumentErrors) -> Value {
    let found = python_type(&raw);
    let value = match convert_kind(module, name, &option.kind, raw, errors) {
        Ok(value) => value,
        Err(detail) => {
            errors.push(ArgumentError::WrongType {
                option: name.to_string(),
                found,
                wanted: option.kind.ansible_name(),
                detail,
            });
            return Value::Null;
        }
    };
    check_choices(name, option, &value, errors);
    value
}

/// `raw` as `kind`. Lists and dicts are converted element by element in
/// their own storage.
fn convert_kind(
    module: &str,
    name: &str,
    kind: &Kind,
    raw: Value,
    errors: &mut ArgumentErrors,
) -> Result<Value, String> {
    match kind {
        Kind::Str => coerce::to_str(raw),
        Kind::Int => coerce::to_int(&raw),
        Kind::Bool => coerce::to_bool(&raw),
        Kind::Path => coerce::to_path(raw),
        Kind::Raw => Ok(raw),
        Kind::Dict(suboptions) => {
            let given = coerce::to_dict(raw)?;
            Ok(Value::Object(validate_level(module, suboptions, given, &format!("{name}."), errors)))
        }
        Kind::List(Kind::Raw) => Ok(Value::Array(coerce::to_list(raw)?)),
        Kind::List(elements) => {
            let mut items = coerce::to_list(raw)?;
            for (index, slot) in items.iter_mut().enumerate() {
                let item = std::mem::take(slot);
                let found = python_type(&item);
                let item_name = format!("{name}[{index}]");
                match convert_kind(module, &item_name, elements, item, errors) {
                    Ok(value) => *slot = value,
                    // The slot stays null; the errors fail the whole run.
                    Err(detail) => errors.push(ArgumentError::WrongType {
                        option: item_name,
                        found,
                        wanted: elements.ansible_name(),
                        detail,
                    }),
                }
            }
            Ok(Value::Array(items))
        }
    }
}

fn check_choices(name: &str, option: &OptionSpec, value: &Value, errors: &mut ArgumentErrors) {
    if option.choices.is_empty() {
        return;
    }
    let values: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for value in values {
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
        if !option.choices.contains(&text.as_str()) {
            errors.push(ArgumentError::NotAChoice {
                option: name.to_string(),
                choices: option.choices.iter().map(std::string::ToString::to_string).collect(),
                got: text,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DefaultValue;
    use serde_json::json;

    const ITEM: &[OptionSpec] = &[
        OptionSpec::new("port", Kind::Int, "").required(),
        OptionSpec::new("proto", Kind::Str, "").default(DefaultValue::Str("tcp")).choices(&["tcp", "udp"]),
    ];
    const OPTIONS: &[OptionSpec] = &[
        OptionSpec::new("ports", Kind::List(&Kind::Raw), "").required(),
        OptionSpec::new("state", Kind::Str, "").default(DefaultValue::Str("present")).choices(&["present", "absent"]),
        OptionSpec::new("persist", Kind::Bool, "").default(DefaultValue::Bool(true)),
        OptionSpec::new("limit", Kind::Int, "").default(DefaultValue::Int(1024)),
        OptionSpec::new("expect", Kind::List(&Kind::Dict(ITEM)), ""),
    ];

    fn run(given: Value) -> Result<Map<String, Value>, ArgumentErrors> {
        let Value::Object(given) = given else { panic!("arguments are a JSON object") };
        validate("probe", OPTIONS, given)
    }

    fn message(given: Value) -> String {
        run(given).unwrap_err().to_string()
    }

    #[test]
    fn fills_defaults_and_coerces_strings() {
        let params = run(json!({"ports": "80,443", "persist": "no", "limit": "10"})).unwrap();
        assert_eq!(params["ports"], json!(["80", "443"]));
        assert_eq!(params["state"], json!("present"));
        assert_eq!(params["persist"], json!(false));
        assert_eq!(params["limit"], json!(10));
        assert_eq!(params["expect"], Value::Null);
    }

    #[test]
    fn explicit_null_takes_the_default() {
        let params = run(json!({"ports": [1], "state": null})).unwrap();
        assert_eq!(params["state"], json!("present"));
    }

    #[test]
    fn unknown_options_use_ansible_wording() {
        assert_eq!(
            message(json!({"ports": [1], "foo": 1, "bar": 2})),
            "Unsupported parameters for (probe) module: bar, foo. Supported parameters include: expect, limit, persist, ports, state"
        );
    }

    #[test]
    fn missing_required_and_bad_choice() {
        assert_eq!(message(json!({})), "missing required arguments: ports");
        assert_eq!(
            message(json!({"ports": [1], "state": "gone"})),
            "value of state must be one of: present, absent, got: gone"
        );
    }

    #[test]
    fn wrong_types_name_option_and_value() {
        assert_eq!(
            message(json!({"ports": {"a": 1}})),
            "argument 'ports' is of type dict and we were unable to convert to list: dict cannot be converted to a list"
        );
        let msg = message(json!({"ports": [1], "limit": "lots"}));
        assert!(
            msg.contains("argument 'limit' is of type str") && msg.contains("\"lots\" is not a valid integer"),
            "{msg}"
        );
    }

    #[test]
    fn all_errors_are_reported_together() {
        let errors = run(json!({"foo": 1, "persist": "maybe"})).unwrap_err();
        assert_eq!(errors.listed.len(), 3, "{errors}");
    }

    #[test]
    fn a_flood_of_problems_is_listed_up_to_a_bound_and_counted() {
        let items: Vec<Value> = (0..1000).map(|_| json!({"proto": "sctp"})).collect();
        let errors = run(json!({"ports": [1], "expect": items})).unwrap_err();
        // Per item: the bad choice and the missing port.
        assert_eq!((errors.listed.len(), errors.more), (MAX_LISTED, 2000 - MAX_LISTED));
        let msg = errors.to_string();
        assert!(msg.ends_with(&format!("; and {} more problems", 2000 - MAX_LISTED)), "{msg}");
        assert!(msg.len() < 2000, "{msg}");

        let mut given: Map<String, Value> = (0..1000).map(|i| (format!("x{i:04}"), json!(1))).collect();
        given.insert("ports".into(), json!([1]));
        let msg = validate("probe", OPTIONS, given).unwrap_err().to_string();
        assert!(
            msg.starts_with("Unsupported parameters for (probe) module: x0000, x0001,")
                && msg.contains("x0009 and 990 more. Supported parameters include: expect,"),
            "{msg}"
        );
    }

    #[test]
    fn suboptions_are_validated_with_their_path() {
        let params = run(json!({"ports": [1], "expect": [{"port": "5050"}]})).unwrap();
        assert_eq!(params["expect"], json!([{"port": 5050, "proto": "tcp"}]));
        let msg = message(json!({"ports": [1], "expect": [{"port": 1}, {"proto": "sctp", "x": 1}]}));
        assert!(msg.contains("module: expect[1].x."), "{msg}");
        assert!(msg.contains("missing required arguments: expect[1].port"), "{msg}");
        assert!(msg.contains("value of expect[1].proto must be one of: tcp, udp, got: sctp"), "{msg}");
        let msg = message(json!({"ports": [1], "expect": [7]}));
        assert!(msg.contains("argument 'expect[0]' is of type int and we were unable to convert to dict"), "{msg}");
    }
}
