//! Which inventory the server holds, so the full inventory travels only when it changed.
//!
//! The agent remembers the digest of the last inventory the server *accepted* (a 2xx answer
//! to a check-in that carried it) in `inventory.ack`. When the server answers
//! `send_inventory: true` (its stored digest differs, e.g. after a restore), the memory is
//! dropped, so the next check-in — done right away — carries the inventory again.

use crate::error::Result;
use crate::state::{self, StateDir};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InventoryAck {
    acked: Option<String>,
}

/// What to do after a successful check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more in this cycle.
    Done,
    /// The server wants the inventory and did not get it: check in again now.
    SendInventoryNow,
}

impl InventoryAck {
    pub fn new(acked: Option<String>) -> InventoryAck {
        InventoryAck { acked }
    }

    pub fn load(state: &StateDir) -> InventoryAck {
        let acked =
            std::fs::read_to_string(state.ack_path()).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        InventoryAck { acked }
    }

    pub fn save(&self, state: &StateDir) -> Result<()> {
        match &self.acked {
            Some(digest) => {
                state::write_atomic(&state.ack_path(), format!("{digest}\n").as_bytes(), state::PUBLIC_MODE)
            }
            None => state::remove_if_exists(&state.ack_path()),
        }
    }

    pub fn acked(&self) -> Option<&str> {
        self.acked.as_deref()
    }

    /// The full inventory goes out unless the server already holds exactly this one.
    pub fn should_send(&self, digest: &str) -> bool {
        self.acked.as_deref() != Some(digest)
    }

    /// Records the server's answer. `sent`: digest of the inventory this check-in carried.
    pub fn on_response(&mut self, sent: Option<&str>, send_inventory: bool) -> Next {
        if let Some(digest) = sent {
            self.acked = Some(digest.to_string());
        }
        if send_inventory {
            self.acked = None;
            if sent.is_none() {
                return Next::SendInventoryNow;
            }
        }
        Next::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_only_changed_inventories() {
        let mut ack = InventoryAck::default();
        assert!(ack.should_send("d1"), "nothing acked yet");
        assert_eq!(ack.on_response(Some("d1"), false), Next::Done);
        assert!(!ack.should_send("d1"));
        assert!(ack.should_send("d2"), "inventory changed");
    }

    #[test]
    fn server_request_forces_an_immediate_resend_once() {
        let mut ack = InventoryAck::new(Some("d1".into()));
        assert!(!ack.should_send("d1"));
        // Server lost it: resend now.
        assert_eq!(ack.on_response(None, true), Next::SendInventoryNow);
        assert!(ack.should_send("d1"));
        // The resend itself was answered with send_inventory again: no hot loop, but keep
        // sending on later check-ins.
        assert_eq!(ack.on_response(Some("d1"), true), Next::Done);
        assert!(ack.should_send("d1"));
        assert_eq!(ack.on_response(Some("d1"), false), Next::Done);
        assert!(!ack.should_send("d1"));
    }

    #[test]
    fn failed_check_in_changes_nothing_and_state_persists() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let mut ack = InventoryAck::load(&state);
        assert_eq!(ack.acked(), None);
        ack.on_response(Some("abc"), false);
        ack.save(&state).unwrap();
        assert_eq!(InventoryAck::load(&state).acked(), Some("abc"));
        ack.on_response(None, true);
        ack.save(&state).unwrap();
        assert_eq!(InventoryAck::load(&state), InventoryAck::default());
    }
}
