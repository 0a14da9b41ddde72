//! Port forwarders of container runtimes: a process that holds a published
//! port on behalf of a container, whose own service is inside the container
//! and not a unit of this host. Told by the process's name (comm), and the
//! container named from its command line where the runtime puts it there:
//! - `docker-proxy` (Docker's userland proxy, unit `docker.service`):
//!   `-container-ip IP -container-port PORT`, the container's address; its
//!   name is Docker's alone to say;
//! - `conmon` (Podman's container monitor, which holds rootful podman's
//!   published ports): `-n NAME` / `--name NAME`;
//! - `rootlessport`, `slirp4netns`, `pasta` (rootless Podman's forwarders):
//!   no container on the command line.

use serde::Serialize;

/// A runtime's forwarder, and the container it forwards to when known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forwarder {
    /// The runtime (`Docker`, `Podman`, `rootless Podman`).
    pub runtime: &'static str,
    /// The container, as the runtime names it on the command line (a name,
    /// or `ADDRESS:PORT` for docker-proxy); null when it does not.
    pub container: Option<String>,
}

/// comm (as the kernel cuts it to 15 bytes) -> runtime.
const FORWARDERS: &[(&str, &str)] = &[
    ("docker-proxy", "Docker"),
    ("conmon", "Podman"),
    ("rootlessport", "rootless Podman"),
    ("rootlessport-ch", "rootless Podman"),
    ("slirp4netns", "rootless Podman"),
    ("pasta", "rootless Podman"),
    ("pasta.avx2", "rootless Podman"),
];

/// Whether a process of this name is a forwarder (its command line is read
/// only then).
pub fn is_forwarder(comm: &str) -> bool {
    FORWARDERS.iter().any(|(name, _)| *name == comm)
}

/// The forwarder a process is, from its comm and command line (`argv`).
pub fn identify(comm: &str, argv: &[String]) -> Option<Forwarder> {
    let runtime = FORWARDERS.iter().find(|(name, _)| *name == comm)?.1;
    let after =
        |flags: &[&str]| argv.windows(2).find(|pair| flags.contains(&pair[0].as_str())).map(|pair| pair[1].clone());
    let container = match comm {
        "docker-proxy" => after(&["-container-ip"]).map(|ip| match after(&["-container-port"]) {
            Some(port) if ip.contains(':') => format!("[{ip}]:{port}"),
            Some(port) => format!("{ip}:{port}"),
            None => ip,
        }),
        "conmon" => after(&["-n", "--name"]),
        _ => None,
    };
    Some(Forwarder { runtime, container })
}

/// `/proc/PID/cmdline` (NUL-separated) as arguments.
pub fn argv(cmdline: &[u8]) -> Vec<String> {
    cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

impl Forwarder {
    /// `Docker's port forwarder for the container at 172.17.0.2:80`.
    pub fn describe(&self) -> String {
        match &self.container {
            Some(c) if self.runtime == "Docker" => {
                format!("{}'s port forwarder for the container at {c}", self.runtime)
            }
            Some(c) => format!("{}'s port forwarder for the container {c}", self.runtime),
            None => format!("{}'s port forwarder for a container", self.runtime),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn forwarders_and_their_containers() {
        let docker = "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8081 -container-ip 172.17.0.2 -container-port 80";
        let forwarder = identify("docker-proxy", &args(docker)).unwrap();
        assert_eq!(forwarder.container.as_deref(), Some("172.17.0.2:80"));
        assert_eq!(forwarder.describe(), "Docker's port forwarder for the container at 172.17.0.2:80");
        let v6 = identify("docker-proxy", &args("docker-proxy -container-ip fd00::2 -container-port 80")).unwrap();
        assert_eq!(v6.container.as_deref(), Some("[fd00::2]:80"));
        let conmon = "/usr/bin/conmon --api-version 1 -c 1f2e -u 1f2e -r /usr/bin/crun -n web-1 --exit-dir /x";
        assert_eq!(
            identify("conmon", &args(conmon)).unwrap().describe(),
            "Podman's port forwarder for the container web-1"
        );
        assert_eq!(identify("pasta", &args("pasta --config-net -t 8080")).unwrap().container, None);
        assert!(identify("python3", &args("python3 -container-ip 1.2.3.4")).is_none());
        assert_eq!(argv(b"a\0b c\0\0"), ["a", "b c"]);
    }
}
