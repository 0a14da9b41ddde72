//! systemd-sysctl's directories as it finds them at boot: every `*.conf`
//! entry of every directory, and what each entry is when it is opened
//! (a file, nothing, the null device, something that blocks), found with
//! `readdir`, `lstat`, `readlink` and `stat` only: nothing here opens an
//! entry, so a FIFO or a device can never block the module. Contents are
//! read later, and only of regular files, up to a size bound.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// systemd-sysctl's directories, highest priority first (`/lib/sysctl.d` is
/// read on hosts without merged /usr; with merged /usr it is the same
/// directory as `/usr/lib/sysctl.d` and adds nothing).
pub const SYSCTL_DIRS: &[&str] =
    &["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"];

/// What an entry gives systemd-sysctl when it opens and reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `sysctl_file` itself, reached directly or through symlinks: at boot
    /// it holds what this run writes.
    Ours,
    /// A regular file (at this resolved path).
    Regular(PathBuf),
    /// Nothing: a symlink that points nowhere (or into a loop).
    Missing,
    /// A directory: opening works, reading fails.
    Directory,
    /// The null device (a symlink to /dev/null, or a node like it): empty.
    Null,
    /// A FIFO, socket or other device: reading may block or never end.
    Special,
}

/// One `*.conf` entry of one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index of its directory in the list (lower comes first for a name).
    pub dir: usize,
    /// The path as listed (directory + name).
    pub path: PathBuf,
    /// What it is, in words for messages ("a symbolic link to /dev/null").
    pub what: String,
    pub node: Node,
}

impl Entry {
    /// The file name, as systemd-sysctl sorts it (bytes).
    pub fn name(&self) -> &[u8] {
        self.path.file_name().map_or(&[][..], OsStrExt::as_bytes)
    }
}

/// Whether systemd-sysctl reads a file of this name: not hidden, and ending
/// in exactly `.conf` (`90-a.CONF` is not read).
pub fn read_at_boot(name: &OsStr) -> bool {
    let name = name.as_bytes();
    !name.starts_with(b".") && name.ends_with(b".conf")
}

/// Every entry systemd-sysctl considers, directory by directory, names in
/// byte order within each. `sysctl_file` counts where it will be: when it
/// does not exist yet, it is added to the directory it will be created in.
pub fn scan(dirs: &[&str], sysctl_file: &Path) -> Vec<Entry> {
    let ours = canonical_or_lexical(sysctl_file);
    let mut found = Vec::new();
    for (index, dir) in dirs.iter().enumerate() {
        let dir = Path::new(dir);
        let mut entries: Vec<Entry> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| read_at_boot(&e.file_name()))
            .map(|e| classify(index, &dir.join(e.file_name()), &ours))
            .collect();
        let created_here = ours.parent().is_some_and(|p| canonical_or_lexical(dir) == p)
            && ours.file_name().is_some_and(read_at_boot)
            && !entries.iter().any(|e| e.node == Node::Ours);
        if created_here && let Some(name) = ours.file_name() {
            entries.push(Entry {
                dir: index,
                path: dir.join(name),
                what: "sysctl_file (created by this run)".into(),
                node: Node::Ours,
            });
        }
        entries.sort_by(|a, b| a.name().cmp(b.name()));
        found.extend(entries);
    }
    found
}

/// What the entry at `path` is, following symlinks without opening anything.
fn classify(dir: usize, path: &Path, ours: &Path) -> Entry {
    let entry = |what: String, node| Entry { dir, path: path.to_path_buf(), what, node };
    let Ok(meta) = fs::symlink_metadata(path) else {
        // Gone between readdir and lstat: systemd would fail to open it too.
        return entry("gone".into(), Node::Missing);
    };
    if !meta.file_type().is_symlink() {
        let node = node_of(path, &meta, ours);
        return entry(describe(&meta).to_string(), node);
    }
    let target = fs::read_link(path).map_or_else(|_| "?".into(), |t| t.display().to_string());
    let link = format!("a symbolic link to {target}");
    match fs::canonicalize(path) {
        Ok(resolved) => match fs::metadata(&resolved) {
            Ok(meta) => {
                let node = node_of(&resolved, &meta, ours);
                entry(format!("{link} ({})", describe(&meta)), node)
            }
            Err(_) => entry(format!("{link} (which cannot be looked at)"), Node::Special),
        },
        // A link to where sysctl_file will be created is ours all the same.
        Err(_) if would_resolve_to(path) == ours => entry(link, Node::Ours),
        Err(_) => entry(format!("{link}, which points nowhere"), Node::Missing),
    }
}

fn node_of(resolved: &Path, meta: &Metadata, ours: &Path) -> Node {
    let kind = meta.file_type();
    if kind.is_file() {
        if canonical_or_lexical(resolved) == ours { Node::Ours } else { Node::Regular(resolved.to_path_buf()) }
    } else if kind.is_dir() {
        Node::Directory
    } else if is_null_device(meta) {
        Node::Null
    } else {
        Node::Special
    }
}

/// `makedev(1, 3)`, the null device's number, as `st_rdev` holds it.
const NULL_DEVICE: u64 = 0x103;

fn is_null_device(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == NULL_DEVICE
}

fn describe(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_file() && meta.len() == 0 {
        "an empty file"
    } else if kind.is_file() {
        "a file"
    } else if kind.is_dir() {
        "a directory"
    } else if is_null_device(meta) {
        "the null device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    }
}

/// Where a symlink chain ends, also when it ends where nothing is yet.
fn would_resolve_to(path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    // The kernel gives up after 40 links; so does this.
    for _ in 0..40 {
        let Ok(target) = fs::read_link(&current) else { break };
        current = match current.parent() {
            Some(parent) if target.is_relative() => parent.join(target),
            _ => target,
        };
    }
    canonical_or_lexical(&current)
}

/// The canonical path; where it does not exist, the canonical path of its
/// longest existing ancestor plus the rest, `..` taken lexically.
pub fn canonical_or_lexical(path: &Path) -> PathBuf {
    if let Ok(canonical) = fs::canonicalize(path) {
        return canonical;
    }
    let components: Vec<Component> = path.components().collect();
    for split in (0..components.len()).rev() {
        let prefix: PathBuf = components[..split].iter().collect();
        let Ok(mut resolved) = fs::canonicalize(if prefix.as_os_str().is_empty() { Path::new(".") } else { &prefix })
        else {
            continue;
        };
        for part in &components[split..] {
            match part {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => resolved.push(name),
                _ => {}
            }
        }
        return resolved;
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn names_are_filtered_as_systemd_does() {
        for (name, read) in [
            ("90-a.conf", true),
            (".90-a.conf", false),
            ("90-a.CONF", false),
            ("90-a.conf~", false),
            ("a.conf.tmp", false),
        ] {
            assert_eq!(read_at_boot(OsStr::new(name)), read, "{name}");
        }
    }

    #[test]
    fn entries_are_classified_without_opening_them() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir(&etc).unwrap();
        let ours = root.path().join("sysctl.conf");
        fs::write(&ours, "").unwrap();
        fs::write(etc.join("10-file.conf"), "a = 1\n").unwrap();
        fs::write(etc.join("11-empty.conf"), "").unwrap();
        symlink("/dev/null", etc.join("20-null.conf")).unwrap();
        symlink("nowhere.conf", etc.join("30-dangling.conf")).unwrap();
        fs::create_dir(etc.join("40-dir.conf")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(etc.join("50-fifo.conf")).status().unwrap().success());
        symlink("../sysctl.conf", etc.join("99-sysctl.conf")).unwrap();
        fs::write(etc.join(".hidden.conf"), "").unwrap();
        let dirs = [etc.to_str().unwrap()];
        let entries = scan(&dirs, &ours);
        let seen: Vec<(String, Node, String)> = entries
            .iter()
            .map(|e| (String::from_utf8_lossy(e.name()).into_owned(), e.node.clone(), e.what.clone()))
            .collect();
        let file = |name: &str| Node::Regular(fs::canonicalize(etc.join(name)).unwrap());
        assert_eq!(
            seen,
            vec![
                ("10-file.conf".into(), file("10-file.conf"), "a file".into()),
                ("11-empty.conf".into(), file("11-empty.conf"), "an empty file".into()),
                ("20-null.conf".into(), Node::Null, "a symbolic link to /dev/null (the null device)".into()),
                (
                    "30-dangling.conf".into(),
                    Node::Missing,
                    "a symbolic link to nowhere.conf, which points nowhere".into()
                ),
                ("40-dir.conf".into(), Node::Directory, "a directory".into()),
                ("50-fifo.conf".into(), Node::Special, "a FIFO".into()),
                ("99-sysctl.conf".into(), Node::Ours, "a symbolic link to ../sysctl.conf (an empty file)".into()),
            ]
        );
    }

    #[test]
    fn sysctl_file_counts_where_it_will_be_created() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        fs::create_dir(&etc).unwrap();
        // Debian's link to a sysctl.conf that does not exist yet.
        symlink("../sysctl.conf", etc.join("99-sysctl.conf")).unwrap();
        let dirs = [etc.to_str().unwrap()];
        let via_link = scan(&dirs, &root.path().join("sysctl.conf"));
        assert_eq!(via_link.iter().map(|e| &e.node).collect::<Vec<_>>(), vec![&Node::Ours]);
        let new_file = scan(&dirs, &etc.join("90-new.conf"));
        assert_eq!(new_file[0].node, Node::Ours);
        assert_eq!(new_file[0].path, etc.join("90-new.conf"));
        assert!(scan(&dirs, &etc.join("90-new.txt")).iter().all(|e| e.node != Node::Ours));
    }

    #[test]
    fn paths_that_do_not_exist_resolve_through_what_does() {
        let root = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(root.path()).unwrap();
        assert_eq!(canonical_or_lexical(&root.path().join("a/b/../c.conf")), real.join("a/c.conf"));
        assert_eq!(canonical_or_lexical(&root.path().join("x/../../y")), real.parent().unwrap().join("y"));
    }
}
