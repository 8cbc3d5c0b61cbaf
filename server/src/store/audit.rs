//! The audit log is append-only and hash-chained: each event stores the hash of the event before
//! it and a sha256 over its own content and that link, and the one-row head names the last event.
//! [`verify`] walks the chain and names the first event that was edited, removed or moved.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::entities::audit_event;

/// The link of the first event.
pub use migrations::AUDIT_GENESIS as GENESIS;

/// The hash of an event: sha256 over its fields and the previous event's hash, as a JSON array
/// so no field can bleed into the next.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    at: &DateTime<Utc>,
    actor: &str,
    tenant: Option<&str>,
    action: &str,
    outcome: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([
        at.to_rfc3339_opts(SecondsFormat::Micros, true),
        actor,
        tenant,
        action,
        outcome,
        detail,
        prev_hash
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn hash_of(e: &audit_event::Model, prev_hash: &str) -> String {
    event_hash(&e.at, &e.actor, e.tenant_id.as_deref(), &e.action, &e.outcome, &e.detail, prev_hash)
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub events: u64,
    /// Hash of the last event, for anchoring outside the database.
    pub head: String,
    /// The first problem, naming the event; `None` when the chain is intact.
    pub problem: Option<String>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Checks the chain of `events` (all of them, in id order) against the head.
pub fn verify(events: &[audit_event::Model], head_id: i64, head_hash: &str) -> Verification {
    let by_hash: std::collections::HashMap<&str, i64> =
        events.iter().filter_map(|e| e.hash.as_deref().map(|h| (h, e.id))).collect();
    let mut expected_prev = GENESIS.to_owned();
    let mut prev_id = 0i64;
    let fail = |problem: String| Verification {
        events: events.len() as u64,
        head: head_hash.to_owned(),
        problem: Some(problem),
    };
    for e in events {
        let (Some(prev), Some(hash)) = (e.prev_hash.as_deref(), e.hash.as_deref()) else {
            return fail(format!("event {} is not sealed into the chain (written outside lexgate)", e.id));
        };
        if hash_of(e, prev) != hash {
            return fail(format!("event {} was edited: its content no longer matches its hash", e.id));
        }
        if prev != expected_prev {
            return fail(match by_hash.get(prev) {
                Some(&from) if from > e.id => {
                    format!("event {} is out of order: it follows event {from}, which now comes after it", e.id)
                }
                Some(&from) => format!("event {} follows event {from}, but event {prev_id} comes before it", e.id),
                None if prev_id == 0 => format!("the events before event {} were removed", e.id),
                None => format!("events between {prev_id} and {} were removed", e.id),
            });
        }
        expected_prev = hash.to_owned();
        prev_id = e.id;
    }
    if prev_id != head_id || expected_prev != head_hash {
        return fail(if prev_id < head_id {
            format!("events after {prev_id} were removed (the chain's head is event {head_id})")
        } else {
            format!("the chain's head names event {head_id}, but the log ends at event {prev_id}")
        });
    }
    Verification { events: events.len() as u64, head: expected_prev, problem: None }
}
