//! The core stores behind the actors' backend traits: each adapter converts the core's borrowed
//! views into the owned reply types inside the actor, so nothing borrowed crosses a message.

pub mod container;
pub mod dns;
pub mod ip_reputation;
pub mod process;
pub mod symbols;
pub mod syscall;
pub mod system;
