//! Cross-service tests on the real binaries: the public API, every validation case, and what
//! ingest and query do when storage dies and comes back.

mod common;

use akidb_proto::v1 as pb;
use common::*;
use std::time::{Duration, Instant};
use tonic::Code;

fn point(id: u64, v: Vec<f32>) -> pb::Point {
    pb::Point {
        id: Some(pb::PointId::num(id)),
        vector: v,
        payload: None,
        ..Default::default()
    }
}

fn create(name: &str, dim: u32, metric: pb::Metric) -> pb::CreateCollectionRequest {
    pb::CreateCollectionRequest {
        name: name.into(),
        dimension: dim,
        metric: metric as i32,
        ..Default::default()
    }
}

fn search(c: &str, v: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: c.into(),
        vector: v,
        k,
        ..Default::default()
    }
}

async fn count(s: &Stack, c: &str) -> u64 {
    let q = s.q();
    q.query()
        .count(q.request(pb::CountRequest {
            collection: c.into(),
            filter: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .count
}

#[track_caller]
fn expect_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(
                s.message().contains(needle),
                "message `{}` lacks `{needle}`",
                s.message()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_cases_answer_the_right_status_and_change_nothing() {
    let s = Stack::start().await;
    let (q, i) = (s.q(), s.i());
    let mut coll = q.collections();
    let mut ing = i.ingest();
    let mut qs = q.query();

    coll.create_collection(create("v", 4, pb::Metric::L2))
        .await
        .unwrap();
    // duplicate collection
    expect_code(
        coll.create_collection(create("v", 4, pb::Metric::L2)).await,
        Code::AlreadyExists,
        "already exists",
    );
    // bad names
    for bad in ["../x", "", &"a".repeat(65), "sp ace"] {
        expect_code(
            coll.create_collection(create(bad, 4, pb::Metric::L2)).await,
            Code::InvalidArgument,
            "collection name",
        );
    }
    assert!(
        coll.create_collection(create(&"a".repeat(64), 4, pb::Metric::L2))
            .await
            .is_ok()
    );
    // dimension 0 and too large; metric unset
    expect_code(
        coll.create_collection(create("d0", 0, pb::Metric::L2))
            .await,
        Code::InvalidArgument,
        "dimension",
    );
    expect_code(
        coll.create_collection(create("dbig", 65_537, pb::Metric::L2))
            .await,
        Code::InvalidArgument,
        "dimension",
    );
    expect_code(
        coll.create_collection(create("nom", 4, pb::Metric::Unspecified))
            .await,
        Code::InvalidArgument,
        "metric",
    );
    // an unknown quantization; BINARY on L2, which it does not serve
    expect_code(
        coll.create_collection(pb::CreateCollectionRequest {
            quantization: 99,
            ..create("q99", 4, pb::Metric::L2)
        })
        .await,
        Code::InvalidArgument,
        "quantization must be",
    );
    expect_code(
        coll.create_collection(pb::CreateCollectionRequest {
            quantization: pb::Quantization::Binary as i32,
            on_disk: true,
            ..create("bl2", 4, pb::Metric::L2)
        })
        .await,
        Code::InvalidArgument,
        "BINARY quantization serves COSINE and DOT",
    );
    let listed = coll
        .list_collections(pb::ListCollectionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .collections
            .iter()
            .all(|c| c.name != "q99" && c.name != "bl2"),
        "a refused create created nothing"
    );
    // an oversampling of 0, NaN or above the cap
    for bad in [0.0, 0.5, f32::NAN, 16.5, 1e9] {
        let mut r = search("v", vec![0.0; 4], 1);
        r.oversampling = Some(bad);
        expect_code(
            qs.search(r).await,
            Code::InvalidArgument,
            "oversampling must be",
        );
    }
    // unknown collection, for every call
    expect_code(
        qs.search(search("nope", vec![0.0; 4], 3)).await,
        Code::NotFound,
        "not found",
    );
    expect_code(
        ing.upsert(pb::UpsertRequest {
            collection: "nope".into(),
            points: vec![point(1, vec![0.0; 4])],
        })
        .await,
        Code::NotFound,
        "not found",
    );
    expect_code(
        coll.get_collection(pb::GetCollectionRequest {
            name: "nope".into(),
        })
        .await,
        Code::NotFound,
        "nope",
    );
    expect_code(
        coll.delete_collection(pb::DeleteCollectionRequest {
            name: "nope".into(),
        })
        .await,
        Code::NotFound,
        "nope",
    );

    ing.upsert(pb::UpsertRequest {
        collection: "v".into(),
        points: vec![point(1, vec![1.0, 0.0, 0.0, 0.0])],
    })
    .await
    .unwrap();
    let up = |points: Vec<pb::Point>| pb::UpsertRequest {
        collection: "v".into(),
        points,
    };
    // wrong length: a batch with one bad point changes nothing
    expect_code(
        ing.upsert(up(vec![point(2, vec![1.0; 4]), point(3, vec![1.0; 3])]))
            .await,
        Code::InvalidArgument,
        "components",
    );
    expect_code(
        ing.upsert(up(vec![point(2, vec![1.0; 5])])).await,
        Code::InvalidArgument,
        "dimension 4",
    );
    // NaN and infinity
    expect_code(
        ing.upsert(up(vec![point(2, vec![1.0, f32::NAN, 0.0, 0.0])]))
            .await,
        Code::InvalidArgument,
        "finite",
    );
    expect_code(
        ing.upsert(up(vec![point(2, vec![f32::INFINITY, 0.0, 0.0, 0.0])]))
            .await,
        Code::InvalidArgument,
        "finite",
    );
    // empty batch
    expect_code(ing.upsert(up(vec![])).await, Code::InvalidArgument, "empty");
    // missing id
    expect_code(
        ing.upsert(up(vec![pb::Point {
            id: None,
            vector: vec![0.0; 4],
            payload: None,
            ..Default::default()
        }]))
        .await,
        Code::InvalidArgument,
        "id",
    );
    // batch over the point limit (the stack runs with the default 10,000)
    let big: Vec<_> = (0..10_001).map(|n| point(n, vec![0.5; 4])).collect();
    expect_code(ing.upsert(up(big)).await, Code::ResourceExhausted, "limit");
    assert_eq!(count(&s, "v").await, 1, "rejected batches changed nothing");

    // duplicate ids inside one batch: the last one wins
    ing.upsert(up(vec![point(7, vec![1.0; 4]), point(7, vec![2.0; 4])]))
        .await
        .unwrap();
    let got = qs
        .get(pb::GetRequest {
            collection: "v".into(),
            ids: vec![pb::PointId::num(7)],
            with_vector: true,
            with_payload: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points.len(), 1);
    assert_eq!(got.points[0].vector, vec![2.0; 4]);

    // k out of range, bad query vector
    expect_code(
        qs.search(search("v", vec![0.0; 4], 0)).await,
        Code::InvalidArgument,
        "k must be",
    );
    expect_code(
        qs.search(search("v", vec![0.0; 4], 10_001)).await,
        Code::InvalidArgument,
        "k must be",
    );
    expect_code(
        qs.search(search("v", vec![0.0; 3], 1)).await,
        Code::InvalidArgument,
        "dimension",
    );
    expect_code(
        qs.search(search("v", vec![f32::NAN; 4], 1)).await,
        Code::InvalidArgument,
        "finite",
    );
    // malformed filters
    use pb::condition::Condition as C;
    let bad_filters = [
        pb::Filter {
            must: vec![pb::Condition { condition: None }],
            ..Default::default()
        },
        pb::Filter {
            must: vec![pb::Condition {
                condition: Some(C::Field(pb::FieldCondition {
                    key: "x".into(),
                    r#match: None,
                })),
            }],
            ..Default::default()
        },
        pb::Filter {
            must: vec![pb::Condition {
                condition: Some(C::Field(pb::FieldCondition {
                    key: "x".into(),
                    r#match: Some(pb::field_condition::Match::Range(pb::Range::default())),
                })),
            }],
            ..Default::default()
        },
        pb::Filter {
            must: vec![pb::Condition {
                condition: Some(C::Field(pb::FieldCondition {
                    key: "".into(),
                    r#match: Some(pb::field_condition::Match::Integer(1)),
                })),
            }],
            ..Default::default()
        },
    ];
    // The filter kinds with their own rules: each refused with a message naming the problem.
    use pb::field_condition::Match as M;
    let on = |m: M| pb::Filter {
        must: vec![pb::Condition {
            condition: Some(C::Field(pb::FieldCondition {
                key: "x".into(),
                r#match: Some(m),
            })),
        }],
        ..Default::default()
    };
    let point = |lat, lon| Some(pb::GeoPoint { lat, lon });
    let min_should = |min_count| pb::Filter {
        min_should: Some(pb::MinShould {
            conditions: vec![pb::Condition {
                condition: Some(C::IsNull(pb::FieldKey { key: "x".into() })),
            }],
            min_count,
        }),
        ..Default::default()
    };
    let kinds = [
        (
            on(M::GeoRadius(pb::GeoRadius {
                center: point(91.0, 0.0),
                radius_m: 10.0,
            })),
            "latitude 91",
        ),
        (
            on(M::GeoRadius(pb::GeoRadius {
                center: point(0.0, 0.0),
                radius_m: 0.0,
            })),
            "positive",
        ),
        (
            on(M::GeoRadius(pb::GeoRadius {
                center: None,
                radius_m: 5.0,
            })),
            "needs `center`",
        ),
        (
            on(M::GeoBoundingBox(pb::GeoBoundingBox {
                top_left: point(0.0, 0.0),
                bottom_right: point(10.0, 5.0),
            })),
            "below",
        ),
        (
            on(M::DatetimeRange(pb::DatetimeRange {
                gte: Some("2004-13-45".into()),
                ..Default::default()
            })),
            "RFC 3339",
        ),
        (
            on(M::DatetimeRange(pb::DatetimeRange::default())),
            "no bound",
        ),
        (on(M::Text(" ,;! ".into())), "no word"),
        (min_should(0), "min_count from 1"),
        (min_should(2), "min_count from 1"),
    ];
    let every = bad_filters.into_iter().map(|f| (f, "")).chain(kinds);
    for (f, needle) in every {
        let mut r = search("v", vec![0.0; 4], 1);
        r.filter = Some(f.clone());
        expect_code(qs.search(r).await, Code::InvalidArgument, needle);
        expect_code(
            qs.count(pb::CountRequest {
                collection: "v".into(),
                filter: Some(f.clone()),
            })
            .await,
            Code::InvalidArgument,
            needle,
        );
        expect_code(
            ing.delete(pb::DeleteRequest {
                collection: "v".into(),
                ids: vec![],
                filter: Some(f),
            })
            .await,
            Code::InvalidArgument,
            needle,
        );
    }
    assert_eq!(count(&s, "v").await, 2, "rejected deletes changed nothing");
    // a bad UUID id
    expect_code(
        ing.upsert(up(vec![pb::Point {
            id: Some(pb::PointId::uuid("not-a-uuid")),
            vector: vec![0.0; 4],
            payload: None,
            ..Default::default()
        }]))
        .await,
        Code::InvalidArgument,
        "UUID",
    );
    assert_eq!(count(&s, "v").await, 2);
}

/// Flush seals the points a search still scans exactly and, with `wait_indexed`, returns once
/// they are in a graph; a second flush has nothing to seal; bad names and unknown collections
/// are rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_indexes_the_appendable_points_now() {
    // Idle sealing off (an hour), so only the flush can seal.
    let s = Stack::start_with(&["--seal-idle-ms", "3600000"], &[], &[]).await;
    let (q, i) = (s.q(), s.i());
    q.collections()
        .create_collection(create("f", 8, pb::Metric::L2))
        .await
        .unwrap();
    let pts: Vec<_> = (0..1500u64)
        .map(|n| point(n, (0..8).map(|d| ((n * 31 + d * 7) % 97) as f32).collect()))
        .collect();
    i.ingest()
        .upsert(pb::UpsertRequest {
            collection: "f".into(),
            points: pts,
        })
        .await
        .unwrap();
    let stats = |r: pb::SearchResponse| r.stats.unwrap();
    let before = stats(
        q.query()
            .search(search("f", vec![1.0; 8], 5))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!((before.points_exact, before.points_graph), (1500, 0));

    let flush = |wait| pb::FlushRequest {
        collection: "f".into(),
        wait_indexed: wait,
    };
    let r = i.ingest().flush(flush(true)).await.unwrap().into_inner();
    assert_eq!(
        (r.sealed_points, r.indexed_point_count, r.point_count),
        (1500, 1500, 1500)
    );
    // Another vector: the query cache would answer the first one (flushing changes no point).
    let after = stats(
        q.query()
            .search(search("f", vec![2.0; 8], 5))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!((after.points_exact, after.points_graph), (0, 1500));
    let again = i.ingest().flush(flush(true)).await.unwrap().into_inner();
    assert_eq!((again.sealed_points, again.indexed_point_count), (0, 1500));

    expect_code(
        i.ingest()
            .flush(pb::FlushRequest {
                collection: "no such".into(),
                wait_indexed: true,
            })
            .await,
        Code::InvalidArgument,
        "collection name",
    );
    expect_code(
        i.ingest()
            .flush(pb::FlushRequest {
                collection: "nope".into(),
                wait_indexed: false,
            })
            .await,
        Code::NotFound,
        "not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_byte_limit_is_resource_exhausted() {
    let s = Stack::start_with(&[], &["--max-batch-bytes", "4096"], &[]).await;
    let i = s.i();
    s.q()
        .collections()
        .create_collection(create("b", 64, pb::Metric::Dot))
        .await
        .unwrap();
    let pts: Vec<_> = (0..100).map(|n| point(n, vec![0.1; 64])).collect();
    expect_code(
        i.ingest()
            .upsert(pb::UpsertRequest {
                collection: "b".into(),
                points: pts,
            })
            .await,
        Code::ResourceExhausted,
        "bytes",
    );
    assert_eq!(count(&s, "b").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_down_means_unavailable_within_the_deadline_then_recovery() {
    let mut s = Stack::start_with(
        &[],
        &["--storage-timeout-ms", "1500"],
        &["--storage-timeout-ms", "1500"],
    )
    .await;
    s.q()
        .collections()
        .create_collection(create("k", 2, pb::Metric::L2))
        .await
        .unwrap();
    s.storage.kill();
    wait_health(&s.query_addr, "NOT_SERVING", Duration::from_secs(5)).await;
    wait_health(&s.ingest_addr, "NOT_SERVING", Duration::from_secs(5)).await;
    let t = Instant::now();
    let r = s.q().query().search(search("k", vec![0.0, 0.0], 1)).await;
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "search took {:?}",
        t.elapsed()
    );
    assert_eq!(r.unwrap_err().code(), Code::Unavailable);
    let t = Instant::now();
    let r = s
        .i()
        .ingest()
        .upsert(pb::UpsertRequest {
            collection: "k".into(),
            points: vec![point(1, vec![0.0, 0.0])],
        })
        .await;
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "upsert took {:?}",
        t.elapsed()
    );
    assert_eq!(r.unwrap_err().code(), Code::Unavailable);
    // a caller's own shorter deadline is honoured
    let mut req = tonic::Request::new(search("k", vec![0.0, 0.0], 1));
    req.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let r = s.q().query().search(req).await;
    assert!(
        t.elapsed() < Duration::from_millis(1200),
        "took {:?}",
        t.elapsed()
    );
    assert!(matches!(
        r.unwrap_err().code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    ));

    s.storage.spawn();
    wait_serving(&s.query_addr, Duration::from_secs(30)).await;
    wait_serving(&s.ingest_addr, Duration::from_secs(30)).await;
    // the front doors were not restarted and serve again
    let r = s
        .q()
        .collections()
        .list_collections(pb::ListCollectionsRequest {})
        .await;
    assert!(r.is_ok(), "{r:?}\n{}", s.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_exits_zero_and_metrics_are_served() {
    let mut s = Stack::start().await;
    s.q()
        .collections()
        .create_collection(create("m", 2, pb::Metric::Cosine))
        .await
        .unwrap();
    let _ = s
        .q()
        .query()
        .search(search("m", vec![1.0, 0.0], 1))
        .await
        .unwrap();
    let text = scrape(s.query_metrics).await;
    assert!(text.contains("akidb_grpc_server_requests_total{grpc_code=\"OK\",grpc_method=\"Search\",grpc_service=\"akidb.v1.QueryService\"} 1"), "{text}");
    let st = scrape(s.storage_metrics).await;
    assert!(
        st.contains("akidb_search_duration_seconds_count{tier=\"hot\"} 1"),
        "{st}"
    );
    for p in [&mut s.query, &mut s.ingest, &mut s.storage] {
        let st = p.stop().expect("stopped within 20 s");
        assert!(st.success(), "{} exited with {st}", p.name);
    }
}

/// UpdatePayload through ingest: each change by ids, by filter and by both, visible to the
/// next read, vectors kept and still found by search; bad requests refused with
/// INVALID_ARGUMENT or NOT_FOUND and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_updates_keep_vectors_and_refuse_bad_requests() {
    use pb::update_payload_request::Change;
    use serde_json::json;
    let s = Stack::start().await;
    let (q, i) = (s.q(), s.i());
    q.collections()
        .create_collection(create("p", 2, pb::Metric::L2))
        .await
        .unwrap();
    let obj = |v: serde_json::Value| {
        akidb_storage::convert::payload_to_pb(v.as_object().expect("an object"))
    };
    let points = (0..10u64)
        .map(|k| pb::Point {
            id: Some(pb::PointId::num(k)),
            vector: vec![k as f32, 0.0],
            payload: Some(obj(
                json!({"kind": if k < 5 { "a" } else { "b" }, "n": k, "deep": {"x": 1, "y": 2}}),
            )),
            ..Default::default()
        })
        .collect();
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "p".into(),
            points,
        }))
        .await
        .unwrap();
    let kind_is = |k: &str| pb::Filter {
        must: vec![pb::Condition {
            condition: Some(pb::condition::Condition::Field(pb::FieldCondition {
                key: "kind".into(),
                r#match: Some(pb::field_condition::Match::Keyword(k.into())),
            })),
        }],
        ..Default::default()
    };
    let update = |ids: &[u64], filter: Option<pb::Filter>, change: Option<Change>| {
        pb::UpdatePayloadRequest {
            collection: "p".into(),
            ids: ids.iter().map(|k| pb::PointId::num(*k)).collect(),
            filter,
            change,
        }
    };
    let all = || async {
        let r = q
            .query()
            .get(q.request(pb::GetRequest {
                collection: "p".into(),
                ids: (0..10).map(pb::PointId::num).collect(),
                with_payload: true,
                with_vector: true,
            }))
            .await
            .unwrap()
            .into_inner();
        r.points
            .into_iter()
            .map(|p| {
                (
                    p.vector,
                    serde_json::Value::Object(
                        akidb_storage::convert::payload_from_pb(p.payload.as_ref()).unwrap(),
                    ),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = all().await;

    // Bad requests: nothing changes.
    let bad: Vec<(pb::UpdatePayloadRequest, Code, &str)> = vec![
        (
            update(&[], None, Some(Change::Clear(true))),
            Code::InvalidArgument,
            "ids or a non-empty filter",
        ),
        (
            update(&[1], None, None),
            Code::InvalidArgument,
            "needs a change",
        ),
        (
            update(&[1], None, Some(Change::Clear(false))),
            Code::InvalidArgument,
            "needs a change",
        ),
        (
            update(&[1], None, Some(Change::Set(obj(json!({}))))),
            Code::InvalidArgument,
            "needs a change",
        ),
        (
            update(
                &[1],
                None,
                Some(Change::DeleteKeys(pb::PayloadKeys {
                    keys: vec!["".into()],
                })),
            ),
            Code::InvalidArgument,
            "needs a change",
        ),
        (
            update(
                &[1],
                None,
                Some(Change::Set(akidb_proto::prost_types::Struct {
                    fields: [(
                        "x".to_string(),
                        akidb_proto::prost_types::Value {
                            kind: Some(akidb_proto::prost_types::value::Kind::NumberValue(
                                f64::NAN,
                            )),
                        },
                    )]
                    .into_iter()
                    .collect(),
                })),
            ),
            Code::InvalidArgument,
            "not finite",
        ),
        (
            pb::UpdatePayloadRequest {
                collection: "nope".into(),
                ..update(&[1], None, Some(Change::Clear(true)))
            },
            Code::NotFound,
            "nope",
        ),
        (
            pb::UpdatePayloadRequest {
                ids: vec![pb::PointId::default()],
                ..update(&[], None, Some(Change::Clear(true)))
            },
            Code::InvalidArgument,
            "id is missing",
        ),
    ];
    for (req, code, needle) in bad {
        expect_code(
            i.ingest().update_payload(i.request(req)).await,
            code,
            needle,
        );
    }
    assert_eq!(all().await, before, "a refused update changed something");

    let run = |req| {
        let i = i.clone();
        async move {
            i.ingest()
                .update_payload(i.request(req))
                .await
                .unwrap()
                .into_inner()
                .updated
        }
    };
    // Set by ids (one id absent: skipped), merge keeps the other keys.
    assert_eq!(
        run(update(
            &[1, 2, 99],
            None,
            Some(Change::Set(obj(json!({"n": 100, "new": true}))))
        ))
        .await,
        2
    );
    // Delete keys by filter, nested too.
    assert_eq!(
        run(update(
            &[],
            Some(kind_is("b")),
            Some(Change::DeleteKeys(pb::PayloadKeys {
                keys: vec!["deep.x".into(), "n".into()]
            }))
        ))
        .await,
        5
    );
    // Overwrite by ids and filter together (3 and every `a`: 5 points, 3 counted once).
    assert_eq!(
        run(update(
            &[3],
            Some(kind_is("a")),
            Some(Change::Overwrite(obj(json!({"kind": "c"}))))
        ))
        .await,
        5
    );
    // Clear one.
    assert_eq!(run(update(&[9], None, Some(Change::Clear(true)))).await, 1);

    let after = all().await;
    let want = |k: usize| match k {
        0..=4 => json!({"kind": "c"}),
        9 => json!({}),
        _ => json!({"kind": "b", "deep": {"y": 2}}),
    };
    for (k, (v, p)) in after.iter().enumerate() {
        assert_eq!(v, &before[k].0, "point {k}: vector changed");
        assert_eq!(p, &want(k), "point {k}");
    }
    // The next search sees the new payloads, and the vectors are still searched.
    let r = q
        .query()
        .search(q.request(pb::SearchRequest {
            filter: Some(kind_is("c")),
            with_payload: true,
            ..search("p", vec![4.0, 0.0], 3)
        }))
        .await
        .unwrap()
        .into_inner();
    let ids = hit_ids(&r.hits);
    assert_eq!(ids, ["4", "3", "2"]);
}

/// Aliases through query: reads and writes take an alias where they take a collection; a
/// swap under continuous searches gives every search the old or the new collection, never
/// an error or a mix; bad calls are refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_swap_under_searches_answers_from_one_collection_or_the_other() {
    let s = Stack::start().await;
    let (q, i) = (s.q(), s.i());
    let (create_alias, delete_alias) = (pb::AliasAction::create, pb::AliasAction::delete);
    let update = |actions: Vec<pb::AliasAction>| {
        let q = q.clone();
        async move {
            q.collections()
                .update_aliases(q.request(pb::UpdateAliasesRequest { actions }))
                .await
        }
    };
    // `old` holds ids 0..50, `new` ids 1000..1050.
    for (name, base) in [("old", 0u64), ("new", 1_000)] {
        q.collections()
            .create_collection(create(name, 2, pb::Metric::L2))
            .await
            .unwrap();
        i.ingest()
            .upsert(
                i.request(pb::UpsertRequest {
                    collection: name.into(),
                    points: (0..50)
                        .map(|k| point(base + k, vec![k as f32, 1.0]))
                        .collect(),
                }),
            )
            .await
            .unwrap();
    }
    update(vec![create_alias("live", "old")]).await.unwrap();

    // Bad calls, each refused whole.
    let cases: Vec<(Vec<pb::AliasAction>, Code, &str)> = vec![
        (vec![], Code::InvalidArgument, "at least one action"),
        (
            vec![create_alias("old", "new")],
            Code::InvalidArgument,
            "may not hide",
        ),
        (
            vec![create_alias("x", "live")],
            Code::InvalidArgument,
            "not another alias",
        ),
        (vec![create_alias("x", "nope")], Code::NotFound, "nope"),
        (
            vec![create_alias("live", "new")],
            Code::AlreadyExists,
            "delete it first",
        ),
        (vec![delete_alias("nope")], Code::NotFound, "nope"),
        (
            vec![create_alias("ok", "new"), create_alias("bad name", "new")],
            Code::InvalidArgument,
            "collection name",
        ),
        (
            vec![pb::AliasAction { action: None }],
            Code::InvalidArgument,
            "empty",
        ),
    ];
    for (actions, code, needle) in cases {
        expect_code(update(actions).await, code, needle);
    }
    expect_code(
        q.collections()
            .create_collection(create("live", 2, pb::Metric::L2))
            .await,
        Code::AlreadyExists,
        "is an alias",
    );
    let listed = q
        .collections()
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.aliases,
        vec![pb::Alias {
            alias: "live".into(),
            collection: "old".into()
        }],
        "a refused call changed the aliases"
    );

    // Reads and writes through the alias.
    assert_eq!(count(&s, "live").await, 50);
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "live".into(),
            points: vec![point(50, vec![50.0, 1.0])],
        }))
        .await
        .unwrap();
    assert_eq!(count(&s, "old").await, 51);
    let info = q
        .collections()
        .get_collection(pb::GetCollectionRequest {
            name: "live".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    assert_eq!(info.name, "old");

    // Searches run continuously while the alias is swapped.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let searchers: Vec<_> = (0..4)
        .map(|t| {
            let (q, stop) = (q.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut olds, mut news) = (0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let r = q
                        .query()
                        .search(q.request(search("live", vec![t as f32, 1.0], 5)))
                        .await
                        .expect("a search during the swap failed");
                    let ids: Vec<u64> = r
                        .into_inner()
                        .hits
                        .iter()
                        .map(|h| match h.id.as_ref().unwrap().kind {
                            Some(pb::point_id::Kind::Num(n)) => n,
                            _ => unreachable!(),
                        })
                        .collect();
                    assert_eq!(ids.len(), 5);
                    if ids.iter().all(|&n| n < 1_000) {
                        olds += 1;
                    } else {
                        assert!(ids.iter().all(|&n| n >= 1_000), "a mix: {ids:?}");
                        news += 1;
                    }
                }
                (olds, news)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    update(vec![delete_alias("live"), create_alias("live", "new")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let (mut olds, mut news) = (0, 0);
    for h in searchers {
        let (o, n) = h.await.unwrap();
        (olds, news) = (olds + o, news + n);
    }
    eprintln!("searches answered from old {olds}, from new {news}");
    assert!(olds > 0 && news > 0, "old {olds}, new {news}");
    // Once the swap has answered, every search is the new collection's (no stale cache).
    for t in 0..20 {
        let r = q
            .query()
            .search(q.request(search("live", vec![t as f32, 1.0], 5)))
            .await
            .unwrap()
            .into_inner();
        assert!(
            r.hits.iter().all(|h| matches!(h.id.as_ref().unwrap().kind, Some(pb::point_id::Kind::Num(n)) if n >= 1_000)),
            "{r:?}"
        );
    }
    assert_eq!(count(&s, "live").await, 50);

    // Deleting the collection deletes its alias.
    q.collections()
        .delete_collection(pb::DeleteCollectionRequest { name: "new".into() })
        .await
        .unwrap();
    let listed = q
        .collections()
        .list_collections(pb::ListCollectionsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(listed.aliases.is_empty(), "{listed:?}");
    expect_code(
        q.query()
            .count(pb::CountRequest {
                collection: "live".into(),
                filter: None,
            })
            .await,
        Code::NotFound,
        "live",
    );
}

/// The whole of a DownloadSnapshot stream: its info, the archive, and the archive's end.
async fn download(
    s: &Stack,
    req: pb::DownloadSnapshotRequest,
) -> Result<(pb::SnapshotInfo, Vec<u8>, pb::SnapshotArchiveEnd), tonic::Status> {
    use pb::snapshot_chunk::Part;
    let q = s.q();
    let mut stream = q
        .admin()
        .download_snapshot(q.request(req))
        .await?
        .into_inner();
    let (mut info, mut bytes) = (None, Vec::new());
    while let Some(chunk) = stream.message().await? {
        match chunk.part.expect("a part") {
            Part::Info(i) => info = Some(i),
            Part::Data(d) => bytes.extend_from_slice(&d),
            Part::End(end) => return Ok((info.expect("info first"), bytes, end)),
        }
    }
    panic!("the stream ended without `end`")
}

async fn restore(
    s: &Stack,
    collection: &str,
    sha256: &str,
    object_key: &str,
    archive: &[u8],
) -> Result<pb::RestoreSnapshotResponse, tonic::Status> {
    use pb::restore_snapshot_request::Part;
    let start = Part::Start(pb::RestoreSnapshotStart {
        collection: collection.into(),
        sha256: sha256.into(),
        object_key: object_key.into(),
    });
    let msgs: Vec<_> = std::iter::once(start)
        .chain(archive.chunks(300_000).map(|c| Part::Data(c.to_vec())))
        .map(|p| pb::RestoreSnapshotRequest { part: Some(p) })
        .collect();
    let q = s.q();
    let r = q
        .admin()
        .restore_snapshot(q.request(tokio_stream::iter(msgs)))
        .await?;
    Ok(r.into_inner())
}

/// siftsmall through DownloadSnapshot, then RestoreSnapshot under two new names (uploaded,
/// and from the object store): the same count, payloads and top-10 for 100 queries. Hostile
/// archives and bad requests are refused with their code, and nothing is written outside
/// storage's data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downloaded_snapshot_restores_under_another_name_with_the_same_answers() {
    let Some(set) = akidb_testkit::datasets::VectorSet::load(akidb_testkit::datasets::SIFTSMALL)
    else {
        return;
    };
    let s = Stack::start().await;
    let (q, i) = (s.q(), s.i());
    q.collections()
        .create_collection(create("sift", 128, pb::Metric::L2))
        .await
        .unwrap();
    for (b, rows) in set.base.chunks(1_000).enumerate() {
        let points = rows
            .iter()
            .enumerate()
            .map(|(k, v)| {
                let id = (b * 1_000 + k) as u64;
                pb::Point {
                    id: Some(pb::PointId::num(id)),
                    vector: v.clone(),
                    payload: Some(akidb_storage::convert::payload_to_pb(
                        serde_json::json!({"row": id, "tag": format!("t{}", id % 17)})
                            .as_object()
                            .unwrap(),
                    )),
                    ..Default::default()
                }
            })
            .collect();
        i.ingest()
            .upsert(i.request(pb::UpsertRequest {
                collection: "sift".into(),
                points,
            }))
            .await
            .unwrap();
    }
    // Bad downloads first: nothing to send yet, unknown names, a traversal as an id.
    let dl = |collection: &str, id: &str, create: bool| pb::DownloadSnapshotRequest {
        collection: collection.into(),
        snapshot_id: id.into(),
        create,
    };
    expect_code(
        download(&s, dl("sift", "", false)).await,
        Code::FailedPrecondition,
        "no snapshot yet",
    );
    expect_code(
        download(&s, dl("nope", "", true)).await,
        Code::NotFound,
        "not found",
    );
    expect_code(
        download(&s, dl("sift", "x", true)).await,
        Code::InvalidArgument,
        "not both",
    );
    // The CLI takes a new snapshot and saves it whole, checked.
    let archive_path = s.dir.path().join("sift.tar");
    let out = std::process::Command::new(BIN)
        .args([
            "--json",
            "--query-addr",
            &s.query_addr,
            "admin",
            "snapshot",
            "download",
            "sift",
            "--new",
            "-o",
        ])
        .arg(&archive_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["points"], 10_000);
    let (info, archive, end) = download(&s, dl("sift", "", false)).await.unwrap();
    assert_eq!(
        std::fs::read(&archive_path).unwrap(),
        archive,
        "the CLI saved another archive"
    );
    assert_eq!(printed["sha256"], end.sha256.as_str());
    assert_eq!(
        (info.collection.as_str(), info.point_count),
        ("sift", 10_000)
    );
    assert_eq!(end.size_bytes, archive.len() as u64);
    expect_code(
        download(&s, dl("sift", "../../collections/sift", false)).await,
        Code::NotFound,
        "no snapshot",
    );

    // Restored from the upload (checked against the SHA-256 sent) and from the object store.
    let r = restore(&s, "copy", &end.sha256, "", &archive)
        .await
        .unwrap();
    assert_eq!(r.snapshot.as_ref().unwrap().point_count, 10_000);
    assert_eq!(r.archive.unwrap().sha256, end.sha256);
    let store = s.dir.path().join("storage/objects/backups");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("sift.tar"), &archive).unwrap();
    restore(&s, "stored", "", "backups/sift.tar", &[])
        .await
        .unwrap();

    let everything = |c: &'static str| {
        let q = q.clone();
        async move {
            let mut got = q
                .query()
                .get(q.request(pb::GetRequest {
                    collection: c.into(),
                    ids: (0..10_000).map(pb::PointId::num).collect(),
                    with_payload: true,
                    with_vector: true,
                }))
                .await
                .unwrap()
                .into_inner()
                .points;
            got.sort_by_key(|p| format!("{:?}", p.id));
            got
        }
    };
    let top10 = |c: &'static str| {
        let q = q.clone();
        let queries = set.queries[..100].to_vec();
        async move {
            let mut out = Vec::new();
            for v in queries {
                let hits = q
                    .query()
                    .search(q.request(search(c, v, 10)))
                    .await
                    .unwrap()
                    .into_inner()
                    .hits;
                out.push(
                    hits.into_iter()
                        .map(|h| (h.id, h.score))
                        .collect::<Vec<_>>(),
                );
            }
            out
        }
    };
    let (points, answers) = (everything("sift").await, top10("sift").await);
    assert_eq!(points.len(), 10_000);
    for c in ["copy", "stored"] {
        assert_eq!(count(&s, c).await, 10_000, "{c}");
        assert!(
            everything(c).await == points,
            "{c}: points or payloads differ"
        );
        assert!(top10(c).await == answers, "{c}: a top-10 differs");
    }

    // Refused: an archive whose SHA-256 is not the one named, a name in use, a hostile
    // entry, a broken upload, no `start`, a source named twice, missing or malformed keys.
    let hostile = {
        let mut b = tar::Builder::new(Vec::new());
        let manifest_len = u64::from_str_radix(
            std::str::from_utf8(&archive[124..135])
                .unwrap()
                .trim_end_matches('\0')
                .trim(),
            8,
        )
        .unwrap() as usize;
        let mut h = tar::Header::new_ustar();
        h.set_path("manifest.json").unwrap();
        h.set_size(manifest_len as u64);
        h.set_cksum();
        b.append(&h, &archive[512..512 + manifest_len]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..10].copy_from_slice(b"../../evil");
        h.set_size(4);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        b.into_inner().unwrap()
    };
    let zeros = "0".repeat(64);
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, Code, &'a str);
    let cases: Vec<Case> = vec![
        (
            "other",
            &zeros,
            "",
            archive.clone(),
            Code::InvalidArgument,
            "SHA-256",
        ),
        (
            "other",
            "zz",
            "",
            archive.clone(),
            Code::InvalidArgument,
            "64 hexadecimal",
        ),
        (
            "copy",
            "",
            "",
            archive.clone(),
            Code::AlreadyExists,
            "already exists",
        ),
        (
            "other",
            "",
            "",
            hostile,
            Code::InvalidArgument,
            "not a plain file name",
        ),
        (
            "other",
            "",
            "",
            archive[..archive.len() / 2].to_vec(),
            Code::InvalidArgument,
            "refused",
        ),
        (
            "other",
            "",
            "backups/sift.tar",
            archive.clone(),
            Code::InvalidArgument,
            "not both",
        ),
        (
            "other",
            "",
            "backups/none.tar",
            Vec::new(),
            Code::NotFound,
            "no object",
        ),
        (
            "other",
            "",
            "../sift.tar",
            Vec::new(),
            Code::InvalidArgument,
            "object key",
        ),
    ];
    for (name, sha, key, bytes, code, needle) in cases {
        expect_code(restore(&s, name, sha, key, &bytes).await, code, needle);
    }
    let no_start = pb::RestoreSnapshotRequest {
        part: Some(pb::restore_snapshot_request::Part::Data(
            archive[..512].to_vec(),
        )),
    };
    expect_code(
        q.admin()
            .restore_snapshot(q.request(tokio_stream::iter(vec![no_start])))
            .await,
        Code::InvalidArgument,
        "must be `start`",
    );
    let mut names: Vec<_> = q
        .collections()
        .list_collections(q.request(pb::ListCollectionsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .collections
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["copy", "sift", "stored"]);
    let mut top: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".log"))
        .collect();
    top.sort();
    assert_eq!(
        top,
        ["sift.tar", "storage"],
        "written beside the data directory"
    );
    let mut dirs: Vec<_> = std::fs::read_dir(s.dir.path().join("storage/collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        ["copy", "sift", "stored"],
        "a refused restore left something"
    );
}

fn hit_ids(hits: &[pb::ScoredPoint]) -> Vec<String> {
    hits.iter()
        .map(|h| h.id.as_ref().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_search_and_the_hybrid_query_through_the_stack_and_their_refusals() {
    let s = Stack::start().await;
    let (q, i) = (s.q(), s.i());
    let sv = |indices: Vec<u32>, values: Vec<f32>| pb::SparseVector { indices, values };
    // Refused specs: a bad name, a name twice.
    for (names, needle) in [
        (vec!["a b"], "vector name `a b`"),
        (vec!["kw", "kw"], "declared twice"),
    ] {
        expect_code(
            q.collections()
                .create_collection(pb::CreateCollectionRequest {
                    sparse_vectors: names.iter().map(|n| n.to_string()).collect(),
                    ..create("h", 2, pb::Metric::L2)
                })
                .await,
            Code::InvalidArgument,
            needle,
        );
    }
    q.collections()
        .create_collection(pb::CreateCollectionRequest {
            sparse_vectors: vec!["kw".into()],
            ..create("h", 2, pb::Metric::L2)
        })
        .await
        .unwrap();
    let points: Vec<pb::Point> = (0..20u64)
        .map(|k| pb::Point {
            sparse: [(
                "kw".to_string(),
                sv(
                    vec![(k % 5) as u32, 10 + (k % 3) as u32],
                    vec![1.0 + k as f32 / 100.0, 0.5],
                ),
            )]
            .into(),
            ..point(k, vec![k as f32, 0.0])
        })
        .collect();
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "h".into(),
            points,
        }))
        .await
        .unwrap();
    let sparse_search = |v: pb::SparseVector, k: u32| pb::SearchRequest {
        collection: "h".into(),
        k,
        sparse: Some(pb::SparseQuery {
            name: "kw".into(),
            vector: Some(v),
        }),
        ..Default::default()
    };
    // Index 0 is in points 0, 5, 10, 15, weighted by their number.
    let r = q
        .query()
        .search(q.request(sparse_search(sv(vec![0], vec![2.0]), 10)))
        .await
        .unwrap()
        .into_inner();
    let ids = hit_ids(&r.hits);
    assert_eq!(ids, ["15", "10", "5", "0"]);
    assert!((r.hits[0].score - 2.0 * 1.15).abs() < 1e-5);
    assert!(!r.stats.unwrap().lower_is_closer);
    // Get returns them with the vector.
    let got = q
        .query()
        .get(q.request(pb::GetRequest {
            collection: "h".into(),
            ids: vec![pb::PointId::num(7)],
            with_payload: false,
            with_vector: true,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points[0].sparse["kw"], sv(vec![2, 11], vec![1.07, 0.5]));

    // The hybrid Query: dense [0, 0] ranks 0, 1, 2, ...; the sparse branch 15, 10, 5, 0.
    let query = |fusion: pb::Fusion| pb::QueryRequest {
        collection: "h".into(),
        branches: vec![
            pb::SearchRequest {
                vector: vec![0.0, 0.0],
                k: 20,
                ..Default::default()
            },
            sparse_search(sv(vec![0], vec![1.0]), 20),
        ],
        fusion: fusion as i32,
        k: 3,
        with_payload: false,
        ..Default::default()
    };
    let r = q
        .query()
        .query(q.request(query(pb::Fusion::Rrf)))
        .await
        .unwrap()
        .into_inner();
    let ids = hit_ids(&r.hits);
    // 0: 1/61 + 1/64; 5: 1/66 + 1/63; 10: 1/71 + 1/62; 15: 1/76 + 1/61; 1: 1/62.
    assert_eq!(ids, ["0", "5", "10"]);
    assert_eq!(
        r.branches.iter().map(|b| b.returned).collect::<Vec<_>>(),
        [20, 4]
    );
    assert!(r.branches[0].stats.unwrap().lower_is_closer);
    let r = q
        .query()
        .query(q.request(query(pb::Fusion::Dbsf)))
        .await
        .unwrap()
        .into_inner();
    // Dense distances 0..19 normalize (mean ± 3 sd, flipped) to 0.775 for 0, 0.630 for 5,
    // 0.486 for 10, 0.341 for 15; sparse 1.00 .. 1.15 to 0.277, 0.427, 0.576, 0.725: 15
    // (1.066), 10 (1.062), 5 (1.057), then 0 (1.052).
    let ids = hit_ids(&r.hits);
    assert_eq!(ids, ["15", "10", "5"]);

    // Refused writes and reads change nothing.
    let bad_point = |name: &str, v: pb::SparseVector| pb::UpsertRequest {
        collection: "h".into(),
        points: vec![pb::Point {
            sparse: [(name.to_string(), v)].into(),
            ..point(100, vec![1.0, 1.0])
        }],
    };
    for (req, needle) in [
        (
            bad_point("nope", sv(vec![1], vec![1.0])),
            "no sparse vector `nope`",
        ),
        (
            bad_point("kw", sv(vec![3, 1], vec![1.0, 1.0])),
            "strictly ascending",
        ),
        (
            bad_point("kw", sv(vec![2, 2], vec![1.0, 1.0])),
            "index 2 twice",
        ),
        (
            bad_point("kw", sv(vec![1], vec![f32::NAN])),
            "must be finite",
        ),
        (
            bad_point("kw", sv(vec![1, 2], vec![1.0])),
            "2 indices but 1 values",
        ),
    ] {
        expect_code(
            i.ingest().upsert(i.request(req)).await,
            Code::InvalidArgument,
            needle,
        );
    }
    assert_eq!(count(&s, "h").await, 20);
    let mut both = sparse_search(sv(vec![1], vec![1.0]), 3);
    both.vector = vec![1.0, 1.0];
    for (req, needle) in [
        (
            pb::SearchRequest {
                sparse: Some(pb::SparseQuery {
                    name: "other".into(),
                    vector: Some(sv(vec![1], vec![1.0])),
                }),
                ..sparse_search(sv(vec![], vec![]), 3)
            },
            "no sparse vector `other`",
        ),
        (both, "either `vector` or `sparse`"),
        (sparse_search(sv(vec![], vec![]), 3), "no entries"),
        (
            sparse_search(sv(vec![5, 4], vec![1.0, 1.0]), 3),
            "strictly ascending",
        ),
    ] {
        expect_code(
            q.query().search(q.request(req)).await,
            Code::InvalidArgument,
            needle,
        );
    }
    let mut nine = query(pb::Fusion::Rrf);
    nine.branches = (0..9).map(|_| nine.branches[0].clone()).collect();
    let mut other = query(pb::Fusion::Rrf);
    other.branches[1].collection = "elsewhere".into();
    let mut with_payload = query(pb::Fusion::Rrf);
    with_payload.branches[0].with_payload = true;
    let mut weights = query(pb::Fusion::Rrf);
    weights.weights = vec![1.0];
    let mut negative = query(pb::Fusion::Rrf);
    negative.weights = vec![1.0, -1.0];
    let mut fusion = query(pb::Fusion::Rrf);
    fusion.fusion = 7;
    let mut bad_branch = query(pb::Fusion::Rrf);
    bad_branch.branches[1] = sparse_search(sv(vec![1], vec![f32::INFINITY]), 3);
    let mut wrong_dim = query(pb::Fusion::Rrf);
    wrong_dim.branches[0].vector = vec![1.0, 2.0, 3.0];
    for (req, needle) in [
        (nine, "branches must be between 1 and 8"),
        (other, "branch #1: names collection `elsewhere`"),
        (with_payload, "branch #0: sets with_payload"),
        (weights, "1 weights for 2 branches"),
        (negative, "weight #1 is -1"),
        (fusion, "fusion must be RRF or DBSF"),
        (bad_branch, "branch #1: query: sparse vector `kw`"),
        (wrong_dim, "branch #0: query: vector has 3 components"),
    ] {
        expect_code(
            q.query().query(q.request(req)).await,
            Code::InvalidArgument,
            needle,
        );
    }
}

/// Named dense vectors (declared with their own dimension and metric, carried by some points,
/// searched by name, returned with the vector, a Query branch) and UpdateVectors (replacing
/// one kind of vector, keeping the rest), through the real binaries; each refusal changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_vectors_and_update_vectors_through_the_stack_and_their_refusals() {
    let s = Stack::start().await;
    let (q, i) = (s.q(), s.i());
    let params = |dimension: u32, metric: pb::Metric| pb::NamedVectorParams {
        dimension,
        metric: metric as i32,
        ..Default::default()
    };
    // Refused specs: a name both sparse and dense, a dimension of 0, nine names, binary
    // codes of an L2 vector, an unknown datatype.
    for (vectors, needle) in [
        (
            vec![(
                "img",
                pb::NamedVectorParams {
                    quantization: pb::Quantization::Binary as i32,
                    ..params(3, pb::Metric::L2)
                },
            )],
            "named vector `img`: BINARY quantization serves COSINE and DOT",
        ),
        (
            vec![(
                "img",
                pb::NamedVectorParams {
                    datatype: 7,
                    ..params(3, pb::Metric::L2)
                },
            )],
            "named vector `img`: datatype must be FLOAT32 or FLOAT16",
        ),
        (
            vec![("kw", params(3, pb::Metric::Cosine))],
            "both as a sparse",
        ),
        (vec![("img", params(0, pb::Metric::Cosine))], "dimension"),
        (
            (0..9)
                .map(|n| {
                    (
                        ["a", "b", "c", "d", "e", "f", "g", "h", "i"][n],
                        params(2, pb::Metric::L2),
                    )
                })
                .collect(),
            "9 named vectors, over the limit of 8",
        ),
    ] {
        expect_code(
            q.collections()
                .create_collection(pb::CreateCollectionRequest {
                    sparse_vectors: vec!["kw".into()],
                    vectors: vectors
                        .into_iter()
                        .map(|(n, p)| (n.to_string(), p))
                        .collect(),
                    ..create("nv", 2, pb::Metric::L2)
                })
                .await,
            Code::InvalidArgument,
            needle,
        );
    }
    let info = q
        .collections()
        .create_collection(pb::CreateCollectionRequest {
            sparse_vectors: vec!["kw".into()],
            vectors: [
                ("img".to_string(), params(3, pb::Metric::Cosine)),
                // Kept as float16 and walked through int8 codes once indexed.
                (
                    "pos".to_string(),
                    pb::NamedVectorParams {
                        datatype: pb::VectorDatatype::Float16 as i32,
                        quantization: pb::Quantization::Int8 as i32,
                        ..params(2, pb::Metric::L2)
                    },
                ),
            ]
            .into(),
            ..create("nv", 2, pb::Metric::L2)
        })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    assert_eq!(info.vectors["img"].dimension, 3);
    assert_eq!(info.vectors["pos"].hnsw.unwrap().m, Some(16));
    let kind = |v: &pb::NamedVectorParams| (v.datatype(), v.quantization());
    assert_eq!(
        kind(&info.vectors["img"]),
        (pb::VectorDatatype::Float32, pb::Quantization::None)
    );
    assert_eq!(
        kind(&info.vectors["pos"]),
        (pb::VectorDatatype::Float16, pb::Quantization::Int8)
    );
    let dense = |values: Vec<f32>| pb::DenseVector { values };
    // `img` on even points, `pos` on every third.
    let points: Vec<pb::Point> = (0..20u64)
        .map(|k| {
            let mut vectors = std::collections::HashMap::new();
            if k % 2 == 0 {
                vectors.insert("img".to_string(), dense(vec![1.0, k as f32 / 10.0, 0.0]));
            }
            if k % 3 == 0 {
                vectors.insert("pos".to_string(), dense(vec![k as f32, k as f32]));
            }
            pb::Point {
                vectors,
                payload: Some(akidb_storage::convert::payload_to_pb(
                    serde_json::json!({"k": k}).as_object().unwrap(),
                )),
                ..point(k, vec![k as f32, 0.0])
            }
        })
        .collect();
    i.ingest()
        .upsert(i.request(pb::UpsertRequest {
            collection: "nv".into(),
            points,
        }))
        .await
        .unwrap();
    let named = |name: &str, v: Vec<f32>, k: u32| pb::SearchRequest {
        vector_name: name.into(),
        ..search("nv", v, k)
    };
    let r = q
        .query()
        .search(q.request(named("pos", vec![0.0, 0.0], 5)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hit_ids(&r.hits), ["0", "3", "6", "9", "12"]);
    assert!((r.hits[1].score - 18f32.sqrt()).abs() < 1e-4);
    assert!(r.stats.unwrap().lower_is_closer);
    let r = q
        .query()
        .search(q.request(named("img", vec![1.0, 0.0, 0.0], 3)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hit_ids(&r.hits), ["0", "2", "4"]);
    assert!((r.hits[0].score - 1.0).abs() < 1e-5);
    assert!(!r.stats.unwrap().lower_is_closer);
    let get = |id: u64| pb::GetRequest {
        collection: "nv".into(),
        ids: vec![pb::PointId::num(id)],
        with_payload: true,
        with_vector: true,
    };
    let p = q
        .query()
        .get(q.request(get(6)))
        .await
        .unwrap()
        .into_inner()
        .points
        .remove(0);
    assert_eq!(p.vectors["pos"].values, [6.0, 6.0]);
    let n = (1.0f32 + 0.36).sqrt();
    assert!(
        p.vectors["img"]
            .values
            .iter()
            .zip([1.0 / n, 0.6 / n, 0.0])
            .all(|(a, b)| (a - b).abs() < 1e-6)
    );
    // A Query branch names its vector.
    let r = q
        .query()
        .query(q.request(pb::QueryRequest {
            collection: "nv".into(),
            branches: vec![pb::SearchRequest {
                collection: String::new(),
                ..named("pos", vec![18.0, 18.0], 10)
            }],
            k: 2,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hit_ids(&r.hits), ["18", "15"]);

    // UpdateVectors: point 1 gets `pos`, point 19 a new unnamed vector; the rest stays.
    let update = |id: u64, vector: Vec<f32>, vectors: Vec<(&str, Vec<f32>)>| pb::PointVectors {
        id: Some(pb::PointId::num(id)),
        vector,
        vectors: vectors
            .into_iter()
            .map(|(n, v)| (n.to_string(), dense(v)))
            .collect(),
        sparse: Default::default(),
    };
    let r = i
        .ingest()
        .update_vectors(i.request(pb::UpdateVectorsRequest {
            collection: "nv".into(),
            points: vec![
                update(1, vec![], vec![("pos", vec![0.1, 0.1])]),
                update(19, vec![0.5, 0.0], vec![]),
            ],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.updated, 2);
    let check_after = || async {
        let r = q
            .query()
            .search(q.request(named("pos", vec![0.0, 0.0], 2)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(hit_ids(&r.hits), ["0", "1"]);
        let r = q
            .query()
            .search(q.request(search("nv", vec![0.4, 0.0], 2)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(hit_ids(&r.hits), ["19", "0"]);
        let p = q
            .query()
            .get(q.request(get(1)))
            .await
            .unwrap()
            .into_inner()
            .points
            .remove(0);
        assert_eq!(p.vector, [1.0, 0.0]);
        assert_eq!(p.vectors.len(), 1);
        // As float16 keeps 0.1.
        assert_eq!(p.vectors["pos"].values, [0.099975586, 0.099975586]);
        let p = q
            .query()
            .get(q.request(get(19)))
            .await
            .unwrap()
            .into_inner()
            .points
            .remove(0);
        assert_eq!(p.vector, [0.5, 0.0]);
        assert!(p.vectors.is_empty());
        assert_eq!(
            p.payload.unwrap().fields["k"].kind,
            Some(akidb_proto::prost_types::value::Kind::NumberValue(19.0))
        );
    };
    check_after().await;

    // Refusals, each changing nothing.
    let bad = |p: pb::PointVectors| pb::UpdateVectorsRequest {
        collection: "nv".into(),
        points: vec![update(1, vec![], vec![("pos", vec![5.0, 5.0])]), p],
    };
    for (req, code, needle) in [
        (
            bad(update(999, vec![], vec![("pos", vec![1.0, 1.0])])),
            Code::NotFound,
            "has no point 999",
        ),
        (
            bad(update(2, vec![], vec![("nope", vec![1.0, 1.0])])),
            Code::InvalidArgument,
            "no named vector `nope`",
        ),
        (
            bad(update(2, vec![], vec![("img", vec![1.0, 1.0])])),
            Code::InvalidArgument,
            "declares it with dimension 3",
        ),
        (
            bad(update(2, vec![], vec![("pos", vec![f32::NAN, 1.0])])),
            Code::InvalidArgument,
            "must be finite",
        ),
        (
            bad(update(2, vec![], vec![])),
            Code::InvalidArgument,
            "gives no vector to replace",
        ),
        (
            bad(update(2, vec![1.0, 2.0, 3.0], vec![])),
            Code::InvalidArgument,
            "dimension 2",
        ),
    ] {
        expect_code(
            i.ingest().update_vectors(i.request(req)).await,
            code,
            needle,
        );
    }
    expect_code(
        i.ingest()
            .upsert(i.request(pb::UpsertRequest {
                collection: "nv".into(),
                points: vec![pb::Point {
                    vectors: [("pos".to_string(), dense(vec![1.0]))].into(),
                    ..point(1, vec![9.0, 9.0])
                }],
            }))
            .await,
        Code::InvalidArgument,
        "declares it with dimension 2",
    );
    // Beyond float16's range for the float16 `pos`.
    expect_code(
        i.ingest()
            .upsert(i.request(pb::UpsertRequest {
                collection: "nv".into(),
                points: vec![pb::Point {
                    vectors: [("pos".to_string(), dense(vec![1.0, 70_000.0]))].into(),
                    ..point(1, vec![9.0, 9.0])
                }],
            }))
            .await,
        Code::InvalidArgument,
        "point 1, named vector `pos`: component 1 is 70000, outside the float16 range",
    );
    for (req, needle) in [
        (named("nope", vec![1.0, 1.0], 3), "no named vector `nope`"),
        (
            named("img", vec![1.0, 1.0], 3),
            "declares it with dimension 3",
        ),
        (
            pb::SearchRequest {
                sparse: Some(pb::SparseQuery {
                    name: "kw".into(),
                    vector: Some(pb::SparseVector {
                        indices: vec![1],
                        values: vec![1.0],
                    }),
                }),
                ..named("pos", vec![], 3)
            },
            "not both",
        ),
    ] {
        expect_code(
            q.query().search(q.request(req)).await,
            Code::InvalidArgument,
            needle,
        );
    }
    check_after().await;
}
