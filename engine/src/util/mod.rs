//! Small shared helpers: ids, time, external commands.

pub mod command;
pub mod failpoint;
pub mod id;
pub mod pty;
pub mod resident;
pub mod scope;
pub mod time;
