//! Core stores that need a daemon-side adapter to run behind the actors.

pub mod container;
