//! Read-only queries: the table's lookups from `&self`, for readers of a shared copy (the
//! actors' published read view), and the locating steps the counted queries share with them.
//! They answer what the counted queries answer and count nothing: the caller counts by the rule
//! of [`crate::metrics`] (found: hit; `NotFound`: miss; `InvalidArgument`: error; a list: a
//! success).

use super::{
    CONTAINER_ID_MAX_LEN, CONTAINER_NAME_MAX_LEN, ContainerTable, MIN_ID_PREFIX_LEN, STORE,
};
use crate::container::{ContainerFilter, ContainerInfo};
use crate::error::StoreError;
use crate::time::EpochNanos;

impl ContainerTable {
    /// Read-only [`get_container`](ContainerTable::get_container), counted nowhere.
    pub fn find_container(
        &self,
        id_or_prefix: &str,
        now: EpochNanos,
    ) -> Result<&ContainerInfo, StoreError> {
        let slot = self.locate_container(id_or_prefix, now)?;
        self.info_at(slot, "get_container")
    }

    /// Read-only [`get_container_by_name`](ContainerTable::get_container_by_name), counted
    /// nowhere.
    pub fn find_container_by_name(
        &self,
        name: &str,
        now: EpochNanos,
    ) -> Result<&ContainerInfo, StoreError> {
        let slot = self.locate_by_name(name, now)?;
        self.info_at(slot, "get_container_by_name")
    }

    /// Read-only [`list_containers`](ContainerTable::list_containers): live containers passing
    /// `filter`, least recently written first, counted nowhere.
    pub fn containers<'t>(
        &'t self,
        filter: &ContainerFilter<'t>,
    ) -> impl Iterator<Item = &'t ContainerInfo> + 't {
        let filter = *filter;
        let slots = &self.slots;
        self.live
            .iter_least_recent_first()
            .filter_map(move |slot| slots.get(slot as usize).and_then(Option::as_ref))
            .map(|entry| &entry.info)
            .filter(move |info| filter.matches(info))
    }

    fn info_at(&self, slot: Option<u32>, op: &'static str) -> Result<&ContainerInfo, StoreError> {
        slot.and_then(|s| self.entry(s))
            .map(|e| &e.info)
            .ok_or(StoreError::not_found(STORE, op))
    }

    /// The slot a `get_container` query names: `Ok(None)` if none, `InvalidArgument` for a
    /// malformed query, a short prefix or an ambiguous prefix.
    pub(super) fn locate_container(
        &self,
        id_or_prefix: &str,
        now: EpochNanos,
    ) -> Result<Option<u32>, StoreError> {
        const OP: &str = "get_container";
        let q = id_or_prefix;
        let well_formed = !q.is_empty()
            && q.len() <= CONTAINER_ID_MAX_LEN
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !well_formed {
            return Err(StoreError::invalid_argument(STORE, OP));
        }
        match self.visible_slot(q, now) {
            Some(slot) => Ok(Some(slot)),
            None if q.len() < MIN_ID_PREFIX_LEN => Err(StoreError::invalid_argument(STORE, OP)),
            None => self
                .unique_prefix_slot(q, now)
                .map_err(|()| StoreError::invalid_argument(STORE, OP)),
        }
    }

    /// The slot a `get_container_by_name` query names: `Ok(None)` if none, `InvalidArgument` for
    /// an empty or over-long name.
    pub(super) fn locate_by_name(
        &self,
        name: &str,
        now: EpochNanos,
    ) -> Result<Option<u32>, StoreError> {
        if name.is_empty() || name.len() > CONTAINER_NAME_MAX_LEN {
            return Err(StoreError::invalid_argument(STORE, "get_container_by_name"));
        }
        let hash = self.hasher.hash_bytes(name.as_bytes());
        let mut best: Option<(bool, u64, u32)> = None; // (live, written_seq, slot)
        for slot in self.by_name.slots_with_hash(hash) {
            let Some(entry) = self.entry(slot) else {
                continue;
            };
            if entry.info.name.as_str() != name || !self.is_visible(entry, now) {
                continue;
            }
            let key = (entry.removed_at.is_none(), entry.written_seq, slot);
            if best.is_none_or(|b| (key.0, key.1) > (b.0, b.1)) {
                best = Some(key);
            }
        }
        Ok(best.map(|b| b.2))
    }
}
