//! The filter of a search, scroll, count or delete, converted from its proto
//! (`convert::filter_from_pb`, which checks it with `validate::filter`). Input: a byte giving
//! extra levels of nesting to wrap around the filter (up to 255, beyond the depth any
//! prost-decoded request can have), then an `akidb.v1.Filter` decoded by prost.
//!
//! Asserts: a converted filter never exceeds `MAX_FILTER_DEPTH` and passes validation; a
//! proto deeper than that is always refused; a proto without conditions converts to no
//! filter; and a converted filter can be evaluated against a payload.
#![no_main]

use akidb_proto::limits::MAX_FILTER_DEPTH;
use akidb_proto::v1 as pb;
use akidb_storage::convert::filter_from_pb;
use akidb_storage::filter::{Condition, Filter};
use akidb_storage::model::PointKey;
use akidb_storage::validate;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Levels of filters: 1 for a filter without nested ones.
fn pb_depth(f: &pb::Filter) -> usize {
    1 + f
        .must
        .iter()
        .chain(&f.should)
        .chain(&f.must_not)
        .chain(f.min_should.iter().flat_map(|m| &m.conditions))
        .filter_map(|c| match &c.condition {
            Some(pb::condition::Condition::Filter(inner)) => Some(pb_depth(inner)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn depth(f: &Filter) -> usize {
    1 + f
        .conditions()
        .filter_map(|c| match c {
            Condition::Nested(inner) => Some(depth(inner)),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let [wrap, bytes @ ..] = data else {
        return;
    };
    let Ok(mut f) = pb::Filter::decode(bytes) else {
        return;
    };
    for level in 0..*wrap {
        let c = pb::Condition {
            condition: Some(pb::condition::Condition::Filter(f)),
        };
        f = match level % 3 {
            0 => pb::Filter {
                must: vec![c],
                ..Default::default()
            },
            1 => pb::Filter {
                should: vec![c],
                ..Default::default()
            },
            _ => pb::Filter {
                must_not: vec![c],
                ..Default::default()
            },
        };
    }
    let pb_levels = pb_depth(&f);
    let empty = f.must.is_empty()
        && f.should.is_empty()
        && f.must_not.is_empty()
        && f.min_should.is_none();
    match filter_from_pb(Some(&f)) {
        Ok(Some(d)) => {
            assert!(!empty);
            assert!(depth(&d) <= MAX_FILTER_DEPTH, "converted filter too deep");
            assert_eq!(depth(&d), pb_levels);
            validate::filter(&d).expect("a converted filter is valid");
            let payload = serde_json::json!({
                "color": "red", "n": 3, "x": 2.5, "ok": true,
                "a": {"b": {"c": 1}}, "tags": ["x", "y", 7], "c": null,
                "q": "This country's capital city", "at": "2004-12-31T10:00:00Z",
                "geo": {"lat": 48.8, "lon": 2.3}
            });
            let payload = payload.as_object().unwrap();
            for key in [
                PointKey::Num(7),
                PointKey::Uuid("00000000-0000-4000-8000-000000000007".into()),
            ] {
                let _ = d.matches(&key, payload);
            }
        }
        Ok(None) => assert!(empty, "a filter with conditions converted to none"),
        Err(_) => {}
    }
    if pb_levels > MAX_FILTER_DEPTH {
        assert!(
            filter_from_pb(Some(&f)).is_err(),
            "{pb_levels} levels accepted"
        );
    }
});
