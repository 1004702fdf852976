//! [`ReservedVec`]: a `Vec` whose reserved capacity is part of its value; [`copy_slab`]: in-place
//! copies of slabs.
//!
//! Stores keep free lists and scratch buffers as vectors reserved for their worst case at
//! construction, so that pushes never allocate. A derived `Clone` of a `Vec` reserves only its
//! length, so a cloned store would allocate on its first push past that. The actors keep two
//! copies of every store (the published read view), made by cloning: this wrapper's `Clone`
//! reserves the same capacity, keeping the copy allocation-free after construction.

use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};

/// A vector that keeps its capacity when cloned. Derefs to the `Vec`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ReservedVec<T>(Vec<T>);

impl<T> ReservedVec<T> {
    /// An empty vector with room for `capacity` items.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        ReservedVec(Vec::with_capacity(capacity))
    }
}

impl<T: Clone> ReservedVec<T> {
    /// Makes this vector equal to `other` without allocating; `false` (and unchanged) if
    /// `other` holds more than this one's capacity.
    pub(crate) fn copy_from(&mut self, other: &Self) -> bool {
        if other.0.len() > self.0.capacity() {
            return false;
        }
        self.0.clear();
        self.0.extend_from_slice(&other.0);
        true
    }
}

/// Makes `dst` equal to `src` in place; `false` (and unchanged) if their lengths differ. How
/// the stores' `copy_from` copy their slabs without allocating.
pub(crate) fn copy_slab<T: Clone>(dst: &mut [T], src: &[T]) -> bool {
    if dst.len() != src.len() {
        return false;
    }
    dst.clone_from_slice(src);
    true
}

impl<T> From<Vec<T>> for ReservedVec<T> {
    fn from(v: Vec<T>) -> Self {
        ReservedVec(v)
    }
}

impl<T: Clone> Clone for ReservedVec<T> {
    fn clone(&self) -> Self {
        let mut v = Vec::with_capacity(self.0.capacity());
        v.extend_from_slice(&self.0);
        ReservedVec(v)
    }
}

impl<'a, T> IntoIterator for &'a ReservedVec<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> Deref for ReservedVec<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> DerefMut for ReservedVec<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_keeps_the_capacity() {
        let mut v = ReservedVec::with_capacity(64);
        v.push(1u32);
        let c = v.clone();
        assert_eq!(c.capacity(), v.capacity());
        assert_eq!(&c[..], &[1]);
    }
}
