//! One module per kind of store: its owned reply types, the updates collectors send, its query
//! messages, the backend trait a core store implements to run behind the actor, and the typed
//! methods of its handle. Writable stores (`ip_reputation`) have read and write requests and
//! typed owner and reader handles instead.

pub mod container;
pub mod dns;
pub mod ip_reputation;
pub mod process;
pub mod symbols;
pub mod syscall;
pub mod system;
