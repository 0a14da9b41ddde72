mod concurrency;
mod containers;
mod forward;
mod input;
mod kernel;
mod ownership;
mod persist;
mod safety;
mod tools;
mod traffic;

use portmatrix_tests::firewall::Variant;

/// One #[test] per listed variant (`test_name => Variant`) for a function
/// `name` taking a [`Variant`]: a module `name` with those tests.
macro_rules! tests_for {
    ([$($test:ident => $variant:ident),*] $name:ident) => {
        mod $name {
            $(
                #[test]
                fn $test() {
                    super::$name(portmatrix_tests::firewall::Variant::$variant)
                }
            )*
        }
    };
}
pub(crate) use tests_for;

/// One #[test] per firewall variant for a function taking a [`Variant`].
macro_rules! per_variant {
    ($($name:ident),* $(,)?) => {
        $(crate::open_ports::tests_for!(
            [nftables => Nftables, iptables_nft => IptablesNft, iptables_legacy => IptablesLegacy] $name
        );)*
    };
}
pub(crate) use per_variant;

/// One #[test] per iptables variant for a function taking a [`Variant`].
macro_rules! per_iptables_variant {
    ($($name:ident),* $(,)?) => {
        $(crate::open_ports::tests_for!([iptables_nft => IptablesNft, iptables_legacy => IptablesLegacy] $name);)*
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
