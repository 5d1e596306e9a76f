//! In-process wake-ups for agents waiting in a long poll.
//!
//! A waiting poll subscribes to its host id; whoever dispatches a job to that host (the
//! scheduler of this process, or the watcher that notices dispatches made by other replicas)
//! pokes it. Only hosts with a poll open have an entry, so 10,000 idle agents cost one small
//! map entry each and no database work. Closing the hub wakes every poll (server shutdown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Hub {
    waiters: Mutex<HashMap<String, Weak<Notify>>>,
    closed: AtomicBool,
    closing: Notify,
}

/// A subscription; dropping it removes the entry when it was the last one for the host.
pub struct Subscription<'a> {
    hub: &'a Hub,
    host_id: String,
    pub notify: Arc<Notify>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.hub.waiters.lock() {
            // Our Arc is still alive here: 1 means nobody else holds this host's Notify.
            if Arc::strong_count(&self.notify) <= 1 {
                map.remove(&self.host_id);
            }
        }
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    pub fn subscribe(&self, host_id: &str) -> Subscription<'_> {
        let notify = match self.waiters.lock() {
            Ok(mut map) => match map.get(host_id).and_then(Weak::upgrade) {
                Some(n) => n,
                None => {
                    let n = Arc::new(Notify::new());
                    map.insert(host_id.to_string(), Arc::downgrade(&n));
                    n
                }
            },
            // A poisoned map only loses wake-ups; the poll still ends at its deadline.
            Err(_) => Arc::new(Notify::new()),
        };
        Subscription { hub: self, host_id: host_id.to_string(), notify }
    }

    /// Wakes the polls waiting for `host_id` (no-op when none is).
    pub fn poke(&self, host_id: &str) {
        let notify = self.waiters.lock().ok().and_then(|map| map.get(host_id).and_then(Weak::upgrade));
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Number of hosts with a poll open (diagnostics, tests).
    pub fn waiting(&self) -> usize {
        self.waiters.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// Wakes every poll for good (shutdown): they answer at once from then on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Resolves once [`Hub::close`] has been called.
    pub async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closed() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn poke_wakes_only_that_host_and_entries_go_away() {
        let hub = Hub::new();
        let a = hub.subscribe("a");
        let b = hub.subscribe("b");
        assert_eq!(hub.waiting(), 2);
        {
            let wait_a = a.notify.notified();
            let wait_b = b.notify.notified();
            tokio::pin!(wait_a, wait_b);
            wait_a.as_mut().enable();
            wait_b.as_mut().enable();
            hub.poke("a");
            tokio::time::timeout(Duration::from_secs(1), wait_a).await.unwrap();
            assert!(tokio::time::timeout(Duration::from_millis(50), wait_b).await.is_err());
        }
        drop(a);
        assert_eq!(hub.waiting(), 1);
        drop(b);
        assert_eq!(hub.waiting(), 0);
        hub.poke("nobody");
        hub.close();
        tokio::time::timeout(Duration::from_secs(1), hub.closed()).await.unwrap();
    }
}
