//! systemd unit names: which names can hold a process, and which unit a
//! process is in, read from its `/proc/PID/cgroup`.

use std::fmt::Write as _;

/// Unit types whose cgroup holds processes: services and scopes (a
/// container, a login session, `systemd-run --scope`), and the helper
/// processes that socket, mount and swap units run (`ExecStartPre`=, mount
/// helpers). Slices never hold processes under systemd: they only group
/// other units. Targets, timers, paths, devices and automounts have no
/// cgroup at all.
pub const PROCESS_UNIT_TYPES: &[&str] = &["service", "scope", "socket", "mount", "swap"];

/// Unit types that exist but hold no processes: naming one as the owner of
/// a port is a mistake worth a clear message.
const OTHER_UNIT_TYPES: &[&str] = &["slice", "target", "timer", "path", "device", "automount"];

/// systemd's longest unit name (`UNIT_NAME_MAX` - 1, src/basic/unit-name.h).
pub const UNIT_NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitNameError {
    #[error("is empty")]
    Empty,
    #[error(
        "{0:?} is not a unit name: systemd's have only ASCII letters, digits and \":-_.\\@\" (escape others as \
         systemd-escape does)"
    )]
    BadCharacters(String),
    #[error("{0:?} is not a unit name: there is nothing before its type suffix")]
    NoPrefix(String),
    #[error("{0:?} is not a unit name: longer than systemd's {UNIT_NAME_MAX} characters")]
    TooLong(String),
    #[error("{0:?} is not a unit name: it has more than one '@'")]
    TooManyAts(String),
    #[error("{0:?} is a template, which runs nothing itself; name an instance (NAME@INSTANCE.service)")]
    Template(String),
    #[error(
        "{name:?} is a {kind} unit, which holds no processes and so no sockets; name the .service (or .scope) that listens"
    )]
    HoldsNoProcesses { name: String, kind: &'static str },
}

/// A user's unit name, as systemctl reads it: without a type suffix it
/// means a `.service`. Checked by systemd's rules (`unit_name_is_valid`,
/// src/basic/unit-name.c): a name that no unit can have is refused, never
/// quietly turned into another (`.service` is not `.service.service`).
pub fn normalise_unit_name(name: &str) -> Result<String, UnitNameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UnitNameError::Empty);
    }
    let shown = || name.to_string();
    if let Some(kind) = OTHER_UNIT_TYPES.iter().find(|kind| name.ends_with(&format!(".{kind}"))) {
        return Err(UnitNameError::HoldsNoProcesses { name: shown(), kind });
    }
    let full = if PROCESS_UNIT_TYPES.iter().any(|kind| name.ends_with(&format!(".{kind}"))) {
        name.to_string()
    } else {
        format!("{name}.service")
    };
    match broken_rule(&full) {
        None => Ok(full),
        Some(Broken::Characters) => Err(UnitNameError::BadCharacters(shown())),
        Some(Broken::NoPrefix) => Err(UnitNameError::NoPrefix(shown())),
        Some(Broken::TooLong) => Err(UnitNameError::TooLong(shown())),
        Some(Broken::TooManyAts) => Err(UnitNameError::TooManyAts(shown())),
        Some(Broken::Template) => Err(UnitNameError::Template(shown())),
    }
}

/// Which of systemd's rules a full unit name (`NAME.TYPE`) breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Characters,
    NoPrefix,
    TooLong,
    TooManyAts,
    Template,
}

/// The first of systemd's rules `full` breaks, in the order the messages
/// name them; `None` for a name a unit can have.
fn broken_rule(full: &str) -> Option<Broken> {
    let prefix = full.rsplit_once('.').map_or("", |(prefix, _)| prefix);
    if !full.chars().all(is_unit_name_char) {
        Some(Broken::Characters)
    } else if prefix.is_empty() || prefix.starts_with('@') {
        Some(Broken::NoPrefix)
    } else if full.len() > UNIT_NAME_MAX {
        Some(Broken::TooLong)
    } else if prefix.matches('@').count() > 1 {
        Some(Broken::TooManyAts)
    } else if prefix.ends_with('@') {
        Some(Broken::Template)
    } else {
        None
    }
}

/// The characters of systemd's unit names (`VALID_CHARS` and `@`).
fn is_unit_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || ":-_.\\@".contains(c)
}

/// Whether `name` is a unit name systemd could give a cgroup: its rules,
/// and a process-holding type. A cgroup directory of another name (which a
/// delegated subtree may make at will) is no unit.
pub fn is_process_unit(name: &str) -> bool {
    unit_type(name).is_some() && broken_rule(name).is_none()
}

/// The unit type of a cgroup directory name that names a process-holding
/// unit (`dcos-net.service` -> `service`), or None.
fn unit_type(component: &str) -> Option<&'static str> {
    PROCESS_UNIT_TYPES.iter().copied().find(|kind| has_suffix(component, kind))
}

/// `name` ends in `.kind` with something before the dot.
fn has_suffix(name: &str, kind: &str) -> bool {
    name.strip_suffix(kind).and_then(|rest| rest.strip_suffix('.')).is_some_and(|prefix| !prefix.is_empty())
}

/// A name as shown in a message: control characters escaped (`\n`, `\t`,
/// `\r`, `\u{1b}`), so that it never splits a line. Backslashes stay: a
/// process name comes escaped already ([`text_of_bytes`]), and a unit
/// name's are systemd's own escapes (`\x2d`).
pub fn shown_name(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => shown.push_str("\\n"),
            '\t' => shown.push_str("\\t"),
            '\r' => shown.push_str("\\r"),
            c if c.is_control() => shown.extend(c.escape_unicode()),
            c => shown.push(c),
        }
    }
    shown
}

/// Bytes a process gave (its comm: up to 15 bytes of any value) as text:
/// UTF-8 as it is but for a backslash, written `\\`, and every other byte
/// as `\xNN`, so that each text stands for one name only. Never fails: a
/// name that is not UTF-8 still names a live process.
pub fn text_of_bytes(bytes: &[u8]) -> String {
    let mut text = String::new();
    for chunk in bytes.utf8_chunks() {
        text.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            let _ = write!(text, "\\x{byte:02x}");
        }
    }
    text
}

/// The units of a process: the one the system manager runs, and the
/// innermost unit inside it, when the system unit delegates its subtree to
/// another manager (a user's `user@UID.service`, a container's scope).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Units {
    /// The system manager's unit: the first unit below the manager's root,
    /// past its slices. None for a process in no unit (directly in a slice).
    pub unit: Option<String>,
    /// The innermost unit below `unit`, made by whoever the subtree is
    /// delegated to: reported, never matched as a system unit.
    pub delegated: Option<String>,
}

/// The units of a process from the text of its `/proc/PID/cgroup`, its path
/// read relative to `root`, the system manager's own cgroup root (see
/// [`manager_root`]).
///
/// The cgroup v2 line (`0::/path`) comes first; on a legacy (cgroup v1) host
/// such as `CentOS` 7 there is none and the `name=systemd` hierarchy's line
/// says the same. On a hybrid host both exist and systemd keeps them equal,
/// so the v1 line only decides when the v2 path names no unit (as when the
/// unified hierarchy is not systemd's).
pub fn units_from_cgroup(text: &str, root: &Roots) -> Units {
    let v2 = cgroup_path(text, Hierarchy::V2);
    let v1 = cgroup_path(text, Hierarchy::V1);
    let from_v2 = v2.map(|path| units_in_path(path, &root.v2)).unwrap_or_default();
    if from_v2.unit.is_some() {
        return from_v2;
    }
    v1.map(|path| units_in_path(path, &root.v1)).unwrap_or_default()
}

/// The two hierarchies systemd may run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// The unified hierarchy (`0::PATH`).
    V2,
    /// systemd's named v1 hierarchy (`N:name=systemd:PATH`).
    V1,
}

/// The path of one hierarchy's line of a `/proc/PID/cgroup` text.
pub fn cgroup_path(text: &str, hierarchy: Hierarchy) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match hierarchy {
            Hierarchy::V2 => id == "0" && controllers.is_empty(),
            Hierarchy::V1 => controllers == "name=systemd",
        };
        wanted.then_some(path)
    })
}

/// The system manager's cgroup root in each hierarchy: the parent of its
/// `init.scope` (where systemd puts PID 1), read from PID 1's cgroup; `/`
/// when PID 1 is in no `init.scope` (no systemd, or a cgroup namespace that
/// starts at the manager's root already). A module run inside a container
/// without a cgroup namespace sees `/machine.slice/libpod-ID.scope/...` for
/// every process: relative to the container's systemd, that is `/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub v2: String,
    pub v1: String,
}

impl Default for Roots {
    fn default() -> Self {
        Roots { v2: "/".into(), v1: "/".into() }
    }
}

/// The roots from the text of PID 1's `/proc/1/cgroup`.
pub fn manager_root(pid1_cgroup: &str) -> Roots {
    let root = |hierarchy| {
        cgroup_path(pid1_cgroup, hierarchy)
            .and_then(|path| path.strip_suffix("/init.scope"))
            .map_or("/".to_string(), |root| if root.is_empty() { "/".to_string() } else { root.to_string() })
    };
    Roots { v2: root(Hierarchy::V2), v1: root(Hierarchy::V1) }
}

/// The units of a cgroup path below `root`. Under the manager's root come
/// slices (`system.slice`, `user.slice/user-1000.slice`), then the unit the
/// manager runs (`dcos-net.service`, `user@1000.service`,
/// `libpod-1f2e.scope`); below it is that unit's own subtree, which systemd
/// delegates when asked (`Delegate=`: user managers, container runtimes,
/// Mesos): whatever is made there, however named, is still that unit's,
/// and its innermost unit-named directory is only reported.
pub fn units_in_path(path: &str, root: &str) -> Units {
    let below_root = match root {
        "/" => Some(path),
        root => path.strip_prefix(root).filter(|rest| rest.is_empty() || rest.starts_with('/')),
    };
    // A path outside the manager's root is in none of its units.
    let relative = below_root.unwrap_or_default();
    let mut components = relative.split('/').filter(|c| !c.is_empty()).map(cg_unescape).peekable();
    while components.next_if(|c| has_suffix(c, "slice")).is_some() {}
    let unit = components.next_if(|c| is_process_unit(c)).map(str::to_string);
    // Below the unit (or, where the path leaves systemd's layout, anywhere
    // in it): the innermost unit-named directory, reported only.
    let delegated = if unit.is_some() {
        components.rfind(|c| is_process_unit(c))
    } else {
        path.split('/').map(cg_unescape).rfind(|c| is_process_unit(c))
    };
    let delegated = delegated.map(str::to_string);
    Units { unit, delegated }
}

/// A cgroup directory's unit name: systemd writes a name that starts with
/// `_` or `.`, or with a controller's prefix (`cpu.service`), or `cgroup.`,
/// with one `_` before it (`cg_escape`), which `cg_unescape` drops
/// (src/basic/cgroup-util.c).
fn cg_unescape(component: &str) -> &str {
    component.strip_prefix('_').unwrap_or(component)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(path: &str, root: &str) -> (Option<String>, Option<String>) {
        let Units { unit, delegated } = units_in_path(path, root);
        (unit, delegated)
    }

    #[allow(clippy::unnecessary_wraps, reason = "it stands for Some in the tables")]
    fn some(unit: &str) -> Option<String> {
        Some(unit.to_string())
    }

    #[test]
    fn the_system_managers_unit_is_the_first_past_its_slices_and_what_is_below_is_delegated() {
        let cases = [
            ("/system.slice/dcos-net.service", some("dcos-net.service"), None),
            ("/system.slice/dcos-mesos-slave.service/mesos/abc", some("dcos-mesos-slave.service"), None),
            ("/user.slice/user-1000.slice/session-4.scope", some("session-4.scope"), None),
            // A user's manager is a system unit; what it runs, whatever the
            // name, is delegated to that user.
            (
                "/user.slice/user-1000.slice/user@1000.service/app.slice/dcos-marathon.service",
                some("user@1000.service"),
                some("dcos-marathon.service"),
            ),
            (
                "/machine.slice/libpod-1f2e.scope/container/system.slice/x.service",
                some("libpod-1f2e.scope"),
                some("x.service"),
            ),
            ("/system.slice/dcos-diagnostics.socket", some("dcos-diagnostics.socket"), None),
            ("/init.scope", some("init.scope"), None),
            ("/user.slice/user-1000.slice", None, None),
            ("/", None, None),
            ("/process_api/4a47324ecbd8", None, None),
            ("/system.slice/.service", None, None),
            // Out of systemd's layout (a cgroupfs-managed container): no
            // system unit; the container's own is reported.
            ("/libpod_parent/libpod-1f2e/system.slice/dcos-cosmos.service", None, some("dcos-cosmos.service")),
            // Names no unit can have are no units.
            ("/system.slice/a\nb.service", None, None),
            ("/system.slice/x.service/sub/we ird.service", some("x.service"), None),
            ("/system.slice/tmpl@.service", None, None),
            // systemd's escapes of names that look like its own files.
            ("/system.slice/_cpu.service", some("cpu.service"), None),
            ("/system.slice/__under.service", some("_under.service"), None),
        ];
        for (path, unit, delegated) in cases {
            assert_eq!(units(path, "/"), (unit, delegated), "{path:?}");
        }
    }

    #[test]
    fn paths_are_read_below_the_managers_root() {
        let root = manager_root("0::/machine.slice/libpod-1f2e.scope/init.scope\n");
        assert_eq!(root.v2, "/machine.slice/libpod-1f2e.scope");
        assert_eq!(
            units("/machine.slice/libpod-1f2e.scope/system.slice/dcos-net.service", &root.v2),
            (some("dcos-net.service"), None)
        );
        assert_eq!(
            units("/machine.slice/libpod-1f2ef.scope/system.slice/x.service", &root.v2),
            (None, some("x.service")),
            "not below the root: in no unit of this manager, its own only reported"
        );
        assert_eq!(manager_root("0::/init.scope\n").v2, "/");
        assert_eq!(manager_root("0::/\n").v2, "/", "PID 1 is no systemd");
        let v1 = manager_root("1:name=systemd:/lxc/c1/init.scope\n0::/\n");
        assert_eq!(v1.v1, "/lxc/c1");
        assert_eq!(v1.v2, "/");
    }

    #[test]
    fn v2_line_first_then_the_name_systemd_line() {
        let roots = Roots::default();
        let unit = |text: &str| units_from_cgroup(text, &roots).unit;
        assert_eq!(unit("0::/system.slice/dcos-net.service\n"), some("dcos-net.service"));
        let centos7 = "11:cpuset:/\n3:cpu,cpuacct:/system.slice/a.service\n1:name=systemd:/system.slice/a.service\n";
        assert_eq!(unit(centos7), some("a.service"));
        assert_eq!(unit("9:name=systemd:/t.slice/b.service\n4:memory:/x\n0::/\n"), some("b.service"));
        assert_eq!(unit("9:name=systemd:/old.service\n0::/new.service\n"), some("new.service"));
        // A controller's path does not count, even if it looks like a unit.
        assert_eq!(unit("4:memory:/system.slice/c.service\n0::/\n"), None);
        assert_eq!(unit(""), None);
    }

    #[test]
    fn unit_names_are_read_as_systemctl_reads_them_and_refused_when_no_unit_can_have_them() {
        assert_eq!(normalise_unit_name("dcos-marathon").unwrap(), "dcos-marathon.service");
        assert_eq!(normalise_unit_name("dcos-marathon.service").unwrap(), "dcos-marathon.service");
        assert_eq!(normalise_unit_name("docker-1f.scope").unwrap(), "docker-1f.scope");
        assert_eq!(normalise_unit_name("user@1000").unwrap(), "user@1000.service");
        assert_eq!(normalise_unit_name("cockpit.socket").unwrap(), "cockpit.socket");
        assert_eq!(normalise_unit_name(r"a\x2db.service").unwrap(), r"a\x2db.service");
        let err = normalise_unit_name("dcos.target").unwrap_err();
        assert!(err.to_string().contains("\"dcos.target\" is a target unit, which holds no processes"), "{err}");
        assert_eq!(normalise_unit_name(" "), Err(UnitNameError::Empty));
        assert!(matches!(normalise_unit_name("foo@@bar"), Err(UnitNameError::TooManyAts(_))));
        for bad in ["a b.service", "a/b", "caf\u{e9}", "x\ny"] {
            assert!(matches!(normalise_unit_name(bad), Err(UnitNameError::BadCharacters(_))), "{bad:?}");
        }
        for no_prefix in [".service", ".socket", "@x.service"] {
            assert!(matches!(normalise_unit_name(no_prefix), Err(UnitNameError::NoPrefix(_))), "{no_prefix}");
        }
        assert!(matches!(normalise_unit_name("getty@.service"), Err(UnitNameError::Template(_))));
        assert!(matches!(normalise_unit_name(&"a".repeat(250)), Err(UnitNameError::TooLong(_))));
        let err = normalise_unit_name("x\ny").unwrap_err().to_string();
        assert!(err.starts_with("\"x\\ny\" is not a unit name") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn names_are_shown_on_one_line_and_bytes_that_are_not_utf8_kept() {
        assert_eq!(shown_name("python3"), "python3");
        assert_eq!(shown_name("evil\nline"), "evil\\nline");
        assert_eq!(shown_name("a\tb\u{1b}[31m"), "a\\tb\\u{1b}[31m");
        assert_eq!(shown_name(r"dev-disk-by\x2dlabel.mount"), r"dev-disk-by\x2dlabel.mount");
        assert_eq!(text_of_bytes(b"caf\xc3\xa9"), "caf\u{e9}");
        assert_eq!(text_of_bytes(b"bad\xff\xfe"), r"bad\xff\xfe");
        assert_eq!(text_of_bytes(br"bad\xff"), r"bad\\xff", "a backslash of the name's own is doubled");
    }
}
