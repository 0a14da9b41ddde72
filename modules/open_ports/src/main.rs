portmatrix_ansible::oom_guard!();

fn main() {
    portmatrix_ansible::run(&open_ports::SPEC, |invocation| {
        open_ports::execute(invocation, &open_ports::Host::from_env())
    })
}
