//! Writable stores: stores that detectors register and own (the reference's
//! `RegisterWritableStore`), such as the IP reputation store.
//!
//! Ownership is enforced by types: registration returns the only [`WriteHandle`]; everybody else
//! gets a [`ReadHandle`] through `get_custom`, and a `ReadHandle` has no write method. The owner
//! may also bulk-feed writes through the store's bounded intake ([`WriteHandle::intake`]).

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use ractor::RpcReplyPort;
use watchpost_core::{DataStoreMetrics, EpochNanos, HealthInfo, StoreError};

use crate::handle::StoreHandle;
use crate::intake::IntakeSender;
use crate::protocol::{Protocol, StoreBackend, answer};

/// A store detectors can register, own and write; everybody else reads it.
pub trait WritableStore: Send + 'static {
    /// A read request.
    type Read: Send + 'static;
    /// The answer to a read request.
    type ReadReply: Send + 'static;
    /// A write request.
    type Write: Send + 'static;
    /// The answer to a write request.
    type WriteReply: Send + 'static;
    /// What the store holds, for `metadata(name)`.
    const DESCRIPTION: &'static str;

    /// Answers a read.
    fn read(&mut self, request: Self::Read, now: EpochNanos) -> Self::ReadReply;
    /// Performs a write.
    fn write(&mut self, request: Self::Write, now: EpochNanos) -> Self::WriteReply;
    /// Whether a write's answer means it was accepted (for intake counters).
    fn accepted(reply: &Self::WriteReply) -> bool;
    /// Health as the store sees itself.
    fn health(&self, now: EpochNanos) -> HealthInfo;
    /// Metrics as the store counted them.
    fn metrics(&self) -> DataStoreMetrics;
}

/// The protocol of writable store `S`: reads and writes as queries, writes through the intake.
pub struct WritableProtocol<S>(PhantomData<fn() -> S>);

impl<S: WritableStore> Protocol for WritableProtocol<S> {
    type Query = CustomQuery<S>;
    type Update = S::Write;
}

/// A query to writable store `S`.
pub enum CustomQuery<S: WritableStore> {
    /// A read.
    Read(S::Read, RpcReplyPort<S::ReadReply>),
    /// A write (only a [`WriteHandle`] sends these).
    Write(S::Write, RpcReplyPort<S::WriteReply>),
}

impl<S: WritableStore> StoreBackend<WritableProtocol<S>> for S {
    fn handle_query(&mut self, query: CustomQuery<S>, now: EpochNanos) {
        match query {
            CustomQuery::Read(request, reply) => answer(reply, self.read(request, now)),
            CustomQuery::Write(request, reply) => answer(reply, self.write(request, now)),
        }
    }

    fn apply_update(&mut self, update: S::Write, now: EpochNanos) -> bool {
        let reply = self.write(update, now);
        S::accepted(&reply)
    }

    fn health(&self, now: EpochNanos) -> HealthInfo {
        WritableStore::health(self, now)
    }

    fn metrics(&self) -> DataStoreMetrics {
        WritableStore::metrics(self)
    }
}

/// Read-only access to writable store `S`: what `get_custom` hands to everybody but the owner.
pub type ReadHandle<S> = StoreHandle<WritableProtocol<S>>;

impl<S: WritableStore> StoreHandle<WritableProtocol<S>> {
    /// Sends a read request; `operation` names it in errors (`"get_reputation"`).
    pub async fn read_as(
        &self,
        operation: &'static str,
        request: S::Read,
    ) -> Result<S::ReadReply, StoreError> {
        self.call(operation, |reply| CustomQuery::Read(request, reply))
            .await
    }

    /// Sends a read request.
    pub async fn read(&self, request: S::Read) -> Result<S::ReadReply, StoreError> {
        self.read_as("read", request).await
    }
}

/// The owner's handle of writable store `S`: reads (it derefs to a [`ReadHandle`]) and writes.
/// Not `Clone`: the registrant holds the only one (share it behind an `Arc` if needed).
pub struct WriteHandle<S: WritableStore> {
    read: ReadHandle<S>,
    intake: IntakeSender<S::Write>,
}

impl<S: WritableStore> std::fmt::Debug for WriteHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHandle")
            .field("store", &self.read.name())
            .finish()
    }
}

impl<S: WritableStore> WriteHandle<S> {
    pub(crate) fn new(
        slot: Arc<crate::slot::StoreSlot<WritableProtocol<S>>>,
        intake: IntakeSender<S::Write>,
    ) -> Self {
        WriteHandle {
            read: StoreHandle::new(slot),
            intake,
        }
    }

    /// Performs a write and waits for its answer; `operation` names it in errors.
    pub async fn write_as(
        &self,
        operation: &'static str,
        request: S::Write,
    ) -> Result<S::WriteReply, StoreError> {
        self.read
            .call(operation, |reply| CustomQuery::Write(request, reply))
            .await
    }

    /// Performs a write and waits for its answer.
    pub async fn write(&self, request: S::Write) -> Result<S::WriteReply, StoreError> {
        self.write_as("write", request).await
    }

    /// The same handle with another call timeout (for its reads and writes).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.read = self.read.with_timeout(timeout);
        self
    }

    /// A read-only handle to give to others.
    pub fn reader(&self) -> ReadHandle<S> {
        self.read.clone()
    }

    /// The bounded intake for bulk writes (feeds): fire-and-forget batches.
    pub fn intake(&self) -> &IntakeSender<S::Write> {
        &self.intake
    }
}

impl<S: WritableStore> Deref for WriteHandle<S> {
    type Target = ReadHandle<S>;
    fn deref(&self) -> &ReadHandle<S> {
        &self.read
    }
}
