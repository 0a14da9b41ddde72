//! Type coercion as `AnsibleModule` does it: `key=value` arguments arrive as
//! strings ("80", "yes"), so a string must become the declared type exactly
//! when Ansible's own modules would accept it.

use serde_json::{Map, Value};

/// Python's name for a JSON value's type: what an Ansible user reads in
/// `AnsibleModule`'s messages.
pub fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Why a value could not be converted; the caller adds the option's name.
pub type CoerceResult<T> = Result<T, String>;

pub fn to_str(value: Value) -> CoerceResult<Value> {
    match value {
        Value::String(_) => Ok(value),
        Value::Number(n) => Ok(Value::String(n.to_string())),
        Value::Bool(b) => Ok(Value::String(if b { "True" } else { "False" }.into())),
        other => Err(format!("{} cannot be converted to a str", python_type(&other))),
    }
}

pub fn to_int(value: &Value) -> CoerceResult<Value> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i.into())
            } else if n.is_u64() {
                Err(format!("{n} {OUT_OF_RANGE}"))
            } else {
                // serde_json reads a fraction, an exponent, or an integer
                // beyond 64 bits as f64. A whole one is an integer, as
                // Ansible's int type says (it goes through Decimal).
                // Quoted as serde_json prints the float (1e+30), as portset
                // quotes ports; core's float formatting would cost 20 KB.
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 {
                    Err(format!("{n} is not an integer"))
                } else if (-I64_BOUND..I64_BOUND).contains(&f) {
                    #[expect(clippy::cast_possible_truncation, reason = "a whole number within i64's range")]
                    Ok((f as i64).into())
                } else {
                    Err(format!("{n} {OUT_OF_RANGE}"))
                }
            }
        }
        Value::String(s) => match parse_python_int(s) {
            Some(Ok(i)) => Ok(i.into()),
            Some(Err(TooLarge)) => Err(format!("{s:?} {OUT_OF_RANGE}")),
            None => Err(format!("{s:?} is not a valid integer")),
        },
        other => Err(format!("{} cannot be converted to an int", python_type(other))),
    }
}

/// Options are 64-bit: a whole number outside is one, only too large.
const OUT_OF_RANGE: &str = "is out of range: integers are -9223372036854775808 to 9223372036854775807";

/// 2^63, exactly: whole floats in [-2^63, 2^63) convert to i64 exactly.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

/// A well-formed integer that does not fit in 64 bits.
struct TooLarge;

/// Python's `int(str)`: surrounding whitespace, an optional sign, decimal
/// digits with single underscores between them. Leading zeros read as decimal.
/// `None` when the text is not an integer at all.
fn parse_python_int(text: &str) -> Option<Result<i64, TooLarge>> {
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first()? {
        b'+' => (false, &t[1..]),
        b'-' => (true, &t[1..]),
        _ => (false, t),
    };
    let bytes = digits.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes.first()?.is_ascii_digit()
        && bytes.last()?.is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !digits.contains("__");
    if !well_formed {
        return None;
    }
    // Parsed with its sign, so that i64::MIN fits.
    let signed = format!("{}{}", if negative { "-" } else { "" }, digits.replace('_', ""));
    Some(signed.parse().map_err(|_| TooLarge))
}

const TRUE_WORDS: [&str; 6] = ["y", "yes", "on", "1", "true", "t"];
const FALSE_WORDS: [&str; 6] = ["n", "no", "off", "0", "false", "f"];

pub fn to_bool(value: &Value) -> CoerceResult<Value> {
    let invalid = || {
        format!(
            "the value {value} is not a valid boolean. Valid booleans include: {}",
            TRUE_WORDS.iter().chain(FALSE_WORDS.iter()).map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", ")
        )
    };
    match value {
        Value::Bool(_) => Ok(value.clone()),
        Value::String(s) => {
            let word = s.trim().to_ascii_lowercase();
            if TRUE_WORDS.contains(&word.as_str()) {
                Ok(true.into())
            } else if FALSE_WORDS.contains(&word.as_str()) {
                Ok(false.into())
            } else {
                Err(invalid())
            }
        }
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Ok(true.into()),
            Some(0.0) => Ok(false.into()),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

pub fn to_path(value: Value) -> CoerceResult<Value> {
    let Value::String(s) = to_str(value)? else { unreachable!("to_str returns strings") };
    Ok(Value::String(expand_home(&s, &std::env::var("HOME").unwrap_or_default())))
}

/// `~` and `~/...` expand to $HOME, as `AnsibleModule`'s `path` type does.
fn expand_home(path: &str, home: &str) -> String {
    if home.is_empty() {
        return path.to_string();
    }
    if path == "~" {
        home.to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        path.to_string()
    }
}

/// A list as Ansible accepts one: a list, or a comma-separated string, or a
/// lone number. A list is taken over as it is, not copied.
pub fn to_list(value: Value) -> CoerceResult<Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        Value::String(s) => Ok(s.split(',').map(|part| Value::String(part.to_string())).collect()),
        Value::Number(n) => Ok(vec![Value::String(n.to_string())]),
        other => Err(format!("{} cannot be converted to a list", python_type(&other))),
    }
}

/// A dict, or a string holding a JSON object.
pub fn to_dict(value: Value) -> CoerceResult<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        Value::String(s) if s.trim_start().starts_with('{') => match serde_json::from_str(&s) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("{s:?} is not a valid JSON object")),
        },
        other => Err(format!("{} cannot be converted to a dict", python_type(&other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ints_coerce_like_python() {
        assert_eq!(to_int(&json!("80")).unwrap(), json!(80));
        assert_eq!(to_int(&json!(" 0080 ")).unwrap(), json!(80));
        assert_eq!(to_int(&json!("1_024")).unwrap(), json!(1024));
        assert_eq!(to_int(&json!("-5")).unwrap(), json!(-5));
        assert_eq!(to_int(&json!(3.0)).unwrap(), json!(3));
        for bad in
            [json!("0x10"), json!("8 0"), json!(""), json!("1__0"), json!("_1"), json!(2.5), json!([1]), json!(true)]
        {
            assert!(to_int(&bad).is_err(), "{bad} must not become an int");
        }
        assert_eq!(to_int(&json!(1e17)).unwrap(), json!(100_000_000_000_000_000_i64));
        assert_eq!(to_int(&json!("-9223372036854775808")).unwrap(), json!(i64::MIN));
    }

    #[test]
    fn whole_numbers_beyond_64_bits_are_out_of_range_not_malformed() {
        let out_of_range = "is out of range: integers are -9223372036854775808 to 9223372036854775807";
        let cases = [
            (json!(u64::MAX), "18446744073709551615"),
            (json!(1u64 << 63), "9223372036854775808"),
            (json!(1e30), "1e+30"),
            (json!(-1e19), "-1e+19"),
            (json!("99999999999999999999999"), r#""99999999999999999999999""#),
            (json!("-9223372036854775809"), r#""-9223372036854775809""#),
        ];
        for (value, quoted) in cases {
            assert_eq!(to_int(&value).unwrap_err(), format!("{quoted} {out_of_range}"), "{value}");
        }
        assert_eq!(to_int(&json!(2.5)).unwrap_err(), "2.5 is not an integer");
        assert_eq!(to_int(&json!("2.5")).unwrap_err(), r#""2.5" is not a valid integer"#);
    }

    #[test]
    fn bools_accept_ansible_words_in_any_case() {
        for word in ["yes", "YES", "On", "1", "true", "T", "y"] {
            assert_eq!(to_bool(&json!(word)).unwrap(), json!(true), "{word}");
        }
        for word in ["no", "Off", "0", "FALSE", "f", "n"] {
            assert_eq!(to_bool(&json!(word)).unwrap(), json!(false), "{word}");
        }
        assert_eq!(to_bool(&json!(1)).unwrap(), json!(true));
        assert_eq!(to_bool(&json!(0)).unwrap(), json!(false));
        let err = to_bool(&json!("maybe")).unwrap_err();
        assert!(err.contains("\"maybe\" is not a valid boolean"), "{err}");
        assert!(to_bool(&json!(2)).is_err());
    }

    #[test]
    fn lists_split_strings_on_commas() {
        assert_eq!(to_list(json!("80,443")).unwrap(), vec![json!("80"), json!("443")]);
        assert_eq!(to_list(json!("")).unwrap(), vec![json!("")]);
        assert_eq!(to_list(json!(80)).unwrap(), vec![json!("80")]);
        assert!(to_list(json!({"a": 1})).unwrap_err().contains("dict cannot be converted to a list"));
    }

    #[test]
    fn strings_and_paths() {
        assert_eq!(to_str(json!(80)).unwrap(), json!("80"));
        assert!(to_str(json!([1])).is_err());
        assert_eq!(to_path(json!("/etc/x.conf")).unwrap(), json!("/etc/x.conf"));
        assert_eq!(expand_home("~/x.conf", "/root/"), "/root/x.conf");
        assert_eq!(expand_home("~", "/root"), "/root");
        assert_eq!(expand_home("a/~/b", "/root"), "a/~/b");
    }

    #[test]
    fn dicts_accept_objects_and_json_strings() {
        assert_eq!(to_dict(json!({"a": 1})).unwrap()["a"], json!(1));
        assert_eq!(to_dict(json!("{\"a\": 1}")).unwrap()["a"], json!(1));
        assert!(to_dict(json!("a=1")).is_err());
    }
}
