//! systemd unit names: which names can hold a process, and which unit a
//! process is in, read from its `/proc/PID/cgroup`.

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitNameError {
    #[error("is empty")]
    Empty,
    #[error("{0:?} is not a unit name: it contains '/' or whitespace")]
    BadCharacters(String),
    #[error(
        "{name:?} is a {kind} unit, which holds no processes and so no sockets; name the .service (or .scope) that listens"
    )]
    HoldsNoProcesses { name: String, kind: &'static str },
}

/// A user's unit name, as systemctl reads it: without a type suffix it
/// means a `.service`.
pub fn normalise_unit_name(name: &str) -> Result<String, UnitNameError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UnitNameError::Empty);
    }
    if name.contains('/') || name.contains(char::is_whitespace) {
        return Err(UnitNameError::BadCharacters(name.to_string()));
    }
    if unit_type(name).is_some() {
        return Ok(name.to_string());
    }
    if let Some(kind) = OTHER_UNIT_TYPES.iter().find(|kind| has_suffix(name, kind)) {
        return Err(UnitNameError::HoldsNoProcesses { name: name.to_string(), kind });
    }
    Ok(format!("{name}.service"))
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

/// The unit of a process from the text of its `/proc/PID/cgroup`.
///
/// The cgroup v2 line (`0::/path`) comes first; on a legacy (cgroup v1) host
/// such as `CentOS` 7 there is none and the `name=systemd` hierarchy's line
/// says the same. On a hybrid host both exist and systemd keeps them equal,
/// so the v1 line only decides when the v2 path names no unit (as when the
/// unified hierarchy is not systemd's).
pub fn unit_from_cgroup(text: &str) -> Option<String> {
    let path_of = |wanted: &dyn Fn(&str, &str) -> bool| {
        text.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            wanted(id, controllers).then_some(path)
        })
    };
    let v2 = path_of(&|id, controllers| id == "0" && controllers.is_empty());
    let v1 = path_of(&|_, controllers| controllers == "name=systemd");
    v2.and_then(unit_in_path).or_else(|| v1.and_then(unit_in_path))
}

/// The innermost path component that names a process-holding unit, whatever
/// a container runtime or a delegated subtree puts before or after it:
/// `/libpod_parent/libpod-1f2e/system.slice/dcos-net.service` ->
/// `dcos-net.service`; `/system.slice/dcos-mesos-slave.service/mesos/abc`
/// -> `dcos-mesos-slave.service` (cgroups a service makes below itself are
/// still the service's); `/user.slice/user-1000.slice` -> None (a process
/// directly in a slice is in no service).
pub fn unit_in_path(path: &str) -> Option<String> {
    path.rsplit('/').find(|component| unit_type(component).is_some()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_unit_wins_whatever_the_prefix() {
        let cases = [
            ("/system.slice/dcos-net.service", Some("dcos-net.service")),
            ("/libpod_parent/libpod-1f2e/system.slice/dcos-cosmos.service", Some("dcos-cosmos.service")),
            ("/machine.slice/libpod-1f2e.scope/container/system.slice/x.service", Some("x.service")),
            ("/system.slice/dcos-mesos-slave.service/mesos/abc", Some("dcos-mesos-slave.service")),
            ("/user.slice/user-1000.slice/session-4.scope", Some("session-4.scope")),
            ("/user.slice/user-1000.slice/user@1000.service/app.slice/a.service", Some("a.service")),
            ("/system.slice/dcos-diagnostics.socket", Some("dcos-diagnostics.socket")),
            ("/init.scope", Some("init.scope")),
            ("/user.slice/user-1000.slice", None),
            ("/", None),
            ("/process_api/4a47324ecbd8", None),
            ("/system.slice/.service", None),
        ];
        for (path, unit) in cases {
            assert_eq!(unit_in_path(path).as_deref(), unit, "{path}");
        }
    }

    #[test]
    fn v2_line_first_then_the_name_systemd_line() {
        let pure_v2 = "0::/system.slice/dcos-net.service\n";
        assert_eq!(unit_from_cgroup(pure_v2).as_deref(), Some("dcos-net.service"));
        let centos7 = "11:cpuset:/\n3:cpu,cpuacct:/system.slice/a.service\n1:name=systemd:/system.slice/a.service\n";
        assert_eq!(unit_from_cgroup(centos7).as_deref(), Some("a.service"));
        let hybrid_v1_only = "9:name=systemd:/t/b.service\n4:memory:/x\n0::/\n";
        assert_eq!(unit_from_cgroup(hybrid_v1_only).as_deref(), Some("b.service"));
        let hybrid_both = "9:name=systemd:/t/old.service\n0::/t/new.service\n";
        assert_eq!(unit_from_cgroup(hybrid_both).as_deref(), Some("new.service"));
        // A controller's path does not count, even if it looks like a unit.
        assert_eq!(unit_from_cgroup("4:memory:/system.slice/c.service\n0::/\n"), None);
        assert_eq!(unit_from_cgroup(""), None);
    }

    #[test]
    fn unit_names_are_read_as_systemctl_reads_them() {
        assert_eq!(normalise_unit_name("dcos-marathon").unwrap(), "dcos-marathon.service");
        assert_eq!(normalise_unit_name("dcos-marathon.service").unwrap(), "dcos-marathon.service");
        assert_eq!(normalise_unit_name("docker-1f.scope").unwrap(), "docker-1f.scope");
        let err = normalise_unit_name("dcos.target").unwrap_err();
        assert!(err.to_string().contains("\"dcos.target\" is a target unit, which holds no processes"), "{err}");
        assert_eq!(normalise_unit_name(" "), Err(UnitNameError::Empty));
        assert!(matches!(normalise_unit_name("a b.service"), Err(UnitNameError::BadCharacters(_))));
    }
}
