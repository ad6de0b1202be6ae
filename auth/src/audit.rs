//! The audit trail: one structured log line (target `akidb_audit`) for every admin and DDL
//! call, allowed or denied, and for every denied call; `akidb_auth_requests_total{outcome}`
//! counts every decision. Lines name the key id and role, never the key.

use crate::keys::Role;
use akidb_instrumentation::metrics::metrics;

/// How the auth layer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    /// No key, a malformed one, or one not in force.
    Unauthenticated,
    /// A valid key without the right.
    Denied,
    /// A valid key with the right, over its rate limit.
    RateLimited,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Allowed,
        Outcome::Unauthenticated,
        Outcome::Denied,
        Outcome::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

/// Count a decision.
pub(crate) fn count(outcome: Outcome) {
    metrics()
        .auth_requests
        .with_label_values(&[outcome.as_str()])
        .inc();
}

/// The audit line of a call.
pub(crate) fn line(
    key_id: Option<&str>,
    role: Option<Role>,
    method: &str,
    collection: Option<&str>,
    outcome: Outcome,
    code: tonic::Code,
) {
    tracing::info!(
        target: "akidb_audit",
        key_id = key_id.unwrap_or("-"),
        role = role.map_or("-", Role::as_str),
        method,
        collection = collection.unwrap_or("-"),
        outcome = outcome.as_str(),
        code = akidb_instrumentation::layers::code_name(code as i32),
        "audit"
    );
}
