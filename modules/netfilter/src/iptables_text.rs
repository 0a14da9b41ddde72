//! iptables' own text: the words of an `iptables-save` rule spec, and what
//! `iptables -V` says of the variant.

/// Which iptables a host runs (`iptables -V`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The legacy `ip_tables` kernel tables.
    Legacy,
    /// `nf_tables` underneath (iptables-nft).
    Nft,
}

/// `iptables v1.8.9 (nf_tables)` / `(legacy)`; before 1.8 there is no suffix
/// and only legacy existed. Returns the variant and whether --wait works, or
/// `None` when the text is not a version line of iptables.
pub fn parse_version(text: &str) -> Option<(Variant, bool)> {
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("iptables v").or_else(|| line.strip_prefix("ip6tables v"))?;
    let version_text = rest.split_whitespace().next()?;
    let version: Vec<u32> = version_text.split('.').map(str::parse).collect::<Result<_, _>>().ok()?;
    let variant = match rest[version_text.len()..].trim() {
        "(nf_tables)" => Variant::Nft,
        "" | "(legacy)" => Variant::Legacy,
        _ => return None,
    };
    let wait = variant == Variant::Legacy && version.as_slice() >= [1, 6, 2].as_slice();
    Some((variant, wait))
}

/// A rule spec split as iptables-save quotes it: a `"..."` value (with `\"`
/// and `\\` escaped inside) is one word.
pub fn save_words(spec: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = spec.chars();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            '\\' if quoted => word.get_or_insert_with(String::new).extend(chars.next()),
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}
