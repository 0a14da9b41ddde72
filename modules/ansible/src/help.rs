//! `MODULE --help`: the declared options, for a person at a terminal.

use std::fmt::Write;

use crate::spec::{DefaultValue, Kind, ModuleSpec, OptionSpec};

pub fn render(spec: &ModuleSpec) -> String {
    let mut out = String::new();
    let name = spec.name;
    let _ = writeln!(out, "{name} {} - {}\n", spec.version, spec.short_description);
    let _ = writeln!(out, "Usage: {name} ARGS_FILE        arguments as a JSON object in a file (how Ansible runs it)");
    let _ = writeln!(out, "       {name} -                arguments as a JSON object on standard input");
    let _ = writeln!(out, "       {name} --help | --version\n");
    let _ = writeln!(out, "Prints one JSON result object; exit status 0 on success, 1 on failure.");
    let _ = writeln!(out, "Set \"_ansible_check_mode\": true to plan without changing anything and");
    let _ = writeln!(out, "\"_ansible_diff\": true to get before/after.\n");
    let _ = writeln!(out, "Options:");
    render_options(&mut out, spec.options, 2);
    let _ = writeln!(out, "\nFull documentation: ansible-doc -M library {name}");
    out
}

fn render_options(out: &mut String, options: &[OptionSpec], indent: usize) {
    let pad = " ".repeat(indent);
    for option in options {
        let _ = writeln!(out, "{pad}{} ({})", option.name, describe_kind(option));
        for line in wrap(option.description, 76 - indent) {
            let _ = writeln!(out, "{pad}    {line}");
        }
        if let Some(sub) = option.kind.suboptions() {
            render_options(out, sub, indent + 4);
        }
    }
}

fn describe_kind(option: &OptionSpec) -> String {
    let mut parts = vec![match option.kind {
        Kind::List(elements) => format!("list of {}", elements.ansible_name()),
        other => other.ansible_name().to_string(),
    }];
    if option.required {
        parts.push("required".into());
    }
    match option.default {
        DefaultValue::None => {}
        DefaultValue::Bool(b) => parts.push(format!("default: {b}")),
        DefaultValue::Int(i) => parts.push(format!("default: {i}")),
        DefaultValue::Str(s) => parts.push(format!("default: {s}")),
    }
    if !option.choices.is_empty() {
        parts.push(format!("choices: {}", option.choices.join(", ")));
    }
    parts.join(", ")
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_option_with_type_default_and_choices() {
        const OPTIONS: &[OptionSpec] = &[
            OptionSpec::new("ports", Kind::List(&Kind::Raw), "Ports and ranges.").required(),
            OptionSpec::new("state", Kind::Str, "Whether to add or remove.")
                .default(DefaultValue::Str("present"))
                .choices(&["present", "absent"]),
        ];
        let spec = ModuleSpec { name: "m", short_description: "does things", version: "1.0", options: OPTIONS };
        let text = render(&spec);
        assert!(text.contains("  ports (list of raw, required)\n      Ports and ranges."), "{text}");
        assert!(text.contains("  state (str, default: present, choices: present, absent)"), "{text}");
    }

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
    }
}
