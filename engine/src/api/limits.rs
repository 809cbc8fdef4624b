//! What keeps a small device serving when remote clients are hostile or careless. Local
//! (unix socket) clients are not limited: the socket's mode and group guard it.
//!
//! - Connections still in their TLS handshake are capped; when the cap is reached the oldest
//!   waiting one is dropped, so a flood of silent connections cannot lock out a new client.
//!   Each also has its handshake timeout (`listen.rs`).
//! - Connections being served, hijacked streams (attach, exec, logs -f) included, are capped.
//! - Each client (certificate subject and address) has a request rate: a token bucket.
//! - Headers are bounded in size and must arrive within a timeout (slow-loris clients).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

pub const MAX_PENDING: usize = 512;
pub const MAX_ESTABLISHED: usize = 128;
/// Request line and headers together (hyper answers 431 beyond).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
pub const REMOTE_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests a second per client, and the burst allowed above it.
const RATE: f64 = 50.0;
const BURST: f64 = 100.0;
/// Buckets of clients idle this long are forgotten (memory stays bounded).
const BUCKET_IDLE: Duration = Duration::from_secs(300);

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Limits {
    pending: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
    next: AtomicU64,
    established: Arc<Semaphore>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A connection waiting for its handshake; dropping it leaves the queue.
pub struct Pending<'a> {
    limits: &'a Limits,
    id: u64,
    /// Fires when a newer connection needed the place.
    pub evicted: oneshot::Receiver<()>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.limits.pending.lock().unwrap().retain(|(id, _)| *id != self.id);
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pending: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(0),
            established: Arc::new(Semaphore::new(MAX_ESTABLISHED)),
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl Limits {
    /// Registers a connection that has not finished its handshake, evicting the oldest
    /// waiting one when there are too many.
    pub fn pending(&self) -> Pending<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, evicted) = oneshot::channel();
        let mut q = self.pending.lock().unwrap();
        if q.len() >= MAX_PENDING {
            if let Some((_, oldest)) = q.pop_front() {
                let _ = oldest.send(());
            }
        }
        q.push_back((id, tx));
        Pending { limits: self, id, evicted }
    }

    /// A place among the connections being served, held for the connection's life.
    pub fn establish(&self) -> Option<OwnedSemaphorePermit> {
        self.established.clone().try_acquire_owned().ok()
    }

    /// May `client` make one more request now?
    pub fn allow(&self, client: &str) -> bool {
        let now = Instant::now();
        let mut b = self.buckets.lock().unwrap();
        if b.len() > 1024 {
            b.retain(|_, v| now.duration_since(v.at) < BUCKET_IDLE);
        }
        let bucket = b.entry(client.to_string()).or_insert(Bucket { tokens: BURST, at: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * RATE).min(BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_waiting_connection_makes_room() {
        let l = Limits::default();
        let mut first = l.pending();
        let mut rest: Vec<_> = (1..MAX_PENDING).map(|_| l.pending()).collect();
        assert!(first.evicted.try_recv().is_err());
        let _newest = l.pending();
        assert!(first.evicted.try_recv().is_ok(), "the oldest was not evicted");
        assert!(rest[0].evicted.try_recv().is_err());
        drop(rest);
        assert!(l.pending.lock().unwrap().len() <= 2);
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let l = Limits::default();
        let granted = (0..(BURST as usize + 20)).filter(|_| l.allow("a")).count();
        assert!(granted >= BURST as usize && granted < BURST as usize + 20, "{granted}");
        assert!(l.allow("b"), "one client's flood limits another");
    }
}
