//! How a module declares its options: once, as constants. Validation, `--help`
//! and the documentation test all read these declarations.

/// The type of an option (or of a list's elements), named as Ansible's
/// argument specs name them so that docs and messages use the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// A string with `~` expanded, like `AnsibleModule`'s `path`.
    Path,
    /// Any JSON value, passed through unchanged; the module validates it.
    Raw,
    /// A list whose elements are of the given kind.
    List(&'static Kind),
    /// A dict with declared sub-options, validated like top-level options.
    Dict(&'static [OptionSpec]),
}

impl Kind {
    /// The name Ansible uses in argument specs and documentation.
    pub fn ansible_name(&self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Bool => "bool",
            Kind::Path => "path",
            Kind::Raw => "raw",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dict",
        }
    }

    /// The declared keys of a dict option, or of a list of dicts.
    pub fn suboptions(&self) -> Option<&'static [OptionSpec]> {
        match *self {
            Kind::Dict(sub) => Some(sub),
            Kind::List(Kind::Dict(sub)) => Some(sub),
            _ => None,
        }
    }
}

/// The value an option takes when the user leaves it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    None,
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

impl DefaultValue {
    pub fn to_json(self) -> serde_json::Value {
        match self {
            DefaultValue::None => serde_json::Value::Null,
            DefaultValue::Bool(b) => b.into(),
            DefaultValue::Int(i) => i.into(),
            DefaultValue::Str(s) => s.into(),
        }
    }
}

/// One option of a module (or one key of a dict option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: DefaultValue,
    pub choices: &'static [&'static str],
    pub description: &'static str,
}

impl OptionSpec {
    pub const fn new(name: &'static str, kind: Kind, description: &'static str) -> Self {
        OptionSpec { name, kind, required: false, default: DefaultValue::None, choices: &[], description }
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn default(mut self, default: DefaultValue) -> Self {
        self.default = default;
        self
    }

    pub const fn choices(mut self, choices: &'static [&'static str]) -> Self {
        self.choices = choices;
        self
    }
}

/// Everything the protocol needs to know about a module.
#[derive(Debug, Clone, Copy)]
pub struct ModuleSpec {
    pub name: &'static str,
    pub short_description: &'static str,
    pub version: &'static str,
    pub options: &'static [OptionSpec],
}

impl ModuleSpec {
    pub fn option(&self, name: &str) -> Option<&OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }
}
