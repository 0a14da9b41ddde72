//! Will the persisted reservation really apply at boot? The boot is
//! simulated as systemd-sysctl runs it: pick one entry per `*.conf` name
//! across its directories, read the picked entries in byte order of their
//! names (`sysctl_file` with the content this run writes), apply every line
//! about the key, the last one winning. A warning says why, exactly when the
//! value the boot leaves is not what this run asked for.
//!
//! systemd changed how it picks an entry in version 258: up to 257 (Debian
//! 12, RHEL 9) the first directory's entry of a name wins whatever it is (an
//! empty file, a link to /dev/null, a dangling link or a directory shadow
//! the later ones and give nothing); from 258 on, the null device masks the
//! name, and dangling links and entries that are not regular files are
//! skipped, so a later directory's file of that name is read instead. Both
//! are simulated; where they differ, the warning says so instead of
//! guessing which systemd the host will boot with.
//!
//! Glob keys (`net.ipv4.ip_local_reserved_*`) are not simulated: systemd
//! applies a glob only to keys that no file assigns explicitly, and this
//! run's file always assigns the key explicitly.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use portmatrix_host::file::{FileError, read_regular};
use portmatrix_portset::{PortRange, PortSet};

use crate::conffile::reservation_lines;
use crate::kernel::RESERVED_KEY;
use crate::options::{Request, State};
use crate::plan::Plan;
use crate::sysctl_d::{self, Entry, Node, canonical_or_lexical};
use crate::sysctl_file::MAX_FILE_BYTES;

/// What the boot must leave for this run's request to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Reserved at boot: the run's result.
    pub keep: PortSet,
    /// Not reserved at boot: what `state=absent` took out, or with
    /// `exclusive` everything else.
    pub drop: PortSet,
}

impl Expected {
    /// What `request` asks of the boot, given its plan.
    pub fn of(request: &Request, plan: &Plan) -> Expected {
        let drop = match (request.state, request.exclusive) {
            (State::Present, false) => PortSet::new(),
            (State::Present, true) => {
                PortSet::from(PortRange::new(1, u16::MAX).unwrap_or(plan.ephemeral)).difference(&plan.after)
            }
            (State::Absent, _) => request.ports.clone(),
        };
        Expected { keep: plan.after.clone(), drop }
    }
}

/// How systemd-sysctl picks the entry for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// Up to 257: the first directory's entry, whatever it is.
    Before258,
    /// 258 and later: the null device masks; dangling links and entries
    /// that are not regular files are skipped.
    From258,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Kept,
    Lost(String),
    Unknown(String),
}

/// The warnings for persisting `planned` as `sysctl_file`: empty when every
/// boot keeps what `expected` asks.
pub fn boot_warnings(dirs: &[&str], sysctl_file: &Path, planned: &str, expected: &Expected) -> Vec<String> {
    let entries = sysctl_d::scan(dirs, sysctl_file);
    let boot = Boot { dirs, entries: &entries, sysctl_file, planned, expected };
    let old = boot.simulate(Rules::Before258);
    let new = boot.simulate(Rules::From258);
    let lost = "the reservation will not survive a reboot";
    let warning = match (old, new) {
        (Verdict::Kept, Verdict::Kept) => return Vec::new(),
        (Verdict::Unknown(why), _) => format!("cannot tell whether the reservation survives a reboot: {why}"),
        (Verdict::Lost(why), Verdict::Kept) => format!(
            "{lost}: {why} (systemd 258 and later, which skip dangling links and entries that are not regular \
             files, would keep it)"
        ),
        // Lost either way: the first reason is the one to fix.
        (Verdict::Lost(why), _) => format!("{lost}: {why}"),
        (Verdict::Kept, Verdict::Lost(why) | Verdict::Unknown(why)) => format!(
            "with systemd 258 and later {lost}: {why}; systemd before 258 (as in Debian 12 and RHEL 9) keeps it"
        ),
    };
    vec![warning]
}

struct Boot<'a> {
    dirs: &'a [&'a str],
    entries: &'a [Entry],
    sysctl_file: &'a Path,
    planned: &'a str,
    expected: &'a Expected,
}

/// The entry picked for a name, or the one that masks it.
enum Pick<'a> {
    Read(&'a Entry),
    Masked(&'a Entry),
}

/// The last line about the key at boot: its value (`None`: `-key`, which
/// cancels the key) and the entry it came from.
type LastLine<'a> = Option<(Option<String>, &'a Entry)>;

impl<'a> Boot<'a> {
    fn pick(&self, rules: Rules) -> BTreeMap<&'a [u8], Pick<'a>> {
        let mut picked = BTreeMap::new();
        // Entries come directory by directory, highest priority first.
        for entry in self.entries {
            if picked.contains_key(entry.name()) {
                continue;
            }
            let pick = match (rules, &entry.node) {
                (Rules::Before258, _) | (Rules::From258, Node::Ours | Node::Regular(_)) => Pick::Read(entry),
                (Rules::From258, Node::Null) => Pick::Masked(entry),
                (Rules::From258, Node::Missing | Node::Directory | Node::Special) => continue,
            };
            picked.insert(entry.name(), pick);
        }
        picked
    }

    fn simulate(&self, rules: Rules) -> Verdict {
        let picked = self.pick(rules);
        let mut last: LastLine = None;
        for pick in picked.values() {
            let Pick::Read(entry) = pick else { continue };
            let content: Cow<str> = match &entry.node {
                Node::Ours => self.planned.into(),
                Node::Regular(path) => match read_regular(path, MAX_FILE_BYTES) {
                    Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned().into(),
                    Ok(None) => continue,
                    Err(FileError::TooLarge { limit, .. }) => {
                        return Verdict::Unknown(format!(
                            "{} is larger than {limit} bytes and is not read here",
                            entry.path.display()
                        ));
                    }
                    // A file of /proc or /sys (a link to /proc/kmsg, say),
                    // or one replaced since the scan: not read here.
                    Err(FileError::NotRegular { path, what }) => {
                        return Verdict::Unknown(format!(
                            "systemd-sysctl reads {} ({}), which is {what}: this module does not read it, as \
                             reading such a file can have side effects",
                            entry.path.display(),
                            path.display()
                        ));
                    }
                    Err(e) => return Verdict::Unknown(format!("{} cannot be read here ({e})", entry.path.display())),
                },
                Node::Missing | Node::Directory | Node::Null => continue,
                // systemd reads every file before it applies any: one that
                // blocks keeps the whole boot's sysctl settings from applying.
                Node::Special => {
                    return Verdict::Unknown(format!(
                        "systemd-sysctl reads {}, which is {}: it may block there or read without end, and then \
                         applies nothing",
                        entry.path.display(),
                        entry.what
                    ));
                }
            };
            for value in reservation_lines(&content) {
                last = Some((value.map(str::to_string), entry));
            }
        }
        self.judge(&picked, &last)
    }

    fn judge(&self, picked: &BTreeMap<&[u8], Pick>, last: &LastLine) -> Verdict {
        let value = match last {
            Some((Some(value), _)) => kernel_list(value),
            // Nothing sets it, or `-key` cancelled it: the boot leaves it empty.
            None | Some((None, _)) => Some(PortSet::new()),
        };
        let (keep, drop) = (&self.expected.keep, &self.expected.drop);
        if value.as_ref().is_some_and(|v| keep.is_subset(v) && v.is_disjoint(drop)) {
            return Verdict::Kept;
        }
        let ours_read = picked.values().any(|p| matches!(p, Pick::Read(e) if e.node == Node::Ours));
        let Some((line, entry)) = last.as_ref().filter(|(_, e)| e.node != Node::Ours) else {
            return Verdict::Lost(self.not_read(picked));
        };
        let effect = match (line, &value) {
            (None, _) => format!(
                "holds -{RESERVED_KEY} without a value, which cancels every earlier assignment of it, so at boot \
                 nothing is reserved"
            ),
            (Some(text), None) => format!(
                "sets {RESERVED_KEY} = {text:?}, which is not a port list the kernel takes as it is (it rejects it, or \
                 reads it otherwise), so at boot the reservation is not {}",
                shown(keep)
            ),
            (Some(text), Some(value)) => {
                let missing = keep.difference(value);
                let extra = value.intersection(drop);
                let how = if missing.is_empty() {
                    format!("holds {extra}, which this run keeps out of it")
                } else {
                    format!("lacks {missing}")
                };
                format!("sets {RESERVED_KEY} = {text}, so at boot the reservation is {}, which {how}", shown(value))
            }
        };
        let file = entry.path.display();
        if ours_read {
            Verdict::Lost(format!(
                "{file} {effect}: systemd-sysctl reads it after {} (files in name order, the last assignment \
                 wins); remove that line or give it the whole list",
                self.sysctl_file.display()
            ))
        } else {
            Verdict::Lost(format!("{}, and {file} {effect}", self.not_read(picked)))
        }
    }

    /// Why `sysctl_file` is not among the files read at boot.
    fn not_read(&self, picked: &BTreeMap<&[u8], Pick>) -> String {
        let path = self.sysctl_file.display();
        if let Some(ours) = self.entries.iter().find(|e| e.node == Node::Ours) {
            let name = String::from_utf8_lossy(ours.name());
            return match picked.get(ours.name()) {
                Some(Pick::Masked(mask)) => format!(
                    "{} ({}) masks the name {name}, so systemd-sysctl does not read {}",
                    mask.path.display(),
                    mask.what,
                    ours.path.display()
                ),
                Some(Pick::Read(first)) => format!(
                    "{} comes first for the name {name} and is {}, so systemd-sysctl reads it instead of {}{}",
                    first.path.display(),
                    first.what,
                    ours.path.display(),
                    match first.node {
                        Node::Missing | Node::Directory | Node::Null => " and gets nothing from it",
                        _ => "",
                    }
                ),
                None => format!("systemd-sysctl does not read {path}"),
            };
        }
        let ours = canonical_or_lexical(self.sysctl_file);
        let in_a_dir = self.dirs.iter().any(|d| ours.parent() == Some(canonical_or_lexical(Path::new(d)).as_path()));
        let name = ours.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if in_a_dir && name.starts_with('.') {
            format!("systemd-sysctl skips {path}: names starting with a dot are hidden")
        } else if in_a_dir {
            format!("systemd-sysctl does not read {path}: its name does not end in .conf")
        } else {
            format!(
                "{path} is not in a directory that systemd-sysctl reads ({}) and no *.conf file there links to it",
                self.dirs.join(", ")
            )
        }
    }
}

fn shown(set: &PortSet) -> String {
    if set.is_empty() { "empty".to_string() } else { set.to_string() }
}

/// The value as the kernel reads it, when that is certain: decimal ports
/// and ranges separated by commas, nothing else (the kernel rejects spaces,
/// and reads a leading 0 as octal). Port 0 is accepted by the kernel and
/// means nothing.
fn kernel_list(value: &str) -> Option<PortSet> {
    let mut set = PortSet::new();
    if value.is_empty() {
        return Some(set);
    }
    for entry in value.split(',') {
        let (low, high) = entry.split_once('-').unwrap_or((entry, entry));
        let (low, high) = (kernel_number(low)?, kernel_number(high)?);
        if low > high {
            return None;
        }
        if high > 0 {
            set.insert(PortRange::new(low.max(1), high).ok()?);
        }
    }
    Some(set)
}

fn kernel_number(text: &str) -> Option<u16> {
    let plain = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if plain { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// A private copy of systemd-sysctl's directories (and of /etc and /opt).
    struct Host {
        root: tempfile::TempDir,
    }

    impl Host {
        fn new() -> Host {
            let host = Host { root: tempfile::tempdir().unwrap() };
            for dir in ["etc/sysctl.d", "run/sysctl.d", "usr/lib/sysctl.d", "opt"] {
                fs::create_dir_all(host.path(dir)).unwrap();
            }
            host
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.root.path().join(relative)
        }

        fn write(&self, relative: &str, content: &str) {
            fs::write(self.path(relative), content).unwrap();
        }

        fn link(&self, relative: &str, target: &str) {
            symlink(target, self.path(relative)).unwrap();
        }

        fn dirs(&self) -> Vec<String> {
            ["etc/sysctl.d", "run/sysctl.d", "usr/lib/sysctl.d"]
                .iter()
                .map(|d| self.path(d).to_string_lossy().into_owned())
                .collect()
        }

        /// The warnings for reserving `result` (state=present) in `file`.
        fn warnings(&self, file: &str, result: &str) -> Vec<String> {
            self.warnings_for(file, &Expected { keep: result.parse().unwrap(), drop: PortSet::new() })
        }

        fn warnings_for(&self, file: &str, expected: &Expected) -> Vec<String> {
            let dirs = self.dirs();
            let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
            let planned = crate::conffile::render(None, &expected.keep.to_string());
            boot_warnings(&dirs, &self.path(file), &planned, expected)
        }
    }

    const KEY: &str = "net.ipv4.ip_local_reserved_ports";

    /// Sets up one layout in a host.
    type Layout = dyn Fn(&Host);

    fn one(warnings: &[String]) -> &str {
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        &warnings[0]
    }

    #[test]
    fn a_plain_file_and_debians_link_to_sysctl_conf_are_read() {
        let host = Host::new();
        assert!(host.warnings("etc/sysctl.d/90-rp.conf", "5050,8080").is_empty());
        // /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf, as Debian and RHEL ship it.
        host.link("etc/sysctl.d/99-sysctl.conf", "../sysctl.conf");
        assert!(
            host.warnings("etc/sysctl.conf", "5050,8080").is_empty(),
            "read through the link, also before it exists"
        );
        host.write("etc/sysctl.conf", "# vendor\n");
        assert!(host.warnings("etc/sysctl.conf", "5050,8080").is_empty());
        // A link out of the directories, to /opt.
        host.link("etc/sysctl.d/50-opt.conf", &host.path("opt/x.conf").to_string_lossy());
        assert!(host.warnings("opt/x.conf", "80").is_empty());
    }

    #[test]
    fn files_that_are_not_read_are_named_with_the_reason() {
        let host = Host::new();
        let w = host.warnings("opt/y.conf", "80");
        assert!(one(&w).starts_with("the reservation will not survive a reboot: "), "{w:?}");
        assert!(w[0].contains("opt/y.conf is not in a directory that systemd-sysctl reads"), "{w:?}");
        let w = host.warnings("etc/sysctl.d/90-rp.txt", "80");
        assert!(one(&w).contains("90-rp.txt: its name does not end in .conf"), "{w:?}");
        let w = host.warnings("etc/sysctl.d/90-rp.CONF", "80");
        assert!(one(&w).contains("its name does not end in .conf"), "{w:?}");
        let w = host.warnings("etc/sysctl.d/.90-rp.conf", "80");
        assert!(one(&w).contains("names starting with a dot are hidden"), "{w:?}");
    }

    #[test]
    fn the_same_name_in_an_earlier_directory_shadows_whatever_it_is() {
        let ours = "usr/lib/sysctl.d/90-a.conf";
        let cases: [(&str, &Layout); 3] = [
            ("a file", &|h| h.write("etc/sysctl.d/90-a.conf", &format!("{KEY} = 1000\n"))),
            ("an empty file", &|h| h.write("etc/sysctl.d/90-a.conf", "")),
            ("a symbolic link to /dev/null (the null device)", &|h| h.link("etc/sysctl.d/90-a.conf", "/dev/null")),
        ];
        for (what, make) in cases {
            let host = Host::new();
            make(&host);
            let w = host.warnings(ours, "2000");
            assert!(one(&w).contains(&format!("90-a.conf comes first for the name 90-a.conf and is {what}")), "{w:?}");
            assert!(!w[0].contains("258"), "both systemd versions agree: {w:?}");
        }
        // Ours in /etc shadows /usr's file of the same name.
        let host = Host::new();
        host.write("usr/lib/sysctl.d/90-a.conf", &format!("{KEY} = 1\n"));
        assert!(host.warnings("etc/sysctl.d/90-a.conf", "2000").is_empty());
        // /run comes before /usr.
        let host = Host::new();
        host.write("run/sysctl.d/90-a.conf", "");
        assert!(one(&host.warnings(ours, "2000")).contains("run/sysctl.d/90-a.conf comes first"));
    }

    #[test]
    fn where_systemd_versions_differ_the_warning_says_so() {
        // A dangling link or a directory in /etc: systemd 252 reads nothing for
        // the name, 258 skips them and reads ours in /usr.
        let cases: [&Layout; 2] = [&|h| h.link("etc/sysctl.d/90-a.conf", "nowhere.conf"), &|h| {
            fs::create_dir(h.path("etc/sysctl.d/90-a.conf")).unwrap();
        }];
        for make in cases {
            let host = Host::new();
            make(&host);
            let w = host.warnings("usr/lib/sysctl.d/90-a.conf", "2000");
            assert!(one(&w).starts_with("the reservation will not survive a reboot: "), "{w:?}");
            assert!(w[0].contains("and gets nothing from it"), "{w:?}");
            assert!(w[0].ends_with("(systemd 258 and later, which skip dangling links and entries that are not regular files, would keep it)"), "{w:?}");
        }
        // The other way round: 252 keeps, 258 lets /usr's later file in.
        let host = Host::new();
        host.link("etc/sysctl.d/95-x.conf", "nowhere.conf");
        host.write("usr/lib/sysctl.d/95-x.conf", &format!("{KEY} = 80\n"));
        let w = host.warnings("etc/sysctl.d/50-rp.conf", "2000");
        assert!(one(&w).starts_with("with systemd 258 and later the reservation will not survive a reboot: "), "{w:?}");
        assert!(w[0].contains("usr/lib/sysctl.d/95-x.conf sets net.ipv4.ip_local_reserved_ports = 80"), "{w:?}");
        assert!(w[0].ends_with("systemd before 258 (as in Debian 12 and RHEL 9) keeps it"), "{w:?}");
    }

    #[test]
    fn later_files_override_unless_they_hold_the_whole_result() {
        let host = Host::new();
        host.write("usr/lib/sysctl.d/95-vendor.conf", "net/ipv4/ip_local_reserved_ports = 8080\n");
        let w = host.warnings("etc/sysctl.d/90-rp.conf", "8080-8082");
        assert!(
            one(&w).contains(
                "95-vendor.conf sets net.ipv4.ip_local_reserved_ports = 8080, so at boot the reservation is 8080, \
                 which lacks 8081-8082: systemd-sysctl reads it after"
            ),
            "{w:?}"
        );
        host.write("usr/lib/sysctl.d/95-vendor.conf", &format!("{KEY} = 1-10000\n"));
        assert!(host.warnings("etc/sysctl.d/90-rp.conf", "8080-8082").is_empty(), "a superset keeps it");
        // An earlier file never matters, and the last line of a file wins.
        host.write("etc/sysctl.d/10-early.conf", &format!("{KEY} = 1\n"));
        host.write("usr/lib/sysctl.d/95-vendor.conf", &format!("{KEY} = 1-10000\n{KEY} = 9\n"));
        assert!(one(&host.warnings("etc/sysctl.d/90-rp.conf", "8080")).contains("= 9, so at boot"));
    }

    #[test]
    fn cancelled_or_rejected_values_lose_the_reservation() {
        let host = Host::new();
        host.write("etc/sysctl.d/95-x.conf", &format!("-{KEY}\n"));
        let w = host.warnings("etc/sysctl.d/90-rp.conf", "80");
        assert!(one(&w).contains("95-x.conf holds -net.ipv4.ip_local_reserved_ports without a value"), "{w:?}");
        // No continuation lines: `17\` is the value, and the kernel rejects it.
        host.write("etc/sysctl.d/95-x.conf", &format!("{KEY} = 17\\\n80\n"));
        let w = host.warnings("etc/sysctl.d/90-rp.conf", "80");
        assert!(
            one(&w).contains("sets net.ipv4.ip_local_reserved_ports = \"17\\\\\", which is not a port list"),
            "{w:?}"
        );
        // Slashes, a leading dash and spaces are the same key.
        host.write("etc/sysctl.d/95-x.conf", "  - net/ipv4/ip_local_reserved_ports\t=  81 \n");
        assert!(one(&host.warnings("etc/sysctl.d/90-rp.conf", "80")).contains("= 81, so at boot"));
    }

    #[test]
    fn names_sort_by_bytes_across_directories_and_links_take_their_own_name() {
        let host = Host::new();
        // 95-a.conf in /etc links to /usr's 90-b.conf: read as 95-a.conf, after ours (91).
        host.write("usr/lib/sysctl.d/90-b.conf", &format!("{KEY} = 3000\n"));
        host.link("etc/sysctl.d/95-a.conf", &host.path("usr/lib/sysctl.d/90-b.conf").to_string_lossy());
        let w = host.warnings("etc/sysctl.d/91-rp.conf", "80");
        assert!(one(&w).contains("etc/sysctl.d/95-a.conf sets net.ipv4.ip_local_reserved_ports = 3000"), "{w:?}");
        // Upper case sorts before lower case.
        let host = Host::new();
        host.write("usr/lib/sysctl.d/Z.conf", &format!("{KEY} = 1\n"));
        assert!(host.warnings("etc/sysctl.d/a.conf", "80").is_empty());
    }

    #[test]
    fn what_cannot_be_read_safely_is_not_read_and_said() {
        let host = Host::new();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(host.path("etc/sysctl.d/50-fifo.conf"))
                .status()
                .unwrap()
                .success()
        );
        let w = host.warnings("etc/sysctl.d/90-rp.conf", "80");
        assert!(
            one(&w).starts_with("cannot tell whether the reservation survives a reboot: systemd-sysctl reads"),
            "{w:?}"
        );
        assert!(w[0].contains("50-fifo.conf, which is a FIFO: it may block there"), "{w:?}");

        // A link to a file of /proc or /sys: systemd-sysctl would read it (a
        // link to /proc/kmsg would consume the kernel log); the model does
        // not. /proc/version is a harmless stand-in.
        let host = Host::new();
        host.link("etc/sysctl.d/50-proc.conf", "/proc/version");
        let w = host.warnings("etc/sysctl.d/90-rp.conf", "80");
        assert!(
            one(&w).ends_with(&format!(
                "systemd-sysctl reads {} (/proc/version), which is a file of /proc or /sys (procfs): this module \
                 does not read it, as reading such a file can have side effects",
                host.path("etc/sysctl.d/50-proc.conf").display()
            )),
            "{w:?}"
        );
        assert!(w[0].starts_with("cannot tell whether the reservation survives a reboot: "), "{w:?}");

        let host = Host::new();
        host.write("usr/lib/sysctl.d/95-big.conf", &"#".repeat(MAX_FILE_BYTES + 1));
        let w = host.warnings("etc/sysctl.d/90-rp.conf", "80");
        assert!(one(&w).contains("95-big.conf is larger than 1048576 bytes and is not read here"), "{w:?}");
    }

    #[test]
    fn removals_and_exclusive_results_must_hold_at_boot_too() {
        let host = Host::new();
        host.write("etc/sysctl.d/95-x.conf", &format!("{KEY} = 80,8080\n"));
        let absent = Expected { keep: "80".parse().unwrap(), drop: "8080".parse().unwrap() };
        let w = host.warnings_for("etc/sysctl.d/90-rp.conf", &absent);
        assert!(
            one(&w).contains("so at boot the reservation is 80,8080, which holds 8080, which this run keeps out of it"),
            "{w:?}"
        );
    }

    #[test]
    fn kernel_lists_are_read_strictly() {
        assert_eq!(kernel_list("").unwrap(), PortSet::new());
        assert_eq!(kernel_list("0-3,80").unwrap().to_string(), "1-3,80");
        for unsure in ["80, 90", "010", "80,", "90-80", "65536", "0x50", "17\\"] {
            assert_eq!(kernel_list(unsure), None, "{unsure}");
        }
    }
}
