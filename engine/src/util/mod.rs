//! Small shared helpers: ids, time, external commands.

pub mod command;
pub mod id;
pub mod time;
