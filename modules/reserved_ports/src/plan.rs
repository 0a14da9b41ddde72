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

/// A change that takes ports from the ephemeral range and leaves fewer of
/// them unreserved than `min_free_ephemeral`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to reserve {taken}: this change takes {} of the {total} ports of the ephemeral range {ephemeral} \
     (net.ipv4.ip_local_port_range) and would leave {free} of them unreserved, fewer than min_free_ephemeral={minimum}; \
     outgoing connections would start failing with EADDRNOTAVAIL. Reserve ports outside the range, widen the range, \
     or lower min_free_ephemeral",
    taken.len()
)]
pub struct StarvationError {
    /// The ports of the ephemeral range that this change would reserve.
    pub taken: PortSet,
    /// Unreserved ports of the range afterwards.
    pub free: u32,
    /// Ports in the range.
    pub total: u32,
    pub ephemeral: PortRange,
    pub minimum: u32,
}

impl Plan {
    /// The plan for `request` from what the kernel and the file hold.
    /// `resumed`: the value an interrupted run was writing (see
    /// [`crate::pending`]), which the change starts from instead of the
    /// kernel's part of it.
    pub fn new(
        request: &Request,
        kernel: &KernelState,
        file_before: Option<Option<String>>,
        resumed: Option<&PortSet>,
    ) -> Result<Plan, StarvationError> {
        let before = kernel.reserved.clone();
        let base = resumed.unwrap_or(&before);
        let after = match (request.state, request.exclusive) {
            (State::Present, false) => base.union(&request.ports),
            (State::Present, true) => request.ports.clone(),
            (State::Absent, _) => base.difference(&request.ports),
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
        // Only what this change takes from the range can be refused: ports
        // outside it, or taken out of the reservation, starve nobody, however
        // short of free ports the range already is.
        let taken = plan.ephemeral_taken();
        if !taken.is_empty() && plan.ephemeral_free() < request.min_free_ephemeral {
            return Err(StarvationError {
                taken,
                free: plan.ephemeral_free(),
                total: plan.ephemeral.len(),
                ephemeral: plan.ephemeral,
                minimum: request.min_free_ephemeral,
            });
        }
        Ok(plan)
    }

    /// The ports of the ephemeral range that this change adds to the reservation.
    pub fn ephemeral_taken(&self) -> PortSet {
        self.added().intersection(&PortSet::from(self.ephemeral))
    }

    /// A warning when the range is short of free ports already and this
    /// change takes none of them (so it is not refused).
    pub fn ephemeral_warning(&self, minimum: u32) -> Option<String> {
        (self.ephemeral_free() < minimum).then(|| {
            format!(
                "the ephemeral range {} (net.ipv4.ip_local_port_range) has {} unreserved ports, fewer than \
                 min_free_ephemeral={minimum}, and had before this change; this change takes none of them",
                self.ephemeral,
                self.ephemeral_free()
            )
        })
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
        kernel_with_range(reserved, 32768, 60999)
    }

    fn kernel_with_range(reserved: &str, low: u16, high: u16) -> KernelState {
        KernelState { reserved: reserved.parse().unwrap(), ephemeral: PortRange::new(low, high).unwrap() }
    }

    #[test]
    fn present_merges_absent_splits_exclusive_replaces() {
        let merged = Plan::new(&request(State::Present, false, "8080-8082", 0), &kernel("9000"), None, None).unwrap();
        assert_eq!(merged.after.to_string(), "8080-8082,9000");
        assert_eq!(merged.added().to_string(), "8080-8082");
        let split = Plan::new(&request(State::Absent, false, "8081", 0), &kernel("8080-8082"), None, None).unwrap();
        assert_eq!(split.after.to_string(), "8080,8082");
        assert_eq!(split.removed().to_string(), "8081");
        let exact = Plan::new(&request(State::Present, true, "80", 0), &kernel("9000"), None, None).unwrap();
        assert_eq!(exact.after.to_string(), "80");
    }

    #[test]
    fn same_ports_in_another_form_change_nothing() {
        let plan =
            Plan::new(&request(State::Present, false, "8081,8080,8082", 0), &kernel("8080-8082"), None, None).unwrap();
        assert!(!plan.changes());
    }

    #[test]
    fn starving_the_ephemeral_range_is_refused_but_removal_is_not() {
        let err = Plan::new(&request(State::Present, false, "32768-60000", 1024), &kernel(""), None, None).unwrap_err();
        assert_eq!((err.free, err.taken.len()), (999, 27233));
        assert!(
            err.to_string().starts_with(
                "refusing to reserve 32768-60000: this change takes 27233 of the 28232 ports of the ephemeral \
                 range 32768-60999 (net.ipv4.ip_local_port_range) and would leave 999 of them unreserved, fewer \
                 than min_free_ephemeral=1024"
            ),
            "{err}"
        );
        let shrink =
            Plan::new(&request(State::Absent, false, "32768", 1024), &kernel("32768-60000"), None, None).unwrap();
        assert_eq!(shrink.ephemeral_free(), 1000);
    }

    #[test]
    fn only_what_the_change_takes_from_a_short_range_is_refused() {
        // 501 ports, fewer than the minimum before anything happens.
        let short = |reserved| kernel_with_range(reserved, 40000, 40500);
        let outside = Plan::new(&request(State::Present, false, "80", 1024), &short(""), None, None).unwrap();
        assert_eq!(outside.ephemeral_free(), 501);
        let warning = outside.ephemeral_warning(1024).unwrap();
        assert!(warning.contains("40000-40500 (net.ipv4.ip_local_port_range) has 501 unreserved ports"), "{warning}");
        assert!(warning.ends_with("this change takes none of them"), "{warning}");

        let inside = Plan::new(&request(State::Present, false, "80,40100", 1024), &short(""), None, None).unwrap_err();
        assert_eq!(inside.taken.to_string(), "40100");
        assert!(inside.to_string().contains("this change takes 1 of the 501 ports"), "{inside}");
        assert!(inside.to_string().contains("would leave 500 of them unreserved"), "{inside}");

        // Exclusive: dropping ports of the range and adding others outside it takes nothing.
        let swap = Plan::new(&request(State::Present, true, "80", 1024), &short("40100-40200"), None, None).unwrap();
        assert_eq!(swap.ephemeral_free(), 501);
        // Exclusive that adds one port of the range while freeing many is still taking it.
        let trade =
            Plan::new(&request(State::Present, true, "40300", 1024), &short("40100-40200"), None, None).unwrap_err();
        assert_eq!(trade.taken.to_string(), "40300");
        // Taking ports out is never refused, and an already reserved port is not taken again.
        Plan::new(&request(State::Absent, false, "40100", 1024), &short("40100-40200"), None, None).unwrap();
        Plan::new(&request(State::Present, false, "40150", 1024), &short("40100-40200"), None, None).unwrap();
        // With room enough there is no warning.
        assert_eq!(
            Plan::new(&request(State::Present, false, "80", 100), &short(""), None, None)
                .unwrap()
                .ephemeral_warning(100),
            None
        );
    }

    #[test]
    fn an_interrupted_write_is_the_starting_point() {
        // The kernel holds part of what a killed run was writing (100,200-300).
        let resumed: PortSet = "100,200-300".parse().unwrap();
        let plan =
            Plan::new(&request(State::Present, false, "80", 0), &kernel("100,200-250"), None, Some(&resumed)).unwrap();
        assert_eq!(plan.after.to_string(), "80,100,200-300");
        assert_eq!(plan.added().to_string(), "80,251-300", "what the kernel gains now");
        let absent =
            Plan::new(&request(State::Absent, false, "100", 0), &kernel("100,200-250"), None, Some(&resumed)).unwrap();
        assert_eq!(absent.after.to_string(), "200-300");
    }

    #[test]
    fn file_plan_follows_the_result() {
        let plan =
            Plan::new(&request(State::Present, false, "80", 0), &kernel(""), Some(Some("vm.x = 1\n".into())), None)
                .unwrap();
        let file = plan.file.unwrap();
        assert_eq!(file.after, "vm.x = 1\nnet.ipv4.ip_local_reserved_ports = 80\n");
        assert!(file.changes());
    }
}
