//! Plan first, apply second: from what the kernel and the file hold now and
//! what was asked, everything that would change, before anything does.

use std::path::PathBuf;

use portmatrix_portset::{PortRange, PortSet};

use crate::conffile;
use crate::kernel::KernelState;
use crate::options::{Request, State};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePlan {
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: String,
}

impl FilePlan {
    pub fn changes(&self) -> bool {
        self.before.as_deref() != Some(self.after.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub before: PortSet,
    pub after: PortSet,
    pub ephemeral: PortRange,
    /// `None` when persist=false.
    pub file: Option<FilePlan>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to change the reservation to {after}: it would leave {free} of the {total} ephemeral ports ({ephemeral}) unreserved, \
     fewer than min_free_ephemeral={minimum}, and outgoing connections would start failing with EADDRNOTAVAIL"
)]
pub struct StarvationError {
    pub after: PortSet,
    pub free: u32,
    pub total: u32,
    pub ephemeral: PortRange,
    pub minimum: u32,
}

impl Plan {
    pub fn new(
        request: &Request,
        kernel: &KernelState,
        file_before: Option<Option<String>>,
    ) -> Result<Plan, StarvationError> {
        let before = kernel.reserved.clone();
        let after = match (request.state, request.exclusive) {
            (State::Present, false) => before.union(&request.ports),
            (State::Present, true) => request.ports.clone(),
            (State::Absent, _) => before.difference(&request.ports),
        };
        let plan = Plan {
            file: file_before.map(|existing| FilePlan {
                path: request.sysctl_file.clone(),
                after: conffile::render(existing.as_deref(), &after.to_string()),
                before: existing,
            }),
            before,
            after,
            ephemeral: kernel.ephemeral,
        };
        // Taking ports out never starves anyone, whatever the level was.
        let grows = !plan.after.is_subset(&plan.before);
        if grows && plan.ephemeral_free() < request.min_free_ephemeral {
            return Err(StarvationError {
                after: plan.after.clone(),
                free: plan.ephemeral_free(),
                total: plan.ephemeral.len(),
                ephemeral: plan.ephemeral,
                minimum: request.min_free_ephemeral,
            });
        }
        Ok(plan)
    }

    pub fn runtime_changes(&self) -> bool {
        self.before != self.after
    }

    pub fn file_changes(&self) -> bool {
        self.file.as_ref().is_some_and(FilePlan::changes)
    }

    pub fn changes(&self) -> bool {
        self.runtime_changes() || self.file_changes()
    }

    pub fn added(&self) -> PortSet {
        self.after.difference(&self.before)
    }

    pub fn removed(&self) -> PortSet {
        self.before.difference(&self.after)
    }

    pub fn ephemeral_free(&self) -> u32 {
        self.ephemeral.len() - self.after.count_within(self.ephemeral)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(state: State, exclusive: bool, ports: &str, minimum: u32) -> Request {
        Request {
            ports: ports.parse().unwrap(),
            state,
            exclusive,
            persist: true,
            sysctl_file: "/etc/sysctl.d/90-reserved-ports.conf".into(),
            min_free_ephemeral: minimum,
            lock_timeout: std::time::Duration::ZERO,
        }
    }

    fn kernel(reserved: &str) -> KernelState {
        KernelState { reserved: reserved.parse().unwrap(), ephemeral: PortRange::new(32768, 60999).unwrap() }
    }

    #[test]
    fn present_merges_absent_splits_exclusive_replaces() {
        let merged = Plan::new(&request(State::Present, false, "8080-8082", 0), &kernel("9000"), None).unwrap();
        assert_eq!(merged.after.to_string(), "8080-8082,9000");
        assert_eq!(merged.added().to_string(), "8080-8082");
        let split = Plan::new(&request(State::Absent, false, "8081", 0), &kernel("8080-8082"), None).unwrap();
        assert_eq!(split.after.to_string(), "8080,8082");
        assert_eq!(split.removed().to_string(), "8081");
        let exact = Plan::new(&request(State::Present, true, "80", 0), &kernel("9000"), None).unwrap();
        assert_eq!(exact.after.to_string(), "80");
    }

    #[test]
    fn same_ports_in_another_form_change_nothing() {
        let plan = Plan::new(&request(State::Present, false, "8081,8080,8082", 0), &kernel("8080-8082"), None).unwrap();
        assert!(!plan.changes());
    }

    #[test]
    fn starving_the_ephemeral_range_is_refused_but_removal_is_not() {
        let err = Plan::new(&request(State::Present, false, "32768-60000", 1024), &kernel(""), None).unwrap_err();
        assert_eq!(err.free, 999);
        assert!(err.to_string().contains("leave 999 of the 28232 ephemeral ports (32768-60999) unreserved"), "{err}");
        let shrink = Plan::new(&request(State::Absent, false, "32768", 1024), &kernel("32768-60000"), None).unwrap();
        assert_eq!(shrink.ephemeral_free(), 1000);
    }

    #[test]
    fn file_plan_follows_the_result() {
        let plan =
            Plan::new(&request(State::Present, false, "80", 0), &kernel(""), Some(Some("vm.x = 1\n".into()))).unwrap();
        let file = plan.file.unwrap();
        assert_eq!(file.after, "vm.x = 1\nnet.ipv4.ip_local_reserved_ports = 80\n");
        assert!(file.changes());
    }
}
