//! `sysctl_file` is a regular file or nothing yet: every other kind of
//! file at the path is refused before any change, naming the path and what
//! is there, and is left exactly as it was; nothing at all blocks or reads
//! without end, neither `sysctl_file` nor the other files that the boot
//! order check looks at. Each case in a sandbox, whose sysctl directories
//! are private tmpfs mounts (devices made there are private copies).

use portmatrix_tests::sandbox::Sandbox;
use serde_json::json;

const DIR: &str = "/etc/sysctl.d";
const PATH: &str = "/etc/sysctl.d/90-rp.conf";

/// Everything about the directory's entries that a change would alter:
/// kind, device numbers, size, link target, content of regular files.
fn snapshot(sandbox: &Sandbox) -> String {
    sandbox.sh(&format!(
        "cd {DIR} && for f in $(LC_ALL=C ls -A); do stat -c '%n %F %t:%T %s %i' \"$f\"; \
         [ -L \"$f\" ] && readlink \"$f\"; [ -f \"$f\" ] && [ ! -L \"$f\" ] && md5sum \"$f\"; done; true"
    ))
}

/// A kind of thing at the path, how to make it there, and how it is named.
struct Kind {
    make: &'static str,
    what: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        make: "echo 'root:x:0:0:root:/root:/bin/sh' > passwd && ln -s passwd 90-rp.conf",
        what: "a symbolic link to passwd",
    },
    Kind {
        make: "echo 'net.ipv4.ip_local_reserved_ports = 1' > 99-other.conf && ln -s 99-other.conf 90-rp.conf",
        what: "a symbolic link to 99-other.conf",
    },
    Kind { make: "ln -s /etc/sysctl.d/nowhere.conf 90-rp.conf", what: "a symbolic link to /etc/sysctl.d/nowhere.conf" },
    Kind {
        make: "mknod null c 1 3 && ln -s /etc/sysctl.d/null 90-rp.conf",
        what: "a symbolic link to /etc/sysctl.d/null",
    },
    Kind { make: "mknod 90-rp.conf c 1 3", what: "a character device" },
    Kind { make: "mknod 90-rp.conf c 1 9", what: "a character device" },
    Kind { make: "mknod 90-rp.conf c 1 5", what: "a character device" },
    Kind { make: "mknod 90-rp.conf b 7 0", what: "a block device" },
    Kind { make: "mkfifo 90-rp.conf", what: "a FIFO" },
    Kind { make: "mkdir 90-rp.conf && echo x > 90-rp.conf/inside", what: "a directory" },
    Kind {
        make: "/usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"90-rp.conf\")'",
        what: "a socket",
    },
];

#[test]
fn anything_but_a_regular_file_is_refused_and_left_as_it_was() {
    for kind in KINDS {
        let sandbox = Sandbox::new();
        sandbox.set_reserved("9000");
        sandbox.sh(&format!("cd {DIR} && {}", kind.make));
        let before = snapshot(&sandbox);
        for check_mode in [false, true] {
            let run = sandbox.run_module(
                "reserved_ports",
                &json!({"ports": [8080], "sysctl_file": PATH, "_ansible_check_mode": check_mode}),
            );
            run.assert_failed_with(&format!("sysctl_file {PATH} is {}, not a regular file: ", kind.what));
            assert_eq!(sandbox.reserved(), "9000", "{}: the kernel is untouched", kind.what);
            assert_eq!(snapshot(&sandbox), before, "{}: the directory is as it was", kind.what);
        }
    }
}

#[test]
fn a_symlink_is_refused_with_advice_and_persist_false_does_not_look() {
    let sandbox = Sandbox::new();
    sandbox.sh(&format!("cd {DIR} && echo keep > passwd && ln -s passwd 90-rp.conf"));
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080], "sysctl_file": PATH}));
    assert_eq!(
        run.msg(),
        "sysctl_file /etc/sysctl.d/90-rp.conf is a symbolic link to passwd, not a regular file: \
         name the file itself (or remove the link)"
    );
    let runtime_only =
        sandbox.run_module("reserved_ports", &json!({"ports": [8080], "sysctl_file": PATH, "persist": false}));
    runtime_only.assert_ok();
    assert_eq!(sandbox.reserved(), "8080");
    assert_eq!(sandbox.read(&format!("{DIR}/passwd")), "keep\n");
}

#[test]
fn an_oversized_file_is_refused_unread_and_unchanged() {
    let sandbox = Sandbox::new();
    sandbox.sh(&format!("yes '# padding' | head -c 2000000 > {PATH}"));
    let before = snapshot(&sandbox);
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080], "sysctl_file": PATH}));
    run.assert_failed_with(&format!("sysctl_file {PATH} is larger than 1048576 bytes"));
    assert_eq!(snapshot(&sandbox), before);
    assert_eq!(sandbox.reserved(), "");
}

#[test]
fn fifos_and_endless_devices_elsewhere_in_the_directories_neither_hang_nor_are_read() {
    let sandbox = Sandbox::new();
    sandbox.sh(&format!(
        "cd {DIR} && mkfifo 50-fifo.conf && mknod 60-zero.conf c 1 5 && mknod 70-random.conf c 1 9 && \
         mkfifo 95-fifo.conf && mkfifo /usr/lib/sysctl.d/55-fifo.conf"
    ));
    let before = snapshot(&sandbox);
    let expectations = [
        ("50-fifo.conf", "/etc/sysctl.d/50-fifo.conf, which is a FIFO"),
        ("55-fifo.conf", "/usr/lib/sysctl.d/55-fifo.conf, which is a FIFO"),
        ("60-zero.conf", "/etc/sysctl.d/60-zero.conf, which is a character device"),
        ("70-random.conf", "/etc/sysctl.d/70-random.conf, which is a character device"),
        // Named after sysctl_file: read after it at boot.
        ("95-fifo.conf", "/etc/sysctl.d/95-fifo.conf, which is a FIFO"),
    ];
    for (port, (name, named)) in (8080..).zip(expectations) {
        let run = sandbox.run_module("reserved_ports", &json!({"ports": [port]}));
        run.assert_ok();
        let warnings = run.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!(
                "cannot tell whether the reservation survives a reboot: systemd-sysctl reads {named}"
            )),
            "{warnings:?}"
        );
        assert!(sandbox.reserved().contains(&port.to_string()), "the reservation is made all the same");
        // The next case: this one out of the way.
        sandbox.sh(&format!("rm -f {DIR}/{name} /usr/lib/sysctl.d/{name}"));
    }
    assert!(before.contains("50-fifo.conf fifo"), "{before}");
    assert!(sandbox.run_module("reserved_ports", &json!({"ports": [9000]})).warnings().is_empty());

    sandbox.sh("yes '# padding' | head -c 2000000 > /usr/lib/sysctl.d/95-big.conf");
    let big = sandbox.run_module("reserved_ports", &json!({"ports": [9001]}));
    big.assert_ok();
    assert!(
        big.warnings()[0].contains("/usr/lib/sysctl.d/95-big.conf is larger than 1048576 bytes"),
        "{:?}",
        big.warnings()
    );
}

/// A `sysctl_file` that cannot be a file's path: what is there to make, the
/// path, and the failure. Each is refused before any change, in check mode
/// with the same message (so it is found while planning, before the kernel
/// is written), and nothing is created (not even a missing directory).
const NOT_FILE_PATHS: &[(&str, &str, &str)] = &[
    ("true", "/etc/sysctl.d/90-rp.conf/", r#""/etc/sysctl.d/90-rp.conf/" is not a path to a file: it ends in "/""#),
    ("true", "/etc/sysctl.d/", r#""/etc/sysctl.d/" is not a path to a file: it ends in "/""#),
    (
        "true",
        "/etc/sysctl.d/90-rp.conf/.",
        r#""/etc/sysctl.d/90-rp.conf/." is not a path to a file: its last part is "." or "..""#,
    ),
    ("true", "/etc/sysctl.d/new/..", r#""/etc/sysctl.d/new/.." is not a path to a file: its last part is "." or "..""#),
    ("true", "/etc/sysctl.d/..", r#""/etc/sysctl.d/.." is not a path to a file: its last part is "." or "..""#),
    (
        "echo x > passwd",
        "/etc/sysctl.d/passwd/90-rp.conf",
        "sysctl_file /etc/sysctl.d/passwd/90-rp.conf cannot be written: /etc/sysctl.d/passwd is a regular file, not a directory",
    ),
    (
        "echo x > passwd",
        "/etc/sysctl.d/passwd/sub/90-rp.conf",
        "sysctl_file /etc/sysctl.d/passwd/sub/90-rp.conf cannot be written: /etc/sysctl.d/passwd is a regular file, not a directory",
    ),
    (
        "ln -s /nowhere gone",
        "/etc/sysctl.d/gone/90-rp.conf",
        "sysctl_file /etc/sysctl.d/gone/90-rp.conf cannot be written: /etc/sysctl.d/gone is a symbolic link to /nowhere, which points nowhere",
    ),
    (
        "mkfifo fifo",
        "/etc/sysctl.d/fifo/90-rp.conf",
        "sysctl_file /etc/sysctl.d/fifo/90-rp.conf cannot be written: /etc/sysctl.d/fifo is a FIFO, not a directory",
    ),
];

#[test]
fn a_path_that_cannot_be_a_file_is_refused_before_any_change() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    for (make, path, expected) in NOT_FILE_PATHS {
        sandbox.sh(&format!("cd {DIR} && rm -rf ./* && {make}"));
        let before = snapshot(&sandbox);
        for check_mode in [true, false] {
            let run = sandbox.run_module(
                "reserved_ports",
                &json!({"ports": [8080], "sysctl_file": path, "_ansible_check_mode": check_mode}),
            );
            run.assert_failed_with(expected);
            assert_eq!(sandbox.reserved(), "9000", "{path}: the kernel is untouched");
            assert_eq!(snapshot(&sandbox), before, "{path}: the directory is as it was");
        }
    }
}

/// Files of /proc and /sys look regular but are the kernel's: never read.
/// As `sysctl_file` (the kernel's own setting, a plausible slip) the run
/// fails before any change; linked from a sysctl directory, the boot order
/// check says it cannot tell, without reading it (/proc/version stands in
/// for /proc/kmsg, whose reads would consume the kernel log).
#[test]
fn files_of_proc_and_sys_are_never_read() {
    let sandbox = Sandbox::new();
    sandbox.set_reserved("9000");
    let proc = "/proc/sys/net/ipv4/ip_local_reserved_ports";
    for check_mode in [true, false] {
        let run = sandbox.run_module(
            "reserved_ports",
            &json!({"ports": [8080], "sysctl_file": proc, "_ansible_check_mode": check_mode}),
        );
        run.assert_failed_with(&format!("sysctl_file {proc} is a file of /proc or /sys (procfs), not a regular file"));
        assert_eq!(sandbox.reserved(), "9000", "the kernel is untouched");
    }
    sandbox.sh(&format!("ln -s /proc/version {DIR}/50-proc.conf"));
    let run = sandbox.run_module("reserved_ports", &json!({"ports": [8080]}));
    run.assert_ok();
    assert_eq!(
        run.warnings(),
        [format!(
            "cannot tell whether the reservation survives a reboot: systemd-sysctl reads {DIR}/50-proc.conf \
             (/proc/version), which is a file of /proc or /sys (procfs): this module does not read it, as reading \
             such a file can have side effects"
        )]
    );
}
