//! `persist`: the module's rules come back at boot before the network is
//! configured, and right after a firewall service of the distribution loads
//! its ruleset, on real systemd in containers (a `podman restart` is a real
//! boot). Through ansible-playbook, as an operator runs it.
//!
//! A unit of the test's own, ordered after network-pre.target, records the
//! ruleset at that point of the boot: the rules must be there already.

use std::time::Duration;

use portmatrix_tests::container::{Node, NodeImage, PlaybookRun, run_playbook};
use portmatrix_tests::firewall::{Variant, iptables_hook};
use portmatrix_tests::sandbox::Sandbox;
use serde_json::{Value, json};

const TASK: &str = "open the ports";
const UNIT: &str = "portmatrix-open_ports-open_ports.service";
const UNIT_FILE: &str = "/etc/systemd/system/portmatrix-open_ports-open_ports.service";
const STATE_DIR: &str = "/var/lib/portmatrix/open_ports/open_ports";
/// Where the test's recorder writes the ruleset it sees at network-pre.target.
const RECORDED: &str = "/run/ruleset-at-network-pre";
/// How long a restore queued by a firewall service may take to show.
const SETTLE: Duration = Duration::from_secs(20);

/// The recorder: a unit ordered after network-pre.target (and pulling it in,
/// as network services do), which writes both firewalls' rulesets down.
const RECORDER: &str = r"[Unit]
Description=test: the ruleset when network-pre.target is reached
DefaultDependencies=no
Wants=network-pre.target
After=network-pre.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '{ nft list ruleset; iptables-nft-save; iptables-legacy-save; } > /run/ruleset-at-network-pre 2>/dev/null'
[Install]
WantedBy=multi-user.target
";

fn playbook(extra: &str) -> String {
    format!(
        r"
- hosts: all
  gather_facts: false
  tasks:
    - name: {TASK}
      open_ports:
        enforce: true
{extra}
        rules:
          - ports: [2181, 5050]
            sources: [198.18.0.0/16]
          - ports: [80]
"
    )
}

fn apply(node: &Node, extra: &str, args: &[&str]) -> (PlaybookRun, Value) {
    let run = run_playbook(node, &playbook(extra), args);
    assert!(run.success(), "{}", run.diagnostics());
    let result = run.task_result(node, TASK);
    (run, result)
}

/// Whether the module's rules are in the node's firewall now.
fn rules_present(node: &Node, variant: Variant) -> &'static str {
    let script = match variant {
        Variant::Nftables => "nft list table inet open_ports | grep -q '@enforce_tcp drop'".to_string(),
        _ => format!(
            "{}-save -t filter | grep -qx -- '{}'",
            variant.iptables(false),
            iptables_hook("INPUT", "open_ports")
        ),
    };
    if node.sh(&script).success() { "present" } else { "absent" }
}

fn install_recorder(node: &Node) {
    node.exec_ok(&["sh", "-c", &format!("cat > /etc/systemd/system/record-ruleset.service <<'EOF'\n{RECORDER}EOF\nsystemctl enable --quiet record-ruleset.service")]);
}

/// The whole life of a persisted rule set on one node: apply, check mode,
/// a reboot, absent, another reboot.
fn persisted_across_boots(image: NodeImage, variant: Variant, backend: &str) {
    let node = Node::start(image);
    install_recorder(&node);
    let extra = format!("        backend: {backend}");
    let (_, first) = apply(&node, &extra, &["--diff"]);
    assert_eq!(first["changed"], true, "{first}");
    assert_eq!(first["backend"], variant.label(), "{first}");
    let persisted: Vec<&str> = first["persisted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for file in [format!("{STATE_DIR}/open_ports"), format!("{STATE_DIR}/request.json"), UNIT_FILE.to_string()] {
        assert!(persisted.contains(&file.as_str()), "{file} in {persisted:?}");
    }
    let headers: Vec<&str> =
        first["diff"].as_array().unwrap().iter().filter_map(|d| d["after_header"].as_str()).collect();
    assert!(headers.contains(&format!("persist: {UNIT_FILE}").as_str()), "the unit is in the diff: {headers:?}");
    assert!(node.sh(&format!("systemctl is-active --quiet {UNIT}")).success(), "the unit was started");
    assert!(node.exec_ok(&["head", "-1", UNIT_FILE]).starts_with("# portmatrix open_ports open_ports"));

    let (again, second) = apply(&node, &extra, &[]);
    assert_eq!(second["changed"], false, "idempotent: {second}");
    assert_eq!(again.stats(&node)["changed"], 0);

    // Check mode with other rules: reported, nothing written.
    let files = || node.exec_ok(&["sh", "-c", &format!("cat {UNIT_FILE} {STATE_DIR}/request.json | sha256sum")]);
    let before = files();
    let checked = run_playbook(&node, &playbook(&format!("{extra}\n        forward: true")), &["--check"]);
    assert!(checked.success(), "{}", checked.diagnostics());
    assert_eq!(checked.task_result(&node, TASK)["changed"], true);
    assert_eq!(files(), before, "check mode leaves the persisted files as they are");

    // A reboot: the rules are there before anything ordered after
    // network-pre.target starts, with no ordering cycle and the unit active.
    node.reboot();
    let recorded = node.exec_ok(&["cat", RECORDED]);
    match variant {
        Variant::Nftables => assert!(recorded.contains("table inet open_ports {"), "{recorded}"),
        _ => assert!(recorded.contains(&iptables_hook("INPUT", "open_ports")), "{recorded}"),
    }
    assert_eq!(rules_present(&node, variant), "present");
    assert!(node.sh(&format!("systemctl is-active --quiet {UNIT}")).success());
    let journal = node.exec_ok(&["journalctl", "-b", "--no-pager", "-o", "cat"]);
    assert!(!journal.to_lowercase().contains("ordering cycle"), "{journal}");
    let (_, after_boot) = apply(&node, &extra, &[]);
    assert_eq!(after_boot["changed"], false, "the boot put back exactly what was asked: {after_boot}");

    let (_, gone) = apply(&node, &format!("{extra}\n        state: absent"), &["--diff"]);
    assert_eq!(gone["changed"], true);
    assert_eq!(gone["persisted"], json!([]));
    let left = node.sh(&format!(
        "ls -d {STATE_DIR} /etc/systemd/system/*/portmatrix-open_ports-* {UNIT_FILE} 2>/dev/null; systemctl cat {UNIT} 2>/dev/null"
    ));
    assert_eq!(left.stdout, "", "absent leaves no file or unit");
    assert_eq!(rules_present(&node, variant), "absent");
    node.reboot();
    assert_eq!(rules_present(&node, variant), "absent", "and nothing comes back at boot");
}

#[test]
fn nftables_rules_come_back_at_boot_and_nothing_after_absent() {
    persisted_across_boots(NodeImage::Python, Variant::Nftables, "nftables");
}

#[test]
fn iptables_nft_rules_come_back_at_boot_and_nothing_after_absent() {
    persisted_across_boots(NodeImage::NoPython, Variant::IptablesNft, "iptables");
}

#[test]
fn iptables_legacy_rules_come_back_at_boot_and_nothing_after_absent() {
    persisted_across_boots(NodeImage::Legacy, Variant::IptablesLegacy, "auto");
}

/// Each firewall service of the distribution that loads a ruleset: nftables
/// (stock config: `flush ruleset`), by start, restart and reload; Debian's
/// netfilter-persistent restoring its saved rules (Debian also names it
/// iptables.service and ip6tables.service, by aliases: one drop-in, under
/// its own name); and a STAND-IN for RHEL's iptables.service (which cannot
/// be installed here) in place of that alias, restoring a full ruleset the
/// way its init script does. After each, the module's rules are
/// back, on top of the host's own, which are kept.
#[test]
fn rules_come_back_after_the_distributions_firewall_services_load_their_rulesets() {
    let node = Node::start(NodeImage::Legacy);
    // netfilter-persistent's saved rules: a host that drops by default and
    // lets SSH in. The stand-in iptables.service restores the same.
    node.exec_ok(&[
        "sh",
        "-c",
        "mkdir -p /etc/iptables /etc/sysconfig && printf '*filter\\n:INPUT DROP [0:0]\\n:FORWARD ACCEPT [0:0]\\n:OUTPUT ACCEPT [0:0]\\n\
         -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\\nCOMMIT\\n' | tee /etc/iptables/rules.v4 > /etc/sysconfig/iptables \
         && rm /etc/systemd/system/iptables.service && cat > /etc/systemd/system/iptables.service <<'EOF'\n\
         [Unit]\nDescription=test: STAND-IN for RHEL's iptables.service\nBefore=network-pre.target\nWants=network-pre.target\n\
         DefaultDependencies=no\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/usr/sbin/iptables-legacy-restore /etc/sysconfig/iptables\n\
         ExecReload=/usr/sbin/iptables-legacy-restore /etc/sysconfig/iptables\n\
         ExecStop=/bin/sh -c 'iptables-legacy -F; iptables-legacy -X; iptables-legacy -P INPUT ACCEPT'\n\
         [Install]\nWantedBy=multi-user.target\nEOF\nsystemctl daemon-reload && systemctl restart netfilter-persistent",
    ]);
    let (_, result) = apply(&node, "", &[]);
    assert_eq!(result["backend"], "iptables-legacy", "{result}");
    let dropins = node.exec_ok(&["sh", "-c", "cat /etc/systemd/system/*.service.d/portmatrix-open_ports-*.conf"]);
    assert_eq!(dropins.matches("ExecStartPost=").count(), 3, "nftables, netfilter-persistent, iptables: {dropins}");
    assert_eq!(
        dropins.matches("ExecReload=").count(),
        2,
        "netfilter-persistent cannot reload, and gets no ExecReload: {dropins}"
    );
    let holds = |what: &str| {
        let back = node.wait_until(
            &format!("iptables-legacy-save -t filter | grep -qx -- '{}'", iptables_hook("INPUT", "open_ports")),
            SETTLE,
        );
        assert!(back, "the module's rules are back after {what}");
        let saved = node.exec_ok(&["iptables-legacy-save", "-t", "filter"]);
        let input: Vec<&str> = saved.lines().filter(|l| l.starts_with("-A INPUT")).collect();
        assert_eq!(input.first(), Some(&iptables_hook("INPUT", "open_ports").as_str()), "on top after {what}: {saved}");
        saved
    };
    for action in ["restart netfilter-persistent", "restart iptables", "reload iptables", "start iptables"] {
        if action == "start iptables" {
            node.exec_ok(&["systemctl", "stop", "iptables"]);
        }
        node.exec_ok(&["sh", "-c", &format!("systemctl {action}")]);
        let saved = holds(action);
        assert!(
            saved.contains(":INPUT DROP") && saved.contains("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"),
            "{saved}"
        );
    }
    // A reboot of a host whose own rules drop by default: both its own rules
    // and the module's are there, and only theirs decide the rest.
    node.reboot();
    let saved = holds("a reboot");
    assert!(
        saved.contains(":INPUT DROP") && saved.contains("--dport 22 -j ACCEPT"),
        "the host's rules are kept: {saved}"
    );

    // nftables.service with its stock config (flush ruleset) on the same host.
    node.exec_ok(&["systemctl", "restart", "nftables"]);
    holds("nftables' flush ruleset");
}

#[test]
fn nftables_start_restart_and_reload_each_put_the_rules_back() {
    let node = Node::start(NodeImage::NoPython);
    let (_, result) = apply(&node, "        backend: nftables", &[]);
    assert_eq!(result["backend"], "nftables", "{result}");
    for action in ["start", "restart", "reload", "stop", "start"] {
        node.exec_ok(&["systemctl", action, "nftables"]);
        if action == "stop" {
            continue;
        }
        assert!(node.sh("nft list table inet filter >/dev/null").success(), "nftables loaded its config ({action})");
        assert!(
            node.wait_until("nft list table inet open_ports | grep -q '@enforce_tcp drop'", SETTLE),
            "the module's table is back after `systemctl {action} nftables`"
        );
    }
}

/// A unit or drop-in of the module's names that is someone else's (no
/// marker) is never overwritten: present is refused, naming it, before the
/// firewall is changed; absent leaves it with a warning.
#[test]
fn unmarked_files_of_the_modules_names_are_left_alone() {
    let node = Node::start(NodeImage::NoPython);
    let theirs = "[Unit]\nDescription=a unit of the administrator\n[Service]\nExecStart=/bin/true\n";
    node.exec_ok(&["sh", "-c", &format!("printf '{}' > {UNIT_FILE}", theirs.replace('\n', "\\n"))]);
    let run = run_playbook(&node, &playbook("        backend: nftables"), &[]);
    assert!(!run.success());
    let result = run.task_result(&node, TASK);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains(&format!("{UNIT_FILE} exists but carries no marker")), "{msg}");
    assert!(!node.sh("nft list table inet open_ports").success(), "nothing was applied");
    assert_eq!(node.exec_ok(&["cat", UNIT_FILE]), theirs);
    let (_, gone) = apply(&node, "        backend: nftables\n        state: absent", &[]);
    let warnings = gone["warnings"].to_string();
    assert!(warnings.contains("carries no marker of this module and was left as it is"), "{warnings}");
    assert_eq!(node.exec_ok(&["cat", UNIT_FILE]), theirs);

    // A link or a directory where a drop-in goes is never followed or read:
    // present is refused naming it, absent works and leaves it.
    node.exec_ok(&["rm", UNIT_FILE]);
    let dropin = "/etc/systemd/system/nftables.service.d/portmatrix-open_ports-open_ports.conf";
    node.exec_ok(&[
        "sh",
        "-c",
        &format!("echo keep > /root/x.conf && mkdir -p $(dirname {dropin}) && ln -s /root/x.conf {dropin}"),
    ]);
    let run = run_playbook(&node, &playbook("        backend: nftables"), &[]);
    let msg = run.task_result(&node, TASK)["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.starts_with(&format!(
            "persist: the file {dropin} (a symbolic link to /root/x.conf) exists but carries no marker"
        )),
        "{msg}"
    );
    let (_, gone) = apply(&node, "        backend: nftables\n        state: absent", &[]);
    assert!(gone["warnings"].to_string().contains("(a symbolic link to /root/x.conf)"), "{gone}");
    assert_eq!(node.exec_ok(&["cat", "/root/x.conf"]), "keep\n", "the link's target is untouched");
    node.exec_ok(&["rm", dropin]);

    // The state directory is the module's own: a request file someone broke
    // is replaced by present and removed by absent.
    node.exec_ok(&["sh", "-c", &format!("mkdir -p {STATE_DIR} && echo '{{garbage' > {STATE_DIR}/request.json")]);
    let (_, fixed) = apply(&node, "        backend: nftables", &[]);
    assert_eq!(fixed["changed"], true, "{fixed}");
    assert!(
        node.exec_ok(&["cat", &format!("{STATE_DIR}/request.json")])
            .contains("\"marker\": \"portmatrix open_ports open_ports\"")
    );
    node.exec_ok(&["sh", "-c", &format!("echo '{{garbage' > {STATE_DIR}/request.json")]);
    apply(&node, "        backend: nftables\n        state: absent", &[]);
    assert!(!node.sh(&format!("test -e {STATE_DIR}")).success(), "absent removed the broken file too");
}

/// Without systemd as the init system (a kernel sandbox here), the rules
/// are applied, nothing is written, and a warning says so.
#[test]
fn without_systemd_nothing_is_persisted_and_a_warning_says_so() {
    let sandbox = Sandbox::new();
    let tools = portmatrix_tests::firewall::ToolDir::new(Variant::Nftables);
    let run = portmatrix_tests::firewall::run_open_ports(
        &sandbox,
        &tools.path_var(),
        None,
        &json!({"persist": true, "backend": "nftables", "enforce": true, "rules": [{"ports": [8080]}]}),
    );
    run.assert_ok();
    assert!(
        run.warnings().iter().any(|w| w.starts_with("persist: systemd does not run on this host")),
        "{:?}",
        run.warnings()
    );
    assert_eq!(run.json["persisted"], json!([]));
    assert_eq!(sandbox.sh("ls -A /etc/systemd/system"), "", "nothing written");
    assert!(sandbox.sh_output("nft list table inet open_ports").status.success(), "the rules are applied");
}

/// A host where the boot restore cannot run (its state directory on a
/// `noexec` mount) fails the task now, naming the unit, not at the next boot;
/// the rules themselves are applied.
#[test]
fn a_restore_that_cannot_run_fails_the_task_now() {
    let node = Node::start(NodeImage::NoPython);
    node.exec_ok(&["sh", "-c", "mkdir -p /var/lib/portmatrix && mount -t tmpfs -o noexec tmpfs /var/lib/portmatrix"]);
    let run = run_playbook(&node, &playbook("        backend: nftables"), &[]);
    assert!(!run.success(), "{}", run.diagnostics());
    let msg = run.task_result(&node, TASK)["msg"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.starts_with(&format!("the rules are in place, but their boot restore ({UNIT}) could not be arranged")),
        "{msg}"
    );
    assert!(msg.contains("systemctl start"), "{msg}");
    assert!(node.sh("nft list table inet open_ports").success(), "the rules are in place, as said");
}

/// Docker starts after the network, makes DOCKER-USER and puts its own jumps
/// and accepts on top of FORWARD: above the forward hook the boot restore put
/// there, before DOCKER-USER existed. Its drop-in runs the restore again,
/// which moves the hook into DOCKER-USER. Docker cannot be installed here: a
/// STAND-IN docker.service does to FORWARD what dockerd does at every start.
#[test]
fn after_a_docker_stand_in_starts_at_boot_the_forward_hook_is_in_docker_user() {
    let node = Node::start(NodeImage::Legacy);
    node.exec_ok(&[
        "sh",
        "-c",
        "cat > /etc/systemd/system/docker.service <<'EOF'\n\
         [Unit]\nDescription=test: STAND-IN for docker.service (its FORWARD rules only)\n\
         After=network-online.target\nWants=network-online.target\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/bin/sh -c 'iptables -N DOCKER-USER 2>/dev/null && iptables -A DOCKER-USER -j RETURN; \
         iptables -D FORWARD -j DOCKER-USER 2>/dev/null; iptables -I FORWARD 1 -j DOCKER-USER; \
         iptables -I FORWARD 2 -o docker0 -j ACCEPT'\n\
         [Install]\nWantedBy=multi-user.target\nEOF\nsystemctl daemon-reload && systemctl enable --quiet --now docker.service",
    ]);
    let (_, result) = apply(&node, "        forward: true", &[]);
    assert_eq!(result["backend"], "iptables-legacy", "{result}");
    assert!(node.sh("test -f /etc/systemd/system/docker.service.d/portmatrix-open_ports-open_ports.conf").success());
    let hook = "-A DOCKER-USER -m comment --comment \"portmatrix open_ports open_ports\" -m conntrack --ctstate DNAT -j open_ports-fwd";
    let in_docker_user = format!(
        "iptables-legacy-save -t filter | grep -A1 -x -- '{hook}' | tail -1 | grep -qx -- '-A DOCKER-USER -j RETURN'"
    );
    assert!(
        node.wait_until(&in_docker_user, SETTLE),
        "docker (stand-in) ran before the module: the hook is in DOCKER-USER"
    );
    node.reboot();
    assert!(
        node.wait_until(&in_docker_user, SETTLE),
        "after the boot: {}",
        node.exec_ok(&["iptables-legacy-save", "-t", "filter"])
    );
    let saved = node.exec_ok(&["iptables-legacy-save", "-t", "filter"]);
    assert!(
        !saved.contains("-A FORWARD -m comment --comment \"portmatrix open_ports"),
        "no hook left under Docker's: {saved}"
    );
}

/// A restore started (by a firewall service's drop-in, say) while a task is
/// applying new rules waits for the task's lock and then restores the request
/// the task saved, not the one it found when it started: the new rules hold.
/// The task's `nft` is slowed by a FAKE wrapper so that the restore surely
/// starts in the middle of it.
#[test]
fn a_restore_during_a_task_restores_what_the_task_saved() {
    let node = Node::start(NodeImage::NoPython);
    let copied = std::process::Command::new("podman")
        .args([
            "cp",
            &portmatrix_tests::module_binary("open_ports").display().to_string(),
            &format!("{}:/usr/local/bin/open_ports", node.id()),
        ])
        .status()
        .expect("podman cp");
    assert!(copied.success());
    let args = |port: u16| {
        format!(
            r#"{{"backend": "nftables", "enforce": true, "rules": [{{"ports": [{port}], "sources": ["198.18.0.0/16"]}}]}}"#
        )
    };
    node.exec_ok(&["sh", "-c", &format!("echo '{}' | open_ports - >/dev/null", args(8080))]);
    let out = node.exec_ok(&[
        "sh",
        "-c",
        &format!(
            "mkdir -p /tmp/slow && printf '#!/bin/sh\\ncase \" $* \" in *\" -f \"*) sleep 3;; esac\\nexec /usr/sbin/nft \"$@\"\\n' > /tmp/slow/nft \
             && chmod +x /tmp/slow/nft && (echo '{}' | PATH=/tmp/slow:$PATH open_ports - > /tmp/task.json) & \
             sleep 1; systemctl restart --no-block {UNIT}; wait; \
             while systemctl is-active --quiet {UNIT} && [ \"$(systemctl show -p SubState --value {UNIT})\" != exited ]; do sleep 0.2; done; \
             systemctl is-active {UNIT}; cat /tmp/task.json",
            args(9090)
        ),
    ]);
    assert!(out.contains("\"changed\":true"), "the task applied 9090: {out}");
    assert!(node.wait_until(&format!("systemctl show -p SubState --value {UNIT} | grep -qx exited"), SETTLE));
    let table = node.exec_ok(&["nft", "list", "set", "inet", "open_ports", "r1_ports"]);
    assert!(table.contains("9090") && !table.contains("8080"), "the restore kept the task's rules: {table}");
    let journal = node.exec_ok(&["journalctl", "-u", UNIT, "--no-pager", "-o", "cat"]);
    assert!(journal.contains("\"ports\":[\"9090\"]"), "the restore read the request the task saved: {journal}");
}

/// How long a firewalld step may take to show: firewalld (Python) takes
/// seconds to start, many more on a loaded CI machine where three restarts
/// come in a row. Waits end as soon as the rules are there.
const FIREWALLD_SETTLE: Duration = Duration::from_secs(90);

/// The follower of firewalld's reloads for the test's name.
const FOLLOWER: &str = "portmatrix-open_ports-firewalld@open_ports.service";

/// `firewall-cmd --reload` goes to firewalld over D-Bus: systemd sees no
/// job, so only the follower can put the rules back. First shown to remove
/// the module's rules (follower stopped), then put back after each reload,
/// after `systemctl restart firewalld` (the follower restarts with
/// firewalld) and after a reboot, gone with `absent`; and a warning when
/// the rules are not persisted.
fn rules_come_back_after_firewalld_reloads(backend: &str, extra: &str, present: &str) {
    let node = Node::start(NodeImage::Firewalld);
    if backend == "iptables" {
        // firewalld's iptables backend flushes every iptables chain on reload.
        node.exec_ok(&[
            "sh",
            "-c",
            "sed -i 's/^FirewallBackend=.*/FirewallBackend=iptables/' /etc/firewalld/firewalld.conf \
             && systemctl restart firewalld",
        ]);
    }
    assert!(node.wait_until("firewall-cmd --state", FIREWALLD_SETTLE), "firewalld runs");
    let (_, result) = apply(&node, &format!("        backend: {backend}\n{extra}"), &[]);
    let persisted = result["persisted"].to_string();
    assert!(persisted.contains(&format!("/etc/systemd/system/{FOLLOWER}")), "{persisted}");
    assert!(node.sh(&format!("systemctl is-active --quiet {FOLLOWER}")).success(), "the follower was started");
    assert!(node.sh(present).success(), "applied: {result}\n{}", node.sh("nft list ruleset; iptables-save").stdout);

    // The reload removes the module's rules: without the follower they stay gone.
    node.exec_ok(&["systemctl", "stop", FOLLOWER]);
    node.exec_ok(&["firewall-cmd", "--reload"]);
    assert!(!node.sh(present).success(), "a firewalld reload removes the rules");
    node.exec_ok(&["systemctl", "start", FOLLOWER]);
    node.exec_ok(&["systemctl", "restart", UNIT]);
    assert!(node.sh(present).success());

    for reload in ["firewall-cmd --reload", "firewall-cmd --complete-reload", "firewall-cmd --reload"] {
        node.exec_ok(&["sh", "-c", reload]);
        assert!(node.wait_until(present, FIREWALLD_SETTLE), "the rules are back after {reload}");
    }
    node.exec_ok(&["systemctl", "restart", "firewalld"]);
    assert!(
        node.wait_until(present, FIREWALLD_SETTLE),
        "the rules are back after systemctl restart firewalld: {}",
        node.sh(&format!("iptables-save; journalctl --no-pager -o cat -u {UNIT} -u firewalld | tail -30")).stdout
    );
    assert!(
        node.wait_until(&format!("systemctl is-active --quiet {FOLLOWER}"), FIREWALLD_SETTLE),
        "restarted with firewalld"
    );
    // What the units said, for a failure's message.
    let why = || {
        node.sh(&format!(
            "systemctl status --no-pager {FOLLOWER} {UNIT} firewalld 2>&1 | grep -E 'Active|Loaded'; \
             journalctl --no-pager -o cat -u {FOLLOWER} -u {UNIT} -u firewalld | tail -25"
        ))
        .stdout
    };
    node.exec_ok(&["firewall-cmd", "--reload"]);
    assert!(node.wait_until(present, FIREWALLD_SETTLE), "and it follows the new firewalld: {}", why());
    // firewalld killed (no stop job: PartOf= would miss it) and started again.
    node.exec_ok(&["sh", "-c", "systemctl kill --signal=SIGKILL firewalld; sleep 1; systemctl start firewalld"]);
    assert!(
        node.wait_until(present, FIREWALLD_SETTLE),
        "the rules are back after firewalld was killed and started: {}",
        why()
    );
    // firewalld that cannot load its own configuration runs the stock one
    // (its state FAILED): its tables are made, and the rules go back on them.
    node.exec_ok(&["sh", "-c", "echo '<zone><bogus' > /etc/firewalld/zones/bad.xml && systemctl restart firewalld"]);
    assert!(
        node.wait_until(present, FIREWALLD_SETTLE),
        "the rules are back on a firewalld in its FAILED state: {}",
        why()
    );
    node.exec_ok(&["sh", "-c", "rm /etc/firewalld/zones/bad.xml && systemctl restart firewalld"]);
    assert!(
        node.wait_until(present, FIREWALLD_SETTLE),
        "the rules are back after firewalld's config is mended: {}",
        why()
    );
    let journal = node.exec_ok(&["journalctl", "-u", FOLLOWER, "--no-pager", "-o", "cat"]);
    assert!(journal.contains(&format!("firewalld reloaded: {UNIT} restarts")), "{journal}");

    // A boot: the unit runs when firewalld is started to systemd but has not
    // loaded its rules; the follower restores once it has.
    node.reboot();
    assert!(node.wait_until(present, FIREWALLD_SETTLE), "the rules are back after a reboot of a firewalld host");
    node.exec_ok(&["firewall-cmd", "--reload"]);
    assert!(node.wait_until(present, FIREWALLD_SETTLE), "and reloads are followed after it");

    let (_, gone) = apply(&node, &format!("        backend: {backend}\n{extra}\n        state: absent"), &[]);
    assert_eq!(gone["changed"], true, "{gone}");
    assert!(!node.sh(&format!("systemctl is-active --quiet {FOLLOWER}")).success(), "the follower was stopped");
    let left =
        node.sh("ls /etc/systemd/system/ | grep portmatrix; ls /etc/systemd/system/firewalld.service.d 2>/dev/null");
    assert_eq!(left.stdout, "", "absent leaves no follower or drop-in");
    node.exec_ok(&["systemctl", "restart", "firewalld"]);
    assert!(node.sh(&format!("systemctl status {FOLLOWER} 2>&1 | grep -q 'could not be found'")).success());

    // Not persisted: a warning says that firewalld's reloads remove the rules.
    let (_, unfollowed) = apply(&node, &format!("        backend: {backend}\n{extra}\n        persist: false"), &[]);
    assert!(
        unfollowed["warnings"].to_string().contains("firewalld is running: a reload of it removes these rules"),
        "{unfollowed}"
    );
}

/// firewalld's nftables backend (Debian's default) deletes and remakes its
/// own table at each reload, and with it the module's chain there
/// (`jump_from` a chain of firewalld's, which is what makes the module's
/// accepts count on a firewalld host).
#[test]
fn firewalld_nftables_backend_reloads_each_have_the_rules_put_back() {
    rules_come_back_after_firewalld_reloads(
        "nftables",
        "        jump_from: inet firewalld filter_INPUT",
        "nft list chain inet firewalld filter_INPUT | grep -q 'jump open_ports' \
         && nft list chain inet firewalld open_ports | grep -q '@open_ports_enforce_tcp drop'",
    );
}

/// firewalld's iptables backend flushes every iptables chain at each reload.
#[test]
fn firewalld_iptables_backend_reloads_each_have_the_rules_put_back() {
    let hook = iptables_hook("INPUT", "open_ports");
    rules_come_back_after_firewalld_reloads(
        "iptables",
        "",
        &format!(
            "iptables-save -t filter | grep -qx -- '{hook}' && iptables-save -t filter | grep -q -- '-A open_ports'"
        ),
    );
}
