//! Which network namespaces the daemon trusts for DNS answers: the host's and those of the
//! containers the `/proc` scans find (each container's oldest process's namespace — the one its
//! runtime made). The scans write the container set here after every pass; the eBPF collector's
//! kernel map follows it (answers recorded in a trusted namespace are flagged so, and its queries
//! get their own pending-query map). Until the collector is attached the set is only kept, and
//! it is written into the kernel map as soon as the collector hands over its handle.

use std::collections::BTreeSet;
use std::sync::Mutex;

use watchpost_ebpf::TrustedNamespaces;

/// The trusted-namespace set shared by the `/proc` collector and the kernel feed.
#[derive(Debug, Default)]
pub struct NetnsTrust {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    containers: BTreeSet<u32>,
    kernel: Option<TrustedNamespaces>,
}

impl NetnsTrust {
    /// Nothing trusted yet besides the host (which the kernel side always trusts).
    pub fn new() -> Self {
        Self::default()
    }

    /// The kernel's map, attached now: it gets the current container set.
    pub fn attach_kernel(&self, kernel: TrustedNamespaces) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = kernel.replace(&inner.containers) {
            tracing::warn!("trusted network namespaces not written to the kernel: {e}");
        }
        inner.kernel = Some(kernel);
    }

    /// The containers' namespaces are now exactly `containers`.
    pub fn set_containers(&self, containers: &BTreeSet<u32>) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if &inner.containers == containers {
            return;
        }
        inner.containers = containers.clone();
        if let Some(kernel) = &inner.kernel
            && let Err(e) = kernel.replace(containers)
        {
            tracing::warn!("trusted network namespaces not written to the kernel: {e}");
        }
    }

    /// The trusted namespaces of containers now.
    pub fn containers(&self) -> BTreeSet<u32> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .containers
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_set_until_the_kernel_attaches() {
        let trust = NetnsTrust::new();
        let set: BTreeSet<u32> = [7, 9].into();
        trust.set_containers(&set);
        assert_eq!(trust.containers(), set);
        trust.set_containers(&BTreeSet::new());
        assert!(trust.containers().is_empty());
    }
}
