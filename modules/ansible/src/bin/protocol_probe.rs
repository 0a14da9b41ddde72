//! Test fixture for the protocol: echoes what the protocol made of its
//! arguments. With `panic: true` it panics, to prove that a panic still
//! yields a `failed` object. Not a real module; never installed.

use portmatrix_ansible::{DefaultValue, Diff, Failure, Kind, ModuleSpec, OptionSpec, Response, run};

const ITEM: &[OptionSpec] = &[
    OptionSpec::new("port", Kind::Int, "A port.").required(),
    OptionSpec::new("proto", Kind::Str, "A protocol.").default(DefaultValue::Str("tcp")).choices(&["tcp", "udp"]),
];

static SPEC: ModuleSpec = ModuleSpec {
    name: "protocol_probe",
    short_description: "echo validated arguments (protocol test fixture)",
    version: env!("CARGO_PKG_VERSION"),
    options: &[
        OptionSpec::new("name", Kind::Str, "Any text."),
        OptionSpec::new("count", Kind::Int, "A number.").default(DefaultValue::Int(1)),
        OptionSpec::new("enabled", Kind::Bool, "A switch.").default(DefaultValue::Bool(true)),
        OptionSpec::new("items", Kind::List(&Kind::Raw), "A list."),
        OptionSpec::new("mode", Kind::Str, "A choice.").default(DefaultValue::Str("a")).choices(&["a", "b"]),
        OptionSpec::new("entries", Kind::List(&Kind::Dict(ITEM)), "Dicts with sub-options."),
        OptionSpec::new("fail", Kind::Bool, "Fail on purpose.").default(DefaultValue::Bool(false)),
        OptionSpec::new("panic", Kind::Bool, "Panic on purpose.").default(DefaultValue::Bool(false)),
    ],
};

portmatrix_ansible::oom_guard!();

fn main() {
    run(&SPEC, |invocation| {
        assert!(invocation.params["panic"] != true, "asked to panic");
        if invocation.params["fail"] == true {
            return Err(Failure::new("asked to fail").field("seen", &invocation.params));
        }
        let mut response = Response::new(!invocation.check_mode, "echo")
            .field("params", &invocation.params)
            .field("check_mode", invocation.check_mode);
        response.diffs.push(Diff::of("probe", "before\n", "after\n"));
        response.warnings.push("a warning".into());
        Ok(response)
    })
}
