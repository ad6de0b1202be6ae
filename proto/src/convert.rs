//! Small helpers on the generated types shared by every service and client.

use crate::v1::{Alias, AliasAction, PointId, alias_action, point_id};
use std::fmt;

impl AliasAction {
    /// A new alias `alias` of collection `collection`.
    pub fn create(alias: impl Into<String>, collection: impl Into<String>) -> Self {
        AliasAction {
            action: Some(alias_action::Action::Create(Alias {
                alias: alias.into(),
                collection: collection.into(),
            })),
        }
    }
    /// The deletion of alias `alias`.
    pub fn delete(alias: impl Into<String>) -> Self {
        AliasAction {
            action: Some(alias_action::Action::Delete(alias.into())),
        }
    }
}

impl PointId {
    pub fn num(n: u64) -> Self {
        PointId {
            kind: Some(point_id::Kind::Num(n)),
        }
    }
    pub fn uuid(s: impl Into<String>) -> Self {
        PointId {
            kind: Some(point_id::Kind::Uuid(s.into())),
        }
    }
}

/// The Scroll cursor that continues after point `id`: `n:<integer>` or `u:<uuid>` (storage
/// decodes it; a cluster's router makes one for a page it merged from several shards).
pub fn scroll_cursor(id: &PointId) -> String {
    match &id.kind {
        Some(point_id::Kind::Num(n)) => format!("n:{n}"),
        Some(point_id::Kind::Uuid(u)) => format!("u:{u}"),
        None => String::new(),
    }
}

/// The order of point ids wherever results are ordered by id (a cluster's Scroll pages, a
/// Query's ties): integer ids by value, then UUIDs as storage answers them (canonical form),
/// then an unset id.
pub fn id_order(id: Option<&PointId>) -> (u8, u64, &str) {
    match id.and_then(|i| i.kind.as_ref()) {
        Some(point_id::Kind::Num(n)) => (0, *n, ""),
        Some(point_id::Kind::Uuid(u)) => (1, 0, u.as_str()),
        None => (2, 0, ""),
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(point_id::Kind::Num(n)) => write!(f, "{n}"),
            Some(point_id::Kind::Uuid(u)) => write!(f, "{u}"),
            None => write!(f, "<unset>"),
        }
    }
}
