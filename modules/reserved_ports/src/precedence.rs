//! Will the persisted reservation really apply at boot? systemd-sysctl reads
//! `*.conf` from a fixed list of directories, a file in an earlier directory
//! masking a same-named one in a later directory, in lexical order of the
//! file names; the last assignment of a key wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use portmatrix_portset::PortSet;

use crate::conffile;
use crate::kernel::RESERVED_KEY;

/// systemd-sysctl's directories, highest priority first (`/lib/sysctl.d` is
/// read on hosts without merged /usr).
pub const SYSCTL_DIRS: &[&str] =
    &["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"];

/// Warnings about `sysctl_file` not holding the final say at boot over
/// `result`, naming the file that takes it. Unreadable files are skipped:
/// this is advice, and it must not fail the task.
pub fn boot_warnings(dirs: &[&str], sysctl_file: &Path, result: &PortSet) -> Vec<String> {
    let Some(our_name) = conf_name(sysctl_file) else {
        return vec![format!(
            "{} does not end in .conf, so systemd-sysctl does not read it: the reservation will not survive a reboot",
            sysctl_file.display()
        )];
    };
    if !dirs.iter().any(|d| sysctl_file.parent() == Some(Path::new(d))) {
        return vec![format!(
            "{} is not in a directory that systemd-sysctl reads ({}): the reservation will not survive a reboot",
            sysctl_file.display(),
            dirs.join(", ")
        )];
    }

    let files = effective_files(dirs);
    let mut warnings = Vec::new();
    if let Some(winner) = files.get(&our_name).filter(|w| !same_file(w, sysctl_file)) {
        warnings.push(format!(
            "{} masks {} (same name, earlier directory): systemd-sysctl reads it instead at boot",
            winner.display(),
            sysctl_file.display()
        ));
    }
    let last_later_assignment = files
        .range::<String, _>((std::ops::Bound::Excluded(&our_name), std::ops::Bound::Unbounded))
        .rev()
        .find_map(|(_, path)| {
            let content = std::fs::read_to_string(path).ok()?;
            conffile::reserved_value(&content).map(|value| (path.clone(), value.to_string()))
        });
    if let Some((path, value)) = last_later_assignment {
        let covers = PortSet::parse_list(&value).is_ok_and(|theirs| result.is_subset(&theirs));
        if !covers {
            warnings.push(format!(
                "{} sets {RESERVED_KEY} = {value} and systemd-sysctl applies it after {}, so at boot it replaces \
                 the reservation {result}; remove that line or give it the full list",
                path.display(),
                sysctl_file.display()
            ));
        }
    }
    warnings
}

fn conf_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    #[expect(clippy::case_sensitive_file_extension_comparisons, reason = "systemd-sysctl's suffix match is exact")]
    name.ends_with(".conf").then(|| name.to_string())
}

/// File name -> the path systemd-sysctl reads for it, in the order it reads them.
fn effective_files(dirs: &[&str]) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            if let Some(name) = conf_name(&entry.path()) {
                // Earlier directories win; keep the first seen.
                files.entry(name).or_insert_with(|| entry.path());
            }
        }
    }
    files
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dirs {
        _root: tempfile::TempDir,
        etc: String,
        usr: String,
    }

    fn dirs() -> Dirs {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc").to_string_lossy().into_owned();
        let usr = root.path().join("usr").to_string_lossy().into_owned();
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(&usr).unwrap();
        Dirs { _root: root, etc, usr }
    }

    fn set(text: &str) -> PortSet {
        text.parse().unwrap()
    }

    #[test]
    fn a_later_file_with_a_smaller_value_is_named() {
        let d = dirs();
        let ours = Path::new(&d.etc).join("90-reserved-ports.conf");
        std::fs::write(Path::new(&d.usr).join("95-vendor.conf"), "net/ipv4/ip_local_reserved_ports = 8080\n").unwrap();
        let warnings = boot_warnings(&[&d.etc, &d.usr], &ours, &set("8080-8082"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("95-vendor.conf sets net.ipv4.ip_local_reserved_ports = 8080"), "{}", warnings[0]);
    }

    #[test]
    fn later_file_that_contains_the_result_or_an_earlier_file_is_fine() {
        let d = dirs();
        let ours = Path::new(&d.etc).join("90-reserved-ports.conf");
        std::fs::write(Path::new(&d.etc).join("10-early.conf"), "net.ipv4.ip_local_reserved_ports = 1\n").unwrap();
        std::fs::write(Path::new(&d.etc).join("99-wide.conf"), "net.ipv4.ip_local_reserved_ports = 1-10000\n").unwrap();
        assert!(boot_warnings(&[&d.etc, &d.usr], &ours, &set("8080-8082")).is_empty());
    }

    #[test]
    fn masked_file_and_unread_locations_are_reported() {
        let d = dirs();
        std::fs::write(Path::new(&d.etc).join("90-reserved-ports.conf"), "").unwrap();
        let in_usr = Path::new(&d.usr).join("90-reserved-ports.conf");
        std::fs::write(&in_usr, "").unwrap();
        let warnings = boot_warnings(&[&d.etc, &d.usr], &in_usr, &set("80"));
        assert!(warnings[0].contains("masks"), "{warnings:?}");

        let elsewhere = boot_warnings(&[&d.etc], Path::new("/opt/x.conf"), &set("80"));
        assert!(elsewhere[0].contains("is not in a directory that systemd-sysctl reads"), "{elsewhere:?}");
        let not_conf = boot_warnings(&[&d.etc], &Path::new(&d.etc).join("x.txt"), &set("80"));
        assert!(not_conf[0].contains("does not end in .conf"), "{not_conf:?}");
    }
}
