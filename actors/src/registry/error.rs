//! Why a registration was refused.

use watchpost_core::{ErrorKind, StoreError};

use crate::names::NameError;
use crate::supervision::BuildError;

/// A registration the registry refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The name is empty or has surrounding whitespace.
    #[error("invalid store name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// A store is already registered under this name.
    #[error("a store named {0:?} is already registered")]
    Duplicate(String),
    /// The name belongs to a core store and cannot be taken by a writable store.
    #[error("{0:?} is the name of a core store")]
    ReservedName(String),
    /// The store's factory failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The store's actor could not be spawned.
    #[error("spawning the actor of store {name:?} failed: {reason}")]
    Spawn {
        /// The store.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The registry is not running (shut down, or did not answer in time).
    #[error("the registry is not running")]
    RegistryDown,
}

impl RegistrationError {
    /// The reference's error kind for this refusal: `InvalidArgument` for a bad, taken or
    /// reserved name, `StoreUnhealthy` otherwise.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistrationError::InvalidName { .. }
            | RegistrationError::Duplicate(_)
            | RegistrationError::ReservedName(_) => ErrorKind::InvalidArgument,
            RegistrationError::Build(_)
            | RegistrationError::Spawn { .. }
            | RegistrationError::RegistryDown => ErrorKind::StoreUnhealthy,
        }
    }

    /// Whether this refusal is of `kind`.
    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind() == kind
    }
}

impl From<RegistrationError> for StoreError {
    fn from(e: RegistrationError) -> StoreError {
        StoreError::new(super::REGISTRY, "register", e.kind())
    }
}
