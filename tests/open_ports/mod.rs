mod concurrency;
mod containers;
mod input;
mod kernel;
mod ownership;
mod safety;
mod tools;
mod traffic;

use portmatrix_tests::firewall::Variant;

/// One #[test] per firewall variant for a function taking a [`Variant`].
macro_rules! per_variant {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn nftables() {
                super::$name(portmatrix_tests::firewall::Variant::Nftables)
            }
            #[test]
            fn iptables_nft() {
                super::$name(portmatrix_tests::firewall::Variant::IptablesNft)
            }
            #[test]
            fn iptables_legacy() {
                super::$name(portmatrix_tests::firewall::Variant::IptablesLegacy)
            }
        })*
    };
}
pub(crate) use per_variant;

/// One #[test] per iptables variant for a function taking a [`Variant`].
macro_rules! per_iptables_variant {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn iptables_nft() {
                super::$name(portmatrix_tests::firewall::Variant::IptablesNft)
            }
            #[test]
            fn iptables_legacy() {
                super::$name(portmatrix_tests::firewall::Variant::IptablesLegacy)
            }
        })*
    };
}
pub(crate) use per_iptables_variant;

/// The module's objects as the variant's own tools list them ("" when none).
pub fn own_objects(sandbox: &portmatrix_tests::sandbox::Sandbox, variant: Variant, name: &str) -> String {
    if variant.is_iptables() {
        let v4 = portmatrix_tests::firewall::iptables_save(sandbox, variant, false);
        let v6 = portmatrix_tests::firewall::iptables_save(sandbox, variant, true);
        let ours = |t: &str| t.lines().filter(|l| l.contains(name)).flat_map(|l| [l, "\n"]).collect::<String>();
        format!("{}{}", ours(&v4), ours(&v6))
    } else {
        let out = sandbox.sh_output(&format!("nft list table inet {name}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
