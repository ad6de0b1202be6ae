//! What each gRPC method needs: one table for every method of the API.
//!
//! A method missing here is refused (PERMISSION_DENIED) however strong the key, and the test
//! below fails for every `akidb.v1` method of the descriptor set without an entry: a new RPC
//! cannot ship unmapped.

use crate::keys::Role;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Nothing: health checks (probes and load balancers call them without a key).
    Open,
    /// A public key with at least this role.
    Role(Role),
    /// The internal key (the storage and aggregator APIs, called by the front doors).
    Internal,
}

use Right::{Internal, Open};
const READ: Right = Right::Role(Role::Read);
const WRITE: Right = Right::Role(Role::Write);
const ADMIN: Right = Right::Role(Role::Admin);

/// Every method of the API and what it needs.
pub const METHODS: &[(&str, Right)] = &[
    // The public read API (query).
    ("/akidb.v1.QueryService/Search", READ),
    ("/akidb.v1.QueryService/SearchBatch", READ),
    ("/akidb.v1.QueryService/Query", READ),
    ("/akidb.v1.QueryService/Get", READ),
    ("/akidb.v1.QueryService/Count", READ),
    ("/akidb.v1.QueryService/Scroll", READ),
    ("/akidb.v1.CollectionService/GetCollection", READ),
    ("/akidb.v1.CollectionService/ListCollections", READ),
    ("/akidb.v1.CollectionService/CreateCollection", ADMIN),
    ("/akidb.v1.CollectionService/DeleteCollection", ADMIN),
    ("/akidb.v1.CollectionService/UpdateAliases", ADMIN),
    // The public write API (ingest).
    ("/akidb.v1.IngestService/Upsert", WRITE),
    ("/akidb.v1.IngestService/UpsertStream", WRITE),
    ("/akidb.v1.IngestService/Delete", WRITE),
    ("/akidb.v1.IngestService/UpdatePayload", WRITE),
    ("/akidb.v1.IngestService/UpdateVectors", WRITE),
    ("/akidb.v1.IngestService/Flush", WRITE),
    // Operations: served by storage to internal callers, by query to admin keys.
    ("/akidb.v1.AdminService/TierStatus", ADMIN),
    ("/akidb.v1.AdminService/Promote", ADMIN),
    ("/akidb.v1.AdminService/Demote", ADMIN),
    ("/akidb.v1.AdminService/Pin", ADMIN),
    ("/akidb.v1.AdminService/Snapshot", ADMIN),
    ("/akidb.v1.AdminService/ListSnapshots", ADMIN),
    ("/akidb.v1.AdminService/DownloadSnapshot", ADMIN),
    ("/akidb.v1.AdminService/RestoreSnapshot", ADMIN),
    ("/akidb.v1.AdminService/Compact", ADMIN),
    ("/akidb.v1.AdminService/DlqList", ADMIN),
    ("/akidb.v1.AdminService/DlqRetry", ADMIN),
    ("/akidb.v1.AdminService/DlqPurge", ADMIN),
    ("/akidb.v1.AdminService/BreakerGet", ADMIN),
    ("/akidb.v1.AdminService/BreakerReset", ADMIN),
    ("/akidb.v1.AdminService/WalStatus", ADMIN),
    // SLO status: served by the aggregator to internal callers, by query to read keys.
    ("/akidb.v1.TelemetryService/GetSloStatus", READ),
    ("/akidb.v1.TelemetryService/GetTargets", READ),
    // Storage's own API: the front doors only.
    ("/akidb.v1.StorageService/CreateCollection", Internal),
    ("/akidb.v1.StorageService/GetCollection", Internal),
    ("/akidb.v1.StorageService/ListCollections", Internal),
    ("/akidb.v1.StorageService/DeleteCollection", Internal),
    ("/akidb.v1.StorageService/UpdateAliases", Internal),
    ("/akidb.v1.StorageService/Upsert", Internal),
    ("/akidb.v1.StorageService/Delete", Internal),
    ("/akidb.v1.StorageService/UpdatePayload", Internal),
    ("/akidb.v1.StorageService/UpdateVectors", Internal),
    ("/akidb.v1.StorageService/Flush", Internal),
    ("/akidb.v1.StorageService/Search", Internal),
    ("/akidb.v1.StorageService/SearchBatch", Internal),
    ("/akidb.v1.StorageService/Query", Internal),
    ("/akidb.v1.StorageService/Get", Internal),
    ("/akidb.v1.StorageService/Count", Internal),
    ("/akidb.v1.StorageService/Scroll", Internal),
    // Standard services.
    ("/grpc.health.v1.Health/Check", Open),
    ("/grpc.health.v1.Health/Watch", Open),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        READ,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        READ,
    ),
];

/// What the method at `path` needs; `None` for a path the API does not have.
pub fn right_of(path: &str) -> Option<Right> {
    METHODS.iter().find(|(p, _)| *p == path).map(|(_, r)| *r)
}

/// Whether calls to `path` are audited (one line each, allowed or denied): the admin and DDL
/// calls.
pub fn audited(path: &str) -> bool {
    right_of(path) == Some(ADMIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn every_method_of_the_api_has_a_right() {
        let set = prost_types::FileDescriptorSet::decode(akidb_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut n = 0;
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{package}.{}/{}", service.name(), method.name());
                    assert!(
                        right_of(&path).is_some(),
                        "{path} has no entry in auth/src/rights.rs METHODS: say what it needs"
                    );
                    n += 1;
                }
            }
        }
        assert!(n >= 40, "{n} methods");
        // No entry for a method the API does not have (a typo would leave one unmapped).
        for (path, _) in METHODS {
            if path.starts_with("/akidb.") {
                let (svc, method) = path[1..].split_once('/').unwrap();
                let found = set.file.iter().any(|f| {
                    f.service.iter().any(|s| {
                        format!("{}.{}", f.package(), s.name()) == svc
                            && s.method.iter().any(|m| m.name() == method)
                    })
                });
                assert!(found, "{path} is mapped but not in the API");
            }
        }
    }

    /// docs/security.md shows this table; it must say what the code does.
    #[test]
    fn the_documented_table_is_this_table() {
        let doc = include_str!("../../docs/security.md");
        let rows: Vec<(String, String)> = doc
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
                let path = cells.first()?.trim().strip_prefix('`')?.strip_suffix('`')?;
                let need = cells.get(1)?.trim();
                path.starts_with('/')
                    .then(|| (path.to_string(), need.to_string()))
            })
            .collect();
        let ours: Vec<(String, String)> = METHODS
            .iter()
            .map(|(p, r)| {
                let need = match r {
                    Right::Open => "nothing",
                    Right::Internal => "internal",
                    Right::Role(role) => role.as_str(),
                };
                (p.to_string(), need.to_string())
            })
            .collect();
        assert_eq!(rows, ours, "docs/security.md's table differs from METHODS");
    }

    #[test]
    fn roles_and_open_paths() {
        assert_eq!(right_of("/grpc.health.v1.Health/Check"), Some(Right::Open));
        assert_eq!(
            right_of("/akidb.v1.StorageService/Upsert"),
            Some(Right::Internal)
        );
        assert_eq!(right_of("/akidb.v1.Nope/X"), None);
        assert!(audited("/akidb.v1.AdminService/DlqPurge"));
        assert!(audited("/akidb.v1.CollectionService/DeleteCollection"));
        assert!(!audited("/akidb.v1.QueryService/Search"));
    }
}
