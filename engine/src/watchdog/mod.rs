//! Keeping the daemon alive on a device nobody can reach: the daemon's side (`health`: a
//! heartbeat sent only after a real self-check, over the sd_notify protocol in `notify`) and
//! the supervisor's (`supervise`: restarts with back-off that never gives up, a durable
//! restart history, and `hardware`: the board's /dev/watchdog fed while all is well).

pub mod hardware;
pub mod health;
pub mod history;
pub mod notify;
pub mod pid1;
pub mod supervise;
