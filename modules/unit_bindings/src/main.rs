portmatrix_ansible::oom_guard!();

fn main() {
    portmatrix_ansible::run(&unit_bindings::SPEC, |invocation| {
        unit_bindings::execute(invocation, &unit_bindings::Host::default())
    })
}
