//! The one error type every store answers with: which store, which operation, what kind.
//!
//! Mirrors the reference's `StoreError{StoreName, Operation, Err}` with sentinel kinds. Callers
//! test the kind with [`StoreError::is`], the way Go code uses `errors.Is(err, ErrNotFound)`.
//! `NotFound` means the same thing in every store (the reference is inconsistent there).

use core::fmt;

/// What went wrong, independent of the store. Compare with [`StoreError::is`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ErrorKind {
    /// The entity is not in the store. Common and normal: detectors skip gracefully.
    NotFound,
    /// The store is not registered, stopped, crashed or restarting.
    StoreUnhealthy,
    /// The store does not implement this operation.
    NotImplemented,
    /// The request itself is malformed (bad name, ambiguous prefix, severity out of range…).
    InvalidArgument,
}

impl ErrorKind {
    /// The reference's sentinel message for this kind.
    pub const fn message(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "entity not found",
            ErrorKind::StoreUnhealthy => "datastore is unhealthy",
            ErrorKind::NotImplemented => "operation not implemented",
            ErrorKind::InvalidArgument => "invalid argument",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// An error from a store operation, carrying its context.
///
/// `store` and `operation` are static names (`"process"`, `"get_process"`) so building an error
/// never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreError {
    /// Which store answered (see [`store_names`]).
    pub store: &'static str,
    /// Which operation failed, snake_case (`"get_process"`).
    pub operation: &'static str,
    /// What kind of failure.
    pub kind: ErrorKind,
}

impl StoreError {
    /// An error of `kind` from `operation` on `store`.
    pub const fn new(store: &'static str, operation: &'static str, kind: ErrorKind) -> Self {
        StoreError {
            store,
            operation,
            kind,
        }
    }

    /// `NotFound` from `operation` on `store`.
    pub const fn not_found(store: &'static str, operation: &'static str) -> Self {
        Self::new(store, operation, ErrorKind::NotFound)
    }

    /// `InvalidArgument` from `operation` on `store`.
    pub const fn invalid_argument(store: &'static str, operation: &'static str) -> Self {
        Self::new(store, operation, ErrorKind::InvalidArgument)
    }

    /// `StoreUnhealthy` from `operation` on `store`.
    pub const fn unhealthy(store: &'static str, operation: &'static str) -> Self {
        Self::new(store, operation, ErrorKind::StoreUnhealthy)
    }

    /// Whether this error is of `kind`: the `errors.Is` of the reference.
    pub const fn is(&self, kind: ErrorKind) -> bool {
        self.kind as u8 == kind as u8
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} store: {}: {}", self.store, self.operation, self.kind)
    }
}

impl core::error::Error for StoreError {}

/// The names core stores register under, as the reference's `List()` prints them.
pub mod store_names {
    /// Process tree.
    pub const PROCESS: &str = "process";
    /// Containers and pods.
    pub const CONTAINER: &str = "container";
    /// Kernel symbols.
    pub const SYMBOL: &str = "symbol";
    /// Observed DNS answers.
    pub const DNS: &str = "dns";
    /// Immutable system facts.
    pub const SYSTEM: &str = "system";
    /// Syscall numbers and names.
    pub const SYSCALL: &str = "syscall";
    /// The reference writable store.
    pub const IP_REPUTATION: &str = "ip_reputation";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_matches_only_its_kind() {
        let e = StoreError::not_found(store_names::PROCESS, "get_process");
        assert!(e.is(ErrorKind::NotFound));
        assert!(!e.is(ErrorKind::StoreUnhealthy));
        assert!(!e.is(ErrorKind::InvalidArgument));
        assert!(!e.is(ErrorKind::NotImplemented));
    }

    #[cfg(feature = "std")]
    #[test]
    fn display_names_store_operation_and_kind() {
        use std::string::ToString;
        let e = StoreError::unhealthy(store_names::DNS, "get_dns_response");
        assert_eq!(
            e.to_string(),
            "dns store: get_dns_response: datastore is unhealthy"
        );
    }
}
