portmatrix_ansible::oom_guard!();

fn main() {
    // `port_responder --serve`: the detached responder the module starts,
    // its configuration on stdin (see port_responder::serve).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args == ["--serve"] {
        std::process::exit(port_responder::serve::main());
    }
    portmatrix_ansible::run(&port_responder::SPEC, port_responder::execute)
}
