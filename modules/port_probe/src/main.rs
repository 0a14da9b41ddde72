portmatrix_ansible::oom_guard!();

fn main() {
    portmatrix_ansible::run(&port_probe::SPEC, port_probe::execute)
}
