portmatrix_ansible::oom_guard!();

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `open_ports --restore FILE`: the boot restore's unit runs the module
    // on the request it saved (see open_ports::persist).
    if let [flag, file] = args.as_slice()
        && flag == "--restore"
    {
        let file = std::path::PathBuf::from(file);
        portmatrix_ansible::run_with_arguments(
            &open_ports::SPEC,
            || open_ports::persist::saved::read(&file).map_err(Into::into),
            |invocation| open_ports::execute_as(invocation, &open_ports::Host::from_env(), open_ports::Mode::Restore),
        )
    }
    portmatrix_ansible::run(&open_ports::SPEC, |invocation| {
        open_ports::execute(invocation, &open_ports::Host::from_env())
    })
}
