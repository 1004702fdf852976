//! Store names as `&'static str`, as [`watchpost_core::StoreError`] needs them.
//!
//! Core stores use the constants in `watchpost_core::error::store_names`. A custom store's name is
//! leaked once, when it first registers, and reused for every later registration of the same name,
//! so the leak is bounded by the number of distinct names ever registered (never by lookups).

use std::collections::BTreeSet;
use std::sync::Mutex;

static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The `'static` copy of `name`, leaking it the first time it is seen.
pub(crate) fn intern(name: &str) -> &'static str {
    let mut set = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(existing) = set.get(name) {
        return existing;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Why a store name is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("store name is empty")]
    Empty,
    /// The name starts or ends with whitespace.
    #[error("store name has leading or trailing whitespace")]
    SurroundingWhitespace,
}

/// Checks the reference's rules: non-empty, no surrounding whitespace.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.trim() != name {
        return Err(NameError::SurroundingWhitespace);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_returns_the_same_pointer_for_the_same_name() {
        let a = intern("custom_a");
        let b = intern(&String::from("custom_a"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "custom_a");
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate(""), Err(NameError::Empty));
        assert_eq!(validate(" x"), Err(NameError::SurroundingWhitespace));
        assert_eq!(validate("x\t"), Err(NameError::SurroundingWhitespace));
        assert_eq!(validate("ip_reputation"), Ok(()));
        assert_eq!(validate("with inner space"), Ok(()));
    }
}
