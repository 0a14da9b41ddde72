portmatrix_ansible::oom_guard!();

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `open_ports --restore FILE`: the boot restore's unit runs the module
    // on the request it saved (see open_ports::persist).
    if let [flag, file] = args.as_slice()
        && flag == "--restore"
    {
        let file = std::path::PathBuf::from(file);
        // The lock is taken before the request is read, and handed on.
        let held = std::cell::Cell::new(None);
        portmatrix_ansible::run_with_arguments(
            &open_ports::SPEC,
            || {
                let (args, lock) = open_ports::persist::saved::read_locked(&file)?;
                held.set(Some(lock));
                Ok((args, portmatrix_ansible::AnsibleFlags::default()))
            },
            |invocation| match held.take() {
                Some(lock) => {
                    open_ports::execute_as(invocation, &open_ports::Host::from_env(), open_ports::Mode::Restore(lock))
                }
                None => Err(portmatrix_ansible::Failure::new("the restore's lock was not taken")),
            },
        )
    }
    // `open_ports --follow-firewalld UNIT`: the follower unit restarts the
    // restore UNIT after each firewalld reload (see open_ports::persist::follow).
    if let [flag, unit] = args.as_slice()
        && flag == "--follow-firewalld"
    {
        let tools = open_ports::tools::Tools::new(std::env::var_os("PATH"), std::time::Duration::from_mins(1));
        if let Err(e) = open_ports::persist::follow::follow(&tools, unit) {
            eprintln!("open_ports --follow-firewalld: {}", portmatrix_ansible::error_chain(&e));
        }
        std::process::exit(1);
    }
    portmatrix_ansible::run(&open_ports::SPEC, |invocation| {
        open_ports::execute(invocation, &open_ports::Host::from_env())
    })
}
