//! How a call reaches one shard, on both ends: the metadata a router sends with it (the
//! shard's epoch it routed by), the answer a node gives a call routed by a map it knows to be
//! out of date, and a point's shard from its id as the API spells it.

use akidb_proto::v1 as pb;
use tonic::Status;

use crate::placement::{IdRef, shard_of};

/// Request metadata: the epoch of the shard map the call was routed by. A storage node
/// serves a routed call only at that epoch, and a write only as the shard's owner.
pub const EPOCH_HEADER: &str = "akidb-shard-epoch";
/// Trailer metadata on a FAILED_PRECONDITION: the route was out of date; read the shard map
/// again and retry.
pub const STALE_ROUTE_HEADER: &str = "akidb-stale-route";

/// The epoch a routed call carries (`None`: a direct call, not routed).
pub fn epoch_of<T>(req: &tonic::Request<T>) -> Option<u64> {
    req.metadata()
        .get(EPOCH_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `req` routed at `epoch`.
pub fn routed<T>(mut req: tonic::Request<T>, epoch: u64) -> tonic::Request<T> {
    req.metadata_mut().insert(
        EPOCH_HEADER,
        epoch.to_string().parse().expect("digits are ASCII"),
    );
    req
}

/// The answer to a call routed by an out-of-date map: FAILED_PRECONDITION, marked so that
/// the router reads the map again and retries.
pub fn stale(message: String) -> Status {
    let mut md = tonic::metadata::MetadataMap::new();
    md.insert(STALE_ROUTE_HEADER, "1".parse().expect("ASCII"));
    Status::with_metadata(tonic::Code::FailedPrecondition, message, md)
}

/// Whether `s` is [`stale`]'s answer.
pub fn is_stale(s: &Status) -> bool {
    s.code() == tonic::Code::FailedPrecondition && s.metadata().contains_key(STALE_ROUTE_HEADER)
}

/// The shard of a point id among `shards`: a UUID is hashed in its canonical form (lowercase,
/// hyphenated), however the request spelled it, so every spelling lands on one shard.
pub fn shard_of_id(id: Option<&pb::PointId>, shards: u32) -> Result<u32, Status> {
    use pb::point_id::Kind;
    match id.and_then(|i| i.kind.as_ref()) {
        Some(Kind::Num(n)) => Ok(shard_of(IdRef::Num(*n), shards)),
        Some(Kind::Uuid(u)) => {
            let canonical = canonical_uuid(u).map_err(|e| {
                Status::invalid_argument(format!(
                    "point id `{}` is not a UUID: {e}",
                    u.escape_default()
                ))
            })?;
            Ok(shard_of(IdRef::Uuid(&canonical), shards))
        }
        None => Err(Status::invalid_argument(
            "point id is missing; set `num` or `uuid`",
        )),
    }
}

/// A UUID as storage keeps it (lowercase, hyphenated), from any spelling the API accepts.
pub(crate) fn canonical_uuid(u: &str) -> Result<String, uuid::Error> {
    uuid::Uuid::parse_str(u).map(|u| u.hyphenated().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_uuid_has_one_shard() {
        let forms = [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        ];
        let shards: Vec<u32> = forms
            .iter()
            .map(|f| shard_of_id(Some(&pb::PointId::uuid(*f)), 16).unwrap())
            .collect();
        assert!(shards.iter().all(|s| *s == shards[0]), "{shards:?}");
        assert_eq!(
            shard_of_id(Some(&pb::PointId::uuid("nope")), 16)
                .unwrap_err()
                .code(),
            tonic::Code::InvalidArgument
        );
        assert!(shard_of_id(None, 4).is_err());
    }

    #[test]
    fn stale_answers_are_marked() {
        assert!(is_stale(&stale("x".into())));
        assert!(!is_stale(&Status::failed_precondition("x")));
        let r = routed(tonic::Request::new(()), 7);
        assert_eq!(epoch_of(&r), Some(7));
        assert_eq!(epoch_of(&tonic::Request::new(())), None);
    }
}
