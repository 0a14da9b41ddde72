//! The boot order check against the real systemd-sysctl (252, Debian 12's,
//! in the project's node image): for each layout of sysctl.d files, the
//! module's warning appears exactly when a boot loses the reservation.
//!
//! One systemd container; per layout: the directories back to the image's
//! own, the layout set up, the module run (the static binary, copied in),
//! the runtime reservation cleared, systemd-sysctl run as at boot (only for
//! this key: `--prefix`), and the reservation it leaves read back. FIFOs and
//! endless devices are left out here: they hang systemd-sysctl itself (the
//! module's side of them is tested in `file_kinds.rs`).

use portmatrix_portset::PortSet;
use portmatrix_tests::container::{Node, NodeImage};
use serde_json::{Value, json};

const K: &str = "net.ipv4.ip_local_reserved_ports";
const BINARY: &str = "/usr/local/bin/reserved_ports";
const RESERVED: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// A warning that concerns the systemd on this node (252); a warning about
/// 258 and later only starts with "with systemd 258".
fn warns_for_this_boot(warning: &str) -> bool {
    warning.starts_with("the reservation will not survive a reboot") || warning.starts_with("cannot tell")
}

struct Layout {
    name: &'static str,
    /// Shell commands that set it up (KEY stands for the key).
    setup: &'static str,
    sysctl_file: &'static str,
    /// What the real boot does with it: loses the reservation or keeps it.
    lost: bool,
    /// A piece of the warning (for every layout with a warning).
    warning: &'static str,
}

const DEFAULT: &str = "/etc/sysctl.d/90-reserved-ports.conf";

const LAYOUTS: &[Layout] = &[
    Layout { name: "plain file in /etc", setup: "", sysctl_file: DEFAULT, lost: false, warning: "" },
    Layout {
        name: "Debian's 99-sysctl.conf -> ../sysctl.conf, sysctl_file /etc/sysctl.conf",
        setup: "ls -l /etc/sysctl.d/99-sysctl.conf | grep -q -- '-> ../sysctl.conf'",
        sysctl_file: "/etc/sysctl.conf",
        lost: false,
        warning: "",
    },
    Layout {
        name: "same name in /etc (ours) and /usr/lib",
        setup: "echo 'KEY = 2000' > /usr/lib/sysctl.d/90-a.conf",
        sysctl_file: "/etc/sysctl.d/90-a.conf",
        lost: false,
        warning: "",
    },
    Layout {
        name: "same name in /etc and /usr/lib (ours)",
        setup: "echo 'KEY = 1000' > /etc/sysctl.d/90-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-a.conf",
        lost: true,
        warning: "/etc/sysctl.d/90-a.conf comes first for the name 90-a.conf and is a file",
    },
    Layout {
        name: "same name in /run and /usr/lib (ours)",
        setup: "mkdir -p /run/sysctl.d && echo 'KEY = 1' > /run/sysctl.d/90-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-a.conf",
        lost: true,
        warning: "/run/sysctl.d/90-a.conf comes first",
    },
    Layout {
        name: "same name in /run (ours) and /usr/local/lib",
        setup: "mkdir -p /usr/local/lib/sysctl.d && echo 'KEY = 1' > /usr/local/lib/sysctl.d/90-a.conf",
        sysctl_file: "/run/sysctl.d/90-a.conf",
        lost: false,
        warning: "",
    },
    Layout {
        name: "a symlink to /dev/null masks the name",
        setup: "ln -s /dev/null /etc/sysctl.d/90-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-a.conf",
        lost: true,
        warning: "is a symbolic link to /dev/null (the null device), so systemd-sysctl reads it instead",
    },
    Layout {
        name: "an empty file shadows the name",
        setup: "touch /etc/sysctl.d/90-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-a.conf",
        lost: true,
        warning: "is an empty file",
    },
    Layout {
        name: "a dangling symlink shadows the name",
        setup: "ln -s /nowhere.conf /etc/sysctl.d/90-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-a.conf",
        lost: true,
        warning: "which points nowhere, so systemd-sysctl reads it instead",
    },
    Layout {
        name: "a directory shadows the name",
        setup: "mkdir /etc/sysctl.d/90-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-a.conf",
        lost: true,
        warning: "is a directory",
    },
    Layout {
        name: "a later file with a smaller value",
        setup: "echo 'KEY = 8080' > /usr/lib/sysctl.d/95-vendor.conf",
        sysctl_file: DEFAULT,
        lost: true,
        warning: "/usr/lib/sysctl.d/95-vendor.conf sets net.ipv4.ip_local_reserved_ports = 8080, so at boot the reservation is 8080, which lacks 5050",
    },
    Layout {
        name: "a later file with a superset value",
        setup: "echo 'KEY = 1-10000' > /usr/lib/sysctl.d/95-vendor.conf",
        sysctl_file: DEFAULT,
        lost: false,
        warning: "",
    },
    Layout {
        name: "an earlier file with a smaller value",
        setup: "echo 'KEY = 1' > /etc/sysctl.d/10-early.conf",
        sysctl_file: DEFAULT,
        lost: false,
        warning: "",
    },
    Layout {
        name: "a later file's slash key with a dash and spaces",
        setup: "printf '  - net/ipv4/ip_local_reserved_ports\\t=  81 \\n' > /etc/sysctl.d/95-x.conf",
        sysctl_file: DEFAULT,
        lost: true,
        warning: "= 81, so at boot",
    },
    Layout {
        name: "a later file's -key cancels it",
        setup: "echo '-KEY' > /etc/sysctl.d/95-x.conf",
        sysctl_file: DEFAULT,
        lost: true,
        warning: "holds -net.ipv4.ip_local_reserved_ports without a value",
    },
    Layout {
        name: "a later file's value with a trailing backslash (no continuation lines)",
        setup: "printf 'KEY = 17\\\\\\n5050,8080\\n' > /etc/sysctl.d/95-x.conf",
        sysctl_file: DEFAULT,
        lost: true,
        warning: "which is not a port list the kernel takes as it is",
    },
    Layout {
        name: "a symlink in /etc/sysctl.d out to /opt/x.conf, sysctl_file /opt/x.conf",
        setup: "mkdir -p /opt && ln -s /opt/x.conf /etc/sysctl.d/50-opt.conf",
        sysctl_file: "/opt/x.conf",
        lost: false,
        warning: "",
    },
    Layout {
        name: "a link in /etc into /usr/lib, read under its own later name",
        setup: "echo 'KEY = 3000' > /usr/lib/sysctl.d/90-b.conf && ln -s /usr/lib/sysctl.d/90-b.conf /etc/sysctl.d/95-a.conf",
        sysctl_file: "/etc/sysctl.d/91-rp.conf",
        lost: true,
        warning: "/etc/sysctl.d/95-a.conf sets net.ipv4.ip_local_reserved_ports = 3000",
    },
    Layout {
        name: "sysctl_file in /usr/lib, also reached by a later link in /etc",
        setup: "echo 'KEY = 3000' > /usr/lib/sysctl.d/90-b.conf && ln -s /usr/lib/sysctl.d/90-b.conf /etc/sysctl.d/95-a.conf",
        sysctl_file: "/usr/lib/sysctl.d/90-b.conf",
        lost: false,
        warning: "",
    },
    Layout {
        name: "sysctl_file not ending in .conf",
        setup: "",
        sysctl_file: "/etc/sysctl.d/90-rp.txt",
        lost: true,
        warning: "its name does not end in .conf",
    },
    Layout {
        name: "sysctl_file ending in .CONF",
        setup: "",
        sysctl_file: "/etc/sysctl.d/90-rp.CONF",
        lost: true,
        warning: "its name does not end in .conf",
    },
    Layout {
        name: "sysctl_file with a hidden name",
        setup: "",
        sysctl_file: "/etc/sysctl.d/.90-rp.conf",
        lost: true,
        warning: "names starting with a dot are hidden",
    },
    Layout {
        name: "sysctl_file outside the directories, no link",
        setup: "mkdir -p /opt",
        sysctl_file: "/opt/y.conf",
        lost: true,
        warning: "/opt/y.conf is not in a directory that systemd-sysctl reads",
    },
    Layout {
        name: "sysctl_file outside the directories, but a later file holds the whole result",
        setup: "mkdir -p /opt && echo 'KEY = 1-10000' > /etc/sysctl.d/99-wide.conf",
        sysctl_file: "/opt/y.conf",
        lost: false,
        warning: "",
    },
    Layout {
        name: "a dangling link in /etc over /usr/lib's later file: only systemd 258 would read it",
        setup: "ln -s /nowhere.conf /etc/sysctl.d/95-x.conf && echo 'KEY = 80' > /usr/lib/sysctl.d/95-x.conf",
        sysctl_file: DEFAULT,
        lost: false,
        warning: "with systemd 258 and later the reservation will not survive a reboot",
    },
];

/// Puts the sysctl directories and /etc/sysctl.conf back as the image has
/// them (saved once), and clears /run's and /usr/local's and /opt.
const RESET: &str = "set -e
rm -rf /etc/sysctl.d /usr/lib/sysctl.d /run/sysctl.d /usr/local/lib/sysctl.d /opt/x.conf /opt/y.conf
cp -a /root/base/sysctl.d /etc/sysctl.d
cp -a /root/base/lib-sysctl.d /usr/lib/sysctl.d
cp -a /root/base/sysctl.conf /etc/sysctl.conf
echo > /proc/sys/net/ipv4/ip_local_reserved_ports";

fn reserved(node: &Node) -> PortSet {
    node.exec_ok(&["cat", RESERVED]).parse().unwrap()
}

#[test]
fn the_warning_appears_exactly_when_systemd_sysctl_loses_the_reservation() {
    let node = Node::start(NodeImage::NoPython);
    let copied = std::process::Command::new("podman")
        .arg("cp")
        .arg(portmatrix_tests::module_binary("reserved_ports"))
        .arg(format!("{}:{BINARY}", node.id()))
        .status()
        .expect("podman runs");
    assert!(copied.success(), "podman cp of the module into the node");
    node.exec_ok(&[
        "sh",
        "-c",
        "mkdir -p /root/base && cp -a /etc/sysctl.d /root/base/sysctl.d && \
         cp -a /usr/lib/sysctl.d /root/base/lib-sysctl.d && cp -a /etc/sysctl.conf /root/base/sysctl.conf",
    ]);
    let systemd = node.exec_ok(&["/lib/systemd/systemd-sysctl", "--version"]);
    assert!(systemd.starts_with("systemd 252 "), "the table records systemd 252's behaviour: {systemd}");

    let mut problems = Vec::new();
    for layout in LAYOUTS {
        node.exec_ok(&["sh", "-c", RESET]);
        node.exec_ok(&["sh", "-c", &layout.setup.replace("KEY", K)]);
        let args = json!({"ports": [5050, 8080], "sysctl_file": layout.sysctl_file});
        let run = node.sh(&format!("echo '{args}' | {BINARY} -"));
        let result: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{}: the module's output is not JSON ({e}): {run:?}", layout.name));
        assert_eq!(result["failed"], false, "{}: {result}", layout.name);
        let wanted: PortSet = result["reserved"].as_str().unwrap().parse().unwrap();
        let warnings: Vec<String> =
            result["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect();

        // The boot: nothing reserved yet, then systemd-sysctl (its exit status
        // is not 0 for some layouts, a directory for one; what counts is
        // what it leaves).
        node.exec_ok(&["sh", "-c", &format!("echo > {RESERVED}")]);
        node.exec(&["/lib/systemd/systemd-sysctl", "--prefix=/net/ipv4/ip_local_reserved_ports"]);
        let booted = reserved(&node);

        let lost = !wanted.is_subset(&booted);
        let warned = warnings.iter().any(|w| warns_for_this_boot(w));
        if lost != layout.lost {
            problems.push(format!("{}: the boot left {booted}; the table says lost={}", layout.name, layout.lost));
        }
        if warned != lost {
            problems.push(format!("{}: boot left {booted} (lost={lost}) but warnings are {warnings:?}", layout.name));
        }
        if layout.warning.is_empty() != warnings.is_empty() || !warnings.iter().all(|w| w.contains(layout.warning)) {
            problems.push(format!("{}: expected a warning with {:?}, got {warnings:?}", layout.name, layout.warning));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems over {} layouts:\n{}",
        problems.len(),
        LAYOUTS.len(),
        problems.join("\n")
    );
}
