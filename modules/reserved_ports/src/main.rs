portmatrix_ansible::oom_guard!();

fn main() {
    portmatrix_ansible::run(&reserved_ports::SPEC, |invocation| {
        reserved_ports::execute(invocation, &reserved_ports::Host::default())
    })
}
