//! Entry points for the fuzz targets in `fuzz/` at the repository root (`scripts/fuzz`).
//! Hidden from the docs and not an API: they change with the targets. Each is a thin wrapper
//! that reaches, without a file system, a decoder the service runs on bytes from disk or the
//! network, or the encoder that decoder must agree with. How the service decodes is unchanged:
//! these call the same functions its own paths call.
//!
//! Public already and used by the targets directly: [`crate::wal::WalOp::decode`] and
//! `encode`, [`crate::wal::frame`], [`crate::index::Graph::decode`], `encode` and `search`,
//! [`crate::convert::filter_from_pb`] and [`crate::validate::filter`].

use crate::objstore::dlq::{self, DlqEntry};
use crate::segment::SegmentData;
use crate::snapshot::{self, SnapshotManifest};
use crate::wal::{self, RecoveryMode, ReplayReport, WalOp};
use std::path::Path;

/// What replaying one WAL segment file gave.
#[derive(Debug)]
pub struct WalReplay {
    /// Length of the valid prefix: start-up cuts the file to this length.
    pub good_len: u64,
    /// Records applied, with their sequence numbers, in the order they were applied.
    pub applied: Vec<(u64, WalOp)>,
    pub report: ReplayReport,
}

/// Replay the bytes of one WAL segment file as `Wal::open` replays each of its files:
/// `newest` for the last file (whose torn tail is cut), records at or below `after_seq` (the
/// snapshot's sequence number) skipped, damage handled as `mode` says.
pub fn wal_replay_segment(
    data: &[u8],
    newest: bool,
    mode: RecoveryMode,
    after_seq: u64,
) -> Result<WalReplay, String> {
    let mut report = ReplayReport {
        last_seq: after_seq,
        ..Default::default()
    };
    let mut applied = Vec::new();
    let good_len = wal::replay_segment(
        Path::new("fuzz.wal"),
        data,
        newest,
        mode,
        &mut report,
        &mut |seq, op| {
            applied.push((seq, op));
            Ok(())
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(WalReplay {
        good_len,
        applied,
        report,
    })
}

/// Decode a snapshot segment file (`seg-<id>.pts`): its points and tombstones.
pub fn snapshot_segment_decode(bytes: &[u8]) -> Result<(SegmentData, Vec<bool>), String> {
    snapshot::decode_segment_bytes(bytes)
}

/// Encode a segment as a snapshot writes it (`dim` is the collection's dimension).
pub fn snapshot_segment_encode(data: &SegmentData, deleted: &[bool], dim: usize) -> Vec<u8> {
    let mut out = Vec::new();
    snapshot::encode_segment(&mut out, data, deleted, dim).expect("writing to memory");
    out
}

/// Decode a snapshot's `manifest.json` as `snapshot::read_manifest` does.
pub fn snapshot_manifest_decode(bytes: &[u8]) -> Result<SnapshotManifest, String> {
    snapshot::manifest_from_bytes(bytes)
}

/// Read a snapshot archive as RestoreSnapshot does, into `into` (which must not exist;
/// on an error it may hold part of the archive).
pub fn snapshot_archive_unpack(bytes: &[u8], into: &std::path::Path) -> Result<(), String> {
    crate::archive::unpack(bytes, into)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Decode a dead-letter entry record (`entries/<id>.entry`).
pub fn dlq_record_decode(bytes: &[u8]) -> Result<DlqEntry, String> {
    dlq::decode(bytes)
}

/// Encode a dead-letter entry record as the queue writes it.
pub fn dlq_record_encode(entry: &DlqEntry) -> Vec<u8> {
    dlq::encode(entry)
}

/// The seed corpus of every fuzz target, made by the real code: a real collection's WAL,
/// snapshot segments, graph and manifest, records from the real encoders, the metric
/// catalogue's `/metrics` in both formats, `traceparent` values from the client layer's
/// writer. `AKIDB_FUZZ_WRITE_SEEDS=1 cargo test -p akidb-storage fuzzing::` writes them to
/// `fuzz/corpus/<target>/seed-*`; without it the test checks that each seed is accepted by
/// the decoder it is for (so a format change that breaks the seeds fails here).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::{Collection, CollectionOptions};
    use crate::index::Graph;
    use crate::model::{
        CollectionSpec, Datatype, Metric, Payload, PayloadChange, PointKey, PointRecord,
    };
    use crate::store::CollectionStore;
    use akidb_instrumentation::exposition::{self, Exemplar, Format};
    use akidb_instrumentation::metrics::{Component, Metrics};
    use akidb_instrumentation::propagation::fuzzing::format_traceparent;
    use akidb_proto::v1 as pb;
    use prost::Message;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::fs;

    type Seeds = BTreeMap<&'static str, Vec<(String, Vec<u8>)>>;

    fn payload(v: serde_json::Value) -> Payload {
        v.as_object().unwrap().clone()
    }

    fn points(n: u64, dim: usize, from: u64) -> Vec<PointRecord> {
        (from..from + n)
            .map(|i| PointRecord {
                key: if i % 5 == 0 {
                    PointKey::Uuid(format!("00000000-0000-4000-8000-{i:012}"))
                } else {
                    PointKey::Num(i)
                },
                vector: (0..dim)
                    .map(|d| ((i * 7 + d as u64) % 11) as f32 * 0.25 - 1.0)
                    .collect(),
                payload: match i % 3 {
                    0 => Payload::new(),
                    1 => payload(json!({"color": "red", "n": i, "x": i as f64 * 0.1})),
                    _ => payload(
                        json!({"tags": ["a", "b"], "nested": {"k": i, "ok": true}, "s": null}),
                    ),
                },
                // Every other point carries a sparse vector.
                sparse: (i % 2 == 1)
                    .then(|| {
                        (
                            "kw".to_string(),
                            crate::model::SparseVector {
                                indices: vec![(i % 7) as u32, 10 + (i % 5) as u32],
                                values: vec![i as f32 * 0.5, -1.0],
                            },
                        )
                    })
                    .into_iter()
                    .collect(),
                // Every third point carries a named vector.
                named: (i % 3 == 0)
                    .then(|| ("img".to_string(), vec![i as f32, -0.5, 2.0]))
                    .into_iter()
                    .collect(),
            })
            .collect()
    }

    /// A collection with a sealed, indexed segment and an appendable one: its WAL segment
    /// file before the snapshot, then the snapshot's files.
    fn collection_files(datatype: Datatype, seeds: &mut Seeds) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let spec = CollectionSpec {
            name: "c".into(),
            dimension: 4,
            metric: Metric::Cosine,
            m: 4,
            ef_construction: 16,
            pinned: false,
            datatype,
            quantization: Default::default(),
            on_disk: false,
            payload_indexes: Default::default(),
            sparse_vectors: ["kw".to_string()].into(),
            vectors: [(
                "img".to_string(),
                crate::model::VectorSpec {
                    dimension: 3,
                    metric: Metric::L2,
                    m: 4,
                    ef_construction: 16,
                    // Float16 collections' seeds carry float16 named rows too.
                    datatype,
                    quantization: Default::default(),
                },
            )]
            .into(),
        };
        let opts = CollectionOptions {
            segment_max_points: 1000,
            ..Default::default()
        };
        let c = Collection::create(&dir, spec, opts).unwrap();
        c.upsert(points(12, 4, 1)).unwrap();
        c.upsert(points(6, 4, 20)).unwrap();
        c.delete(&[PointKey::Num(3), PointKey::Num(21)], None)
            .unwrap();
        let mut tag = Payload::new();
        tag.insert("tag".into(), json!({"a": [1, "x"]}));
        c.update_payload(
            &[PointKey::Num(4), PointKey::Num(22)],
            None,
            &PayloadChange::Set(tag),
        )
        .unwrap();
        let dt = datatype.as_str();
        if datatype == Datatype::Float32 {
            let wal = wal::list_segments(&dir.join("wal")).unwrap();
            let file = wal
                .iter()
                .map(|(_, p)| fs::read(p).unwrap())
                .find(|b| !b.is_empty())
                .unwrap();
            // Record bodies, one seed each.
            let mut off = 0;
            let mut bodies = Vec::new();
            while off < file.len() {
                let len = u32::from_le_bytes(file[off..off + 4].try_into().unwrap()) as usize;
                bodies.push(file[off + wal::HEADER_LEN..off + wal::HEADER_LEN + len].to_vec());
                off += wal::HEADER_LEN + len;
            }
            let recs = seeds.entry("wal_record").or_default();
            for (i, b) in bodies.iter().enumerate() {
                recs.push((format!("record-{i}"), b.clone()));
            }
            // Replay inputs: flags (1 newest, 2 skip corrupt, 4 repair checksums), the
            // snapshot's sequence number, the file.
            let with = |flags: u8, after: u8, f: &[u8]| [&[flags, after][..], f].concat();
            let mut torn = file.clone();
            torn.truncate(file.len() - 5);
            let mut flipped = file.clone();
            flipped[wal::HEADER_LEN + 3] ^= 0x10;
            let replay = seeds.entry("wal_replay").or_default();
            replay.push(("segment-newest".into(), with(1, 0, &file)));
            replay.push(("segment-older".into(), with(0, 0, &file)));
            replay.push(("segment-after-1".into(), with(1, 1, &file)));
            replay.push(("segment-torn-tail".into(), with(1, 0, &torn)));
            replay.push(("segment-bit-flip-skip".into(), with(3, 0, &flipped)));
            replay.push(("segment-bit-flip-repaired".into(), with(5, 0, &flipped)));
        }
        c.seal().unwrap();
        c.build_pending().unwrap();
        c.upsert(points(3, 4, 40)).unwrap();
        c.snapshot().unwrap();
        let (snap, manifest) = crate::snapshot::list(&dir).unwrap().pop().unwrap();
        let mut archive = Vec::new();
        crate::archive::write(&snap, &mut archive).unwrap();
        seeds
            .entry("snapshot_archive")
            .or_default()
            .push((format!("archive-{dt}"), archive));
        seeds.entry("snapshot_manifest").or_default().push((
            format!("manifest-{dt}"),
            fs::read(snap.join(snapshot::MANIFEST)).unwrap(),
        ));
        assert!(manifest.segments.iter().any(|s| s.graph_file.is_some()));
        for f in &manifest.files {
            // The graph target decodes graphs of the unnamed vector's dimension.
            if f.name.ends_with(".img.graph") {
                continue;
            }
            let bytes = fs::read(snap.join(&f.name)).unwrap();
            let (target, bytes) = if f.name.ends_with(".pts") {
                ("snapshot_segment", bytes)
            } else {
                // flags: repair the checksum (it is right already)
                ("snapshot_graph", [&[1u8][..], &bytes].concat())
            };
            seeds
                .entry(target)
                .or_default()
                .push((format!("{dt}-{}", f.name), bytes));
        }
    }

    /// Codes files as snapshots write them, for each quantizer and metric it serves (the
    /// metric byte first).
    fn codes_seeds(seeds: &mut Seeds) {
        use crate::model::Quantization;
        let rows: Vec<f32> = points(40, 4, 1)
            .into_iter()
            .flat_map(|p| p.vector)
            .collect();
        for (q, metric, m) in [
            (Quantization::Int8, Metric::L2, 0u8),
            (Quantization::Int8, Metric::Dot, 1),
            (Quantization::Binary, Metric::Cosine, 2),
        ] {
            let c = crate::quantize::Codes::build(
                q,
                metric,
                4,
                crate::distance::Row::F32(&rows),
                40,
                &|o| o % 7 != 3,
            )
            .unwrap();
            let mut bytes = vec![m];
            c.encode(&mut bytes).unwrap();
            seeds
                .entry("snapshot_codes")
                .or_default()
                .push((format!("{}-{metric:?}", q.as_str()), bytes));
        }
    }

    fn dlq_seeds(seeds: &mut Seeds) {
        let entry = DlqEntry {
            id: "5f0c8a9e7f6b4bb19b343c1c1c6a2f10".into(),
            seq: 3,
            key: "snapshots/docs/00000000000000000042-1700000000000/seg-1.pts".into(),
            collection: "docs".into(),
            size_bytes: 4096,
            crc32c: 0xdead_beef,
            attempts: 4,
            first_failed_unix_ms: 1_700_000_000_000,
            next_retry_unix_ms: 1_700_000_016_000,
            last_error: "PUT snapshots/docs/...: connection refused".into(),
            last_error_kind: "transient".into(),
        };
        let rec = dlq_record_encode(&entry);
        let s = seeds.entry("dlq_record").or_default();
        s.push(("entry".into(), [&[0u8][..], &rec].concat()));
        s.push(("entry-repair".into(), [&[1u8][..], &rec].concat()));
    }

    fn exposition_seeds(seeds: &mut Seeds) {
        let s = seeds.entry("exposition").or_default();
        for component in [Component::Storage, Component::Query, Component::Telemetry] {
            let m = Metrics::new(component);
            m.grpc_server_requests
                .with_label_values(&["akidb.v1.StorageService", "Search", "OK"])
                .inc_by(7);
            m.grpc_server_duration
                .with_label_values(&["akidb.v1.StorageService", "Search"])
                .observe(0.012);
            let text = m.render();
            let name = component.as_str();
            s.push((format!("{name}-text"), [&[0u8][..], &text].concat()));
            let om = akidb_instrumentation::http::render_openmetrics(&m);
            s.push((
                format!("{name}-openmetrics"),
                [&[1u8][..], om.as_bytes()].concat(),
            ));
            if component == Component::Storage {
                // The same families with an exemplar on every bucket, as a traced service
                // writes them.
                let fams = exposition::parse(std::str::from_utf8(&text).unwrap()).unwrap();
                let mut out = String::new();
                exposition::write_families(&mut out, Format::OpenMetrics, &fams, |_, s| {
                    s.name.ends_with("_bucket").then(|| Exemplar {
                        labels: vec![(
                            "trace_id".into(),
                            "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                        )],
                        value: 0.0042,
                        timestamp: Some(1_700_000_000.25),
                    })
                });
                s.push((
                    format!("{name}-openmetrics-exemplars"),
                    [&[1u8][..], out.as_bytes()].concat(),
                ));
            }
        }
    }

    /// REST requests the port accepts: a route's index, the query string, NUL, the body.
    fn rest_request_seeds(seeds: &mut Seeds) {
        let s = seeds.entry("rest_request").or_default();
        let routes = akidb_proto::rest::routes();
        let index = |grpc: &str| {
            routes
                .iter()
                .position(|r| r.grpc_path == grpc)
                .unwrap_or_else(|| panic!("no route for {grpc}")) as u8
        };
        let cases: [(&str, &str, &str, &str); 6] = [
            (
                "search",
                "/akidb.v1.QueryService/Search",
                "",
                r#"{"vector": [0.5, -1, 1e-3, "NaN"], "k": 10, "ef": 64, "with_payload": true,
                    "filter": {"must": [{"field": {"key": "tag", "keyword": "red"}},
                    {"field": {"key": "n", "range": {"gte": 1, "lt": 2.5}}}],
                    "min_should": {"conditions": [{"is_empty": {"key": "x"}}], "min_count": 1}}}"#,
            ),
            (
                "upsert",
                "/akidb.v1.IngestService/Upsert",
                "",
                r#"{"points": [{"id": {"num": 18446744073709551615}, "vector": [1, 2],
                    "payload": {"a": null, "b": [1, "x", {"c": true}], "d": -0.0, "e": 1e300},
                    "sparse": {"words": {"indices": [1, 7], "values": [0.5, 2]}},
                    "vectors": {"img": {"values": [3, 4]}}},
                    {"id": {"uuid": "5bf92f35-77b3-4da6-a3ce-929d0e0e4700"}, "vector": [0, 1]}]}"#,
            ),
            (
                "create",
                "/akidb.v1.CollectionService/CreateCollection",
                "",
                r#"{"name": "docs", "dimension": 4, "metric": "COSINE", "m": 16,
                    "quantization": "INT8", "sparse_vectors": ["words"],
                    "vectors": {"img": {"dimension": 2, "metric": 3, "datatype": "FLOAT16"}},
                    "payload_indexes": {"tag": "PAYLOAD_INDEX_KEYWORD"}}"#,
            ),
            (
                "update-payload",
                "/akidb.v1.IngestService/UpdatePayload",
                "",
                r#"{"ids": [{"num": 1}], "set": {"seen": true}}"#,
            ),
            (
                "tiers-query",
                "/akidb.v1.AdminService/TierStatus",
                "collection=docs",
                "",
            ),
            (
                "restore-query",
                "/akidb.v1.AdminService/RestoreSnapshot",
                "start.collection=copy&start.sha256=00",
                "",
            ),
        ];
        for (name, grpc, query, body) in cases {
            let bytes = [&[index(grpc)][..], query.as_bytes(), &[0], body.as_bytes()].concat();
            s.push((name.into(), bytes));
        }
    }

    fn traceparent_seeds(seeds: &mut Seeds) {
        let s = seeds.entry("traceparent").or_default();
        let (hi, lo, span) = (
            0x4bf9_2f35_77b3_4da6,
            0xa3ce_929d_0e0e_4736,
            0x00f0_67aa_0ba9_02b7,
        );
        s.push((
            "sampled".into(),
            format_traceparent(hi, lo, span, true).as_bytes().to_vec(),
        ));
        s.push((
            "not-sampled".into(),
            format_traceparent(hi, lo, span, false).as_bytes().to_vec(),
        ));
        let valid = format_traceparent(hi, lo, span, true).as_bytes().to_vec();
        let with = |at: usize, b: &[u8]| {
            let mut v = valid.clone();
            v.splice(at..at + b.len(), b.iter().copied());
            v
        };
        s.push((
            "version-01-extra".into(),
            [&with(0, b"01")[..], b"-extra"].concat(),
        ));
        s.push(("version-ff".into(), with(0, b"ff")));
        s.push(("zero-trace".into(), with(3, &[b'0'; 32])));
        s.push(("zero-span".into(), with(36, &[b'0'; 16])));
        s.push(("uppercase".into(), with(3, b"4BF9")));
        s.push(("flags-03".into(), with(53, b"03")));
        s.push(("short".into(), valid[..54].to_vec()));
        s.push(("v00-trailing".into(), [&valid[..], b"-x"].concat()));
    }

    fn filter_seeds(seeds: &mut Seeds) {
        use pb::condition::Condition as C;
        use pb::field_condition::Match as M;
        let field = |key: &str, m: M| pb::Condition {
            condition: Some(C::Field(pb::FieldCondition {
                key: key.into(),
                r#match: Some(m),
            })),
        };
        let nested = |f: pb::Filter| pb::Condition {
            condition: Some(C::Filter(f)),
        };
        let f = pb::Filter {
            must: vec![
                field("color", M::Keyword("red".into())),
                field(
                    "x",
                    M::Range(pb::Range {
                        gte: Some(0.1),
                        lt: Some(9.5),
                        ..Default::default()
                    }),
                ),
            ],
            should: vec![
                field("n", M::Integer(3)),
                field(
                    "tags",
                    M::AnyOf(pb::AnyOf {
                        keywords: vec!["x".into(), "z".into()],
                        integers: vec![],
                    }),
                ),
                nested(pb::Filter {
                    must: vec![field("a.b.c", M::Boolean(true))],
                    must_not: vec![pb::Condition {
                        condition: Some(C::HasId(pb::HasIdCondition {
                            ids: vec![
                                pb::PointId::num(7),
                                pb::PointId::uuid("00000000-0000-4000-8000-000000000007"),
                            ],
                        })),
                    }],
                    ..Default::default()
                }),
            ],
            must_not: vec![field(
                "n",
                M::AnyOf(pb::AnyOf {
                    keywords: vec![],
                    integers: vec![1, 2],
                }),
            )],
            // Every other kind, once.
            min_should: Some(pb::MinShould {
                conditions: vec![
                    field(
                        "at",
                        M::DatetimeRange(pb::DatetimeRange {
                            gte: Some("2004-12-31".into()),
                            lt: Some("2005-01-01T12:00:00+02:00".into()),
                            ..Default::default()
                        }),
                    ),
                    field(
                        "geo",
                        M::GeoRadius(pb::GeoRadius {
                            center: Some(pb::GeoPoint {
                                lat: 48.8,
                                lon: 2.3,
                            }),
                            radius_m: 5_000.0,
                        }),
                    ),
                    field(
                        "geo",
                        M::GeoBoundingBox(pb::GeoBoundingBox {
                            top_left: Some(pb::GeoPoint {
                                lat: 60.0,
                                lon: 170.0,
                            }),
                            bottom_right: Some(pb::GeoPoint {
                                lat: 0.0,
                                lon: -170.0,
                            }),
                        }),
                    ),
                    field("q", M::Text("capital city".into())),
                    field("q", M::Phrase("this country".into())),
                    pb::Condition {
                        condition: Some(C::IsEmpty(pb::FieldKey { key: "a.b".into() })),
                    },
                    pb::Condition {
                        condition: Some(C::IsNull(pb::FieldKey { key: "c".into() })),
                    },
                    pb::Condition {
                        condition: Some(C::ValuesCount(pb::ValuesCount {
                            key: "tags".into(),
                            count: Some(pb::Range {
                                gte: Some(2.0),
                                ..Default::default()
                            }),
                        })),
                    },
                ],
                min_count: 2,
            }),
        };
        let s = seeds.entry("filter").or_default();
        s.push(("mixed".into(), [&[0u8][..], &f.encode_to_vec()].concat()));
        // 16 levels: at the limit; wrapped once more: over it.
        let mut deep = pb::Filter {
            must: vec![field("n", M::Integer(1))],
            ..Default::default()
        };
        for _ in 1..akidb_proto::limits::MAX_FILTER_DEPTH {
            deep = pb::Filter {
                must: vec![nested(deep)],
                ..Default::default()
            };
        }
        s.push((
            "depth-limit".into(),
            [&[0u8][..], &deep.encode_to_vec()].concat(),
        ));
        s.push((
            "depth-limit-plus-one".into(),
            [&[1u8][..], &deep.encode_to_vec()].concat(),
        ));
        s.push((
            "wrapped-200".into(),
            [&[200u8][..], &f.encode_to_vec()].concat(),
        ));
        s.push(("empty".into(), vec![0]));
    }

    #[test]
    fn seed_corpus() {
        let mut seeds = Seeds::new();
        collection_files(Datatype::Float32, &mut seeds);
        collection_files(Datatype::Float16, &mut seeds);
        dlq_seeds(&mut seeds);
        exposition_seeds(&mut seeds);
        traceparent_seeds(&mut seeds);
        filter_seeds(&mut seeds);
        codes_seeds(&mut seeds);
        rest_request_seeds(&mut seeds);

        // Each target's decoder accepts its real seeds.
        for (name, bytes) in &seeds["wal_record"] {
            WalOp::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["wal_replay"] {
            let mode = if bytes[0] & 2 != 0 {
                RecoveryMode::SkipCorrupt
            } else {
                RecoveryMode::Strict
            };
            let r = wal_replay_segment(&bytes[2..], bytes[0] & 1 != 0, mode, bytes[1].into());
            if !name.contains("bit-flip") {
                assert!(!r.unwrap().applied.is_empty(), "{name}");
            }
        }
        for (name, bytes) in &seeds["snapshot_segment"] {
            snapshot_segment_decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["snapshot_graph"] {
            Graph::decode(&bytes[1..], Metric::Cosine, 4).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["snapshot_codes"] {
            let metric = [Metric::L2, Metric::Dot, Metric::Cosine][bytes[0].min(2) as usize];
            crate::quantize::Codes::decode(&bytes[1..], metric, 4)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["snapshot_archive"] {
            let into = tempfile::tempdir().unwrap();
            snapshot_archive_unpack(bytes, &into.path().join("s"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["snapshot_manifest"] {
            snapshot_manifest_decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["dlq_record"] {
            dlq_record_decode(&bytes[1..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["exposition"] {
            let format = if bytes[0] == 1 {
                Format::OpenMetrics
            } else {
                Format::Text
            };
            let text = std::str::from_utf8(&bytes[1..]).unwrap();
            exposition::parse_as(text, format).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["filter"] {
            pb::Filter::decode(&bytes[1..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for (name, bytes) in &seeds["rest_request"] {
            let routes = akidb_proto::rest::routes();
            let route = &routes[bytes[0] as usize % routes.len()];
            let nul = 1 + bytes[1..].iter().position(|b| *b == 0).unwrap();
            let query = std::str::from_utf8(&bytes[1..nul]).unwrap();
            let path: Vec<(String, String)> = route
                .path_fields
                .iter()
                .map(|f| (f.clone(), "docs".to_string()))
                .collect();
            akidb_proto::rest::request(route, &path, Some(query), &bytes[nul + 1..])
                .unwrap_or_else(|e| panic!("{name}: {}", e.message()));
        }

        if std::env::var_os("AKIDB_FUZZ_WRITE_SEEDS").is_some() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
            for (target, list) in &seeds {
                let dir = root.join(target);
                fs::create_dir_all(&dir).unwrap();
                for e in fs::read_dir(&dir).unwrap() {
                    let p = e.unwrap().path();
                    if p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("seed-")
                    {
                        fs::remove_file(p).unwrap();
                    }
                }
                for (name, bytes) in list {
                    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
                }
            }
        }
    }
}
