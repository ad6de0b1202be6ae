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

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Some(point_id::Kind::Num(n)) => write!(f, "{n}"),
            Some(point_id::Kind::Uuid(u)) => write!(f, "{u}"),
            None => write!(f, "<unset>"),
        }
    }
}
