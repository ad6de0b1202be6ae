//! Client commands: health, collections, upsert, search, SLOs.

use crate::global::{Global, emit, link, table};
use crate::{filter, jsonl, payload};
use akidb_client::Link;
use akidb_client::dataset;
use akidb_proto::v1 as pb;
use anyhow::{Context, bail};
use comfy_table::Table;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

pub async fn health(g: &Global) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let mut rows = vec![];
    let mut all = true;
    for (name, addr) in [
        ("query", &g.query_addr),
        ("ingest", &g.ingest_addr),
        ("storage", &g.storage_addr),
        ("telemetry", &g.telemetry_addr),
    ] {
        let l = Link::new(addr, Duration::from_secs(2))?;
        let status = match l
            .health()
            .check(l.request(HealthCheckRequest {
                service: String::new(),
            }))
            .await
        {
            Ok(r) => ServingStatus::try_from(r.into_inner().status)
                .map(|s| s.as_str_name().to_string())
                .unwrap_or_default(),
            Err(e) => format!("UNREACHABLE ({})", e.message()),
        };
        all &= status == "SERVING";
        rows.push((name, addr.clone(), status));
    }
    emit(
        g,
        json!(
            rows.iter()
                .map(|(n, a, s)| json!({"service": n, "addr": a, "status": s}))
                .collect::<Vec<_>>()
        ),
        || {
            let mut t = table(&["service", "address", "status"]);
            for (n, a, s) in &rows {
                t.add_row(vec![n.to_string(), a.clone(), s.clone()]);
            }
            t
        },
    );
    if !all {
        bail!("not every service is SERVING");
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum CollectionCmd {
    /// Create a collection.
    Create {
        name: String,
        #[arg(long)]
        dimension: u32,
        #[arg(long, value_parser = ["cosine", "l2", "dot"])]
        metric: String,
        /// HNSW links per node.
        #[arg(long)]
        m: Option<u32>,
        /// HNSW build candidate list size.
        #[arg(long)]
        ef_construction: Option<u32>,
        /// Keep it in memory whatever the tier policy says.
        #[arg(long)]
        pin: bool,
        /// How vectors are stored: float32, or float16 (half the memory, each component
        /// rounded to 11 significant bits).
        #[arg(long, default_value = "float32", value_parser = ["float32", "float16"])]
        datatype: String,
        /// What the graphs walk: none (the vectors), int8 (one byte a component) or binary
        /// (one bit a component; cosine and dot only). Quantized searches rescore the best
        /// candidates with the vectors.
        #[arg(long, default_value = "none", value_parser = ["none", "int8", "binary"])]
        quantization: String,
        /// Keep sealed segments' vectors in files mapped from disk, not in memory (pair with
        /// --quantization int8 or binary: graph walks then read only the codes in memory).
        #[arg(long)]
        on_disk: bool,
        /// Shards the points are split into (a cluster of storage nodes: `akidb up
        /// --storage-nodes N`); one storage node takes 1.
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// Copies of each shard on different storage nodes (1 to 5): an owner and followers
        /// that take over when it is lost. One storage node takes 1.
        #[arg(long, default_value_t = 1)]
        replication: u32,
        /// A payload index to keep, `KEY:KIND` (repeatable; KIND one of keyword, integer,
        /// float, bool, datetime, geo, text): filters on KEY start from the points it names.
        #[arg(long = "index", value_name = "KEY:KIND")]
        indexes: Vec<String>,
        /// A sparse vector points may carry besides the dense one, by name (repeatable):
        /// searched with `akidb search --sparse NAME=I:W,...` and fused by `akidb query`.
        #[arg(long = "sparse-vector", value_name = "NAME")]
        sparse_vectors: Vec<String>,
        /// A named dense vector points may carry besides the unnamed one,
        /// `NAME:DIMENSION[:METRIC[:DATATYPE][:QUANTIZATION]]` (repeatable; METRIC cosine, l2
        /// or dot, default cosine; DATATYPE float32 or float16, QUANTIZATION none, int8 or
        /// binary, defaults float32 and none): indexed with its own graphs, searched with
        /// `akidb search --vector-name NAME`.
        #[arg(
            long = "named-vector",
            value_name = "NAME:DIM[:METRIC[:DATATYPE][:QUANT]]"
        )]
        named_vectors: Vec<String>,
    },
    /// List collections.
    List,
    /// Show one collection.
    Get { name: String },
    /// Delete a collection and all its points.
    Delete { name: String },
}

pub fn datatype_of(s: &str) -> pb::VectorDatatype {
    match s {
        "float16" => pb::VectorDatatype::Float16,
        _ => pb::VectorDatatype::Float32,
    }
}

pub fn quantization_of(s: &str) -> pb::Quantization {
    match s {
        "int8" => pb::Quantization::Int8,
        "binary" => pb::Quantization::Binary,
        _ => pb::Quantization::None,
    }
}

pub fn metric_of(s: &str) -> pb::Metric {
    match s {
        "cosine" => pb::Metric::Cosine,
        "l2" => pb::Metric::L2,
        _ => pb::Metric::Dot,
    }
}

fn datatype_name(d: i32) -> &'static str {
    match pb::VectorDatatype::try_from(d) {
        Ok(pb::VectorDatatype::Float16) => "FLOAT16",
        Ok(_) => "FLOAT32",
        Err(_) => "?",
    }
}

fn quantization_name(q: i32) -> &'static str {
    match pb::Quantization::try_from(q) {
        Ok(pb::Quantization::Int8) => "INT8",
        Ok(pb::Quantization::Binary) => "BINARY",
        Ok(_) => "NONE",
        Err(_) => "?",
    }
}

fn info_json(c: &pb::CollectionInfo) -> serde_json::Value {
    json!({
        "name": c.name, "dimension": c.dimension,
        "payload_indexes": c.payload_indexes.iter().map(|(k, v)| (k.clone(), json!(
            pb::PayloadIndexKind::try_from(*v).map(|k| k.as_str_name()).unwrap_or("?")
        ))).collect::<serde_json::Map<_, _>>(),
        "metric": pb::Metric::try_from(c.metric).map(|m| m.as_str_name()).unwrap_or("?"),
        "vectors": c.vectors.iter().map(|(n, v)| (n.clone(), json!({
            "dimension": v.dimension,
            "metric": pb::Metric::try_from(v.metric).map(|m| m.as_str_name()).unwrap_or("?"),
            "datatype": datatype_name(v.datatype),
            "quantization": quantization_name(v.quantization),
        }))).collect::<serde_json::Map<_, _>>(),
        "datatype": datatype_name(c.datatype),
        "quantization": quantization_name(c.quantization),
        "on_disk": c.on_disk, "shards": c.shards, "replication": c.replication,
        "points": c.point_count, "indexed_points": c.indexed_point_count, "segments": c.segment_count,
        "tier": pb::Tier::try_from(c.tier).map(|m| m.as_str_name()).unwrap_or("?"), "pinned": c.pinned, "version": c.version,
    })
}

fn info_table(cs: &[pb::CollectionInfo]) -> Table {
    let mut t = table(&[
        "name",
        "dimension",
        "metric",
        "datatype",
        "quantization",
        "points",
        "indexed",
        "tier",
        "pinned",
    ]);
    for c in cs {
        let j = info_json(c);
        t.add_row(
            [
                "name",
                "dimension",
                "metric",
                "datatype",
                "quantization",
                "points",
                "indexed_points",
                "tier",
                "pinned",
            ]
            .map(|k| {
                j[k].as_str()
                    .map(String::from)
                    .unwrap_or_else(|| j[k].to_string())
            }),
        );
    }
    t
}

pub async fn collection(g: &Global, cmd: CollectionCmd) -> anyhow::Result<()> {
    let l = link(g, &g.query_addr)?;
    let mut c = l.collections();
    match cmd {
        CollectionCmd::Create {
            name,
            dimension,
            metric,
            m,
            ef_construction,
            pin,
            datatype,
            quantization,
            on_disk,
            shards,
            replication,
            indexes,
            sparse_vectors,
            named_vectors,
        } => {
            let vectors = named_vectors
                .iter()
                .map(|v| named_vector_arg(v))
                .collect::<anyhow::Result<_>>()?;
            let payload_indexes = indexes
                .iter()
                .map(|i| payload_index(i))
                .collect::<anyhow::Result<_>>()?;
            let r = c
                .create_collection(l.request(pb::CreateCollectionRequest {
                    name,
                    dimension,
                    metric: metric_of(&metric) as i32,
                    m,
                    ef_construction,
                    pin,
                    datatype: datatype_of(&datatype) as i32,
                    quantization: quantization_of(&quantization) as i32,
                    on_disk,
                    shards,
                    replication,
                    payload_indexes,
                    sparse_vectors,
                    vectors,
                }))
                .await?
                .into_inner();
            let info = r.collection.unwrap_or_default();
            emit(g, info_json(&info), || {
                info_table(std::slice::from_ref(&info))
            });
        }
        CollectionCmd::List => {
            let r = c
                .list_collections(l.request(pb::ListCollectionsRequest {}))
                .await?
                .into_inner();
            emit(
                g,
                json!(r.collections.iter().map(info_json).collect::<Vec<_>>()),
                || info_table(&r.collections),
            );
        }
        CollectionCmd::Get { name } => {
            let info = c
                .get_collection(l.request(pb::GetCollectionRequest { name }))
                .await?
                .into_inner()
                .collection
                .unwrap_or_default();
            emit(g, info_json(&info), || {
                info_table(std::slice::from_ref(&info))
            });
        }
        CollectionCmd::Delete { name } => {
            c.delete_collection(l.request(pb::DeleteCollectionRequest { name: name.clone() }))
                .await?;
            emit(g, json!({"deleted": name}), || {
                let mut t = table(&["deleted"]);
                t.add_row(vec![name.clone()]);
                t
            });
        }
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct UpsertArgs {
    #[arg(long)]
    pub collection: String,
    /// `.fvecs` (ids are row numbers) or JSON lines `{"id":..,"vector":[..],"payload":{..}}`.
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
}

pub async fn upsert(g: &Global, a: UpsertArgs) -> anyhow::Result<()> {
    let points: Vec<pb::Point> = if a.file.extension().is_some_and(|e| e == "fvecs") {
        dataset::read_fvecs(&a.file)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| pb::Point {
                id: Some(pb::PointId::num(i as u64)),
                vector: v,
                payload: None,
                ..Default::default()
            })
            .collect()
    } else {
        jsonl::read_jsonl(&a.file)?
            .into_iter()
            .map(|p| {
                Ok(pb::Point {
                    id: Some(filter::point_id(&p.id)?),
                    vector: p.vector,
                    payload: Some(akidb_storage::convert::payload_to_pb(&p.payload)),
                    sparse: p
                        .sparse
                        .into_iter()
                        .map(|(n, v)| {
                            (
                                n,
                                pb::SparseVector {
                                    indices: v.indices,
                                    values: v.values,
                                },
                            )
                        })
                        .collect(),
                    vectors: p
                        .vectors
                        .into_iter()
                        .map(|(n, values)| (n, pb::DenseVector { values }))
                        .collect(),
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let l = link(g, &g.ingest_addr)?;
    let mut c = l.ingest();
    let bar = if g.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(points.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} points {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let total = points.len();
    for chunk in points.chunks(a.batch_size.max(1)) {
        c.upsert(l.request(pb::UpsertRequest {
            collection: a.collection.clone(),
            points: chunk.to_vec(),
        }))
        .await
        .with_context(|| format!("upserting into `{}`", a.collection))?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    emit(
        g,
        json!({"upserted": total, "seconds": secs, "points_per_second": total as f64 / secs}),
        || {
            let mut t = table(&["upserted", "seconds", "points/s"]);
            t.add_row(vec![
                total.to_string(),
                format!("{secs:.2}"),
                format!("{:.0}", total as f64 / secs),
            ]);
            t
        },
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct FlushArgs {
    pub collection: String,
    /// Return at once instead of when every graph is built.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(clap::Subcommand)]
pub enum AliasCmd {
    /// Every alias and the collection it names.
    List,
    /// A new alias of a collection: every read and write takes it where it takes the name.
    Create { alias: String, collection: String },
    /// Delete an alias (the collection stays).
    Delete { alias: String },
    /// Point an existing alias at another collection, atomically: every call sees the old
    /// collection or the new one, never neither.
    Swap { alias: String, collection: String },
}

pub async fn alias(g: &Global, cmd: AliasCmd) -> anyhow::Result<()> {
    let l = link(g, &g.query_addr)?;
    let mut c = l.collections();
    let (create, delete) = (pb::AliasAction::create, pb::AliasAction::delete);
    let aliases = match cmd {
        AliasCmd::List => {
            c.list_collections(l.request(pb::ListCollectionsRequest {}))
                .await?
                .into_inner()
                .aliases
        }
        AliasCmd::Create { alias, collection } => {
            update_aliases(&l, vec![create(&alias, &collection)]).await?
        }
        AliasCmd::Delete { alias } => update_aliases(&l, vec![delete(&alias)]).await?,
        AliasCmd::Swap { alias, collection } => {
            update_aliases(&l, vec![delete(&alias), create(&alias, &collection)]).await?
        }
    };
    emit(
        g,
        json!(
            aliases
                .iter()
                .map(|a| json!({"alias": a.alias, "collection": a.collection}))
                .collect::<Vec<_>>()
        ),
        || {
            let mut t = table(&["alias", "collection"]);
            for a in &aliases {
                t.add_row(vec![a.alias.clone(), a.collection.clone()]);
            }
            t
        },
    );
    Ok(())
}

/// One UpdateAliases call (not retried: a retry after a lost reply would answer
/// ALREADY_EXISTS or NOT_FOUND); every alias after it.
async fn update_aliases(l: &Link, actions: Vec<pb::AliasAction>) -> anyhow::Result<Vec<pb::Alias>> {
    Ok(l.collections()
        .update_aliases(l.request(pb::UpdateAliasesRequest { actions }))
        .await
        .context("updating aliases")?
        .into_inner()
        .aliases)
}

/// The points a payload change applies to.
#[derive(clap::Args)]
pub struct PayloadTarget {
    #[arg(long)]
    pub collection: String,
    /// Point ids, comma-separated (unsigned integers or UUIDs).
    #[arg(long, value_delimiter = ',')]
    pub ids: Vec<String>,
    /// JSON filter (as `akidb search --filter`): every point matching it, besides `--ids`.
    #[arg(long)]
    pub filter: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum PayloadCmd {
    /// Merge a JSON object into each payload: its top-level keys replace the same keys; the
    /// others stay. `akidb payload set --collection docs --ids 1,2 '{"tag": "new"}'`
    Set {
        #[command(flatten)]
        at: PayloadTarget,
        payload: String,
    },
    /// Replace each whole payload with a JSON object.
    Overwrite {
        #[command(flatten)]
        at: PayloadTarget,
        payload: String,
    },
    /// Remove keys from each payload; dots reach into nested objects (`a.b`).
    Delete {
        #[command(flatten)]
        at: PayloadTarget,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Remove each whole payload.
    Clear {
        #[command(flatten)]
        at: PayloadTarget,
    },
}

pub async fn payload(g: &Global, cmd: PayloadCmd) -> anyhow::Result<()> {
    use pb::update_payload_request::Change;
    let object = |text: &str| -> anyhow::Result<akidb_proto::prost_types::Struct> {
        let v: serde_json::Value = serde_json::from_str(text).context("the payload is not JSON")?;
        let serde_json::Value::Object(m) = v else {
            bail!("the payload must be a JSON object, like '{{\"tag\": \"new\"}}'");
        };
        Ok(akidb_storage::convert::payload_to_pb(&m))
    };
    let (at, change) = match cmd {
        PayloadCmd::Set { at, payload } => (at, Change::Set(object(&payload)?)),
        PayloadCmd::Overwrite { at, payload } => (at, Change::Overwrite(object(&payload)?)),
        PayloadCmd::Delete { at, keys } => (at, Change::DeleteKeys(pb::PayloadKeys { keys })),
        PayloadCmd::Clear { at } => (at, Change::Clear(true)),
    };
    let ids = at
        .ids
        .iter()
        .map(|s| match s.trim().parse::<u64>() {
            Ok(n) => pb::PointId::num(n),
            Err(_) => pb::PointId::uuid(s.trim()),
        })
        .collect();
    let filter = at.filter.as_deref().map(filter::parse).transpose()?;
    let l = link(g, &g.ingest_addr)?;
    let r = l
        .ingest()
        .update_payload(l.request(pb::UpdatePayloadRequest {
            collection: at.collection.clone(),
            ids,
            filter,
            change: Some(change),
        }))
        .await
        .with_context(|| format!("updating payloads in `{}`", at.collection))?
        .into_inner();
    emit(
        g,
        json!({"updated": r.updated, "sequence": r.sequence}),
        || {
            let mut t = table(&["updated", "sequence"]);
            t.add_row(vec![r.updated.to_string(), r.sequence.to_string()]);
            t
        },
    );
    Ok(())
}

pub async fn flush(g: &Global, a: FlushArgs) -> anyhow::Result<()> {
    let l = link(g, &g.ingest_addr)?;
    let start = std::time::Instant::now();
    let r = l
        .ingest()
        .flush(l.request(pb::FlushRequest {
            collection: a.collection.clone(),
            wait_indexed: !a.no_wait,
        }))
        .await
        .with_context(|| format!("flushing `{}`", a.collection))?
        .into_inner();
    let secs = start.elapsed().as_secs_f64();
    emit(
        g,
        json!({"sealed_points": r.sealed_points, "indexed_point_count": r.indexed_point_count,
               "point_count": r.point_count, "seconds": secs}),
        || {
            let mut t = table(&["sealed", "indexed", "points", "seconds"]);
            t.add_row(vec![
                r.sealed_points.to_string(),
                r.indexed_point_count.to_string(),
                r.point_count.to_string(),
                format!("{secs:.2}"),
            ]);
            t
        },
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct SearchArgs {
    #[arg(long)]
    pub collection: String,
    /// Comma-separated components.
    #[arg(long, conflicts_with_all = ["query_file", "sparse"])]
    pub vector: Option<String>,
    /// Search the named dense vector of this name with --vector or --query-file (instead of
    /// the unnamed one).
    #[arg(long, conflicts_with = "sparse")]
    pub vector_name: Option<String>,
    /// Search by a sparse vector instead: `NAME=INDEX:WEIGHT,...` (indices ascending).
    #[arg(long, value_name = "NAME=I:W,...", conflicts_with = "query_file")]
    pub sparse: Option<String>,
    /// Search with the rows of an .fvecs file (prints one result table per row; --limit rows).
    #[arg(long)]
    pub query_file: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub limit: usize,
    #[arg(long, default_value_t = 10)]
    pub k: u32,
    #[arg(long)]
    pub ef: Option<u32>,
    /// Quantized collections: candidates rescored per result (1 to 16).
    #[arg(long)]
    pub oversampling: Option<f32>,
    /// JSON filter, see `akidb search --help` and README.
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long)]
    pub with_payload: bool,
    /// Exact search over every point.
    #[arg(long)]
    pub exact: bool,
}

/// `--named-vector NAME:DIMENSION[:METRIC[:DATATYPE][:QUANTIZATION]]`.
fn named_vector_arg(s: &str) -> anyhow::Result<(String, pb::NamedVectorParams)> {
    const FORM: &str = "NAME:DIMENSION[:METRIC[:DATATYPE][:QUANTIZATION]]";
    let mut parts = s.split(':');
    let (Some(name), Some(dim)) = (parts.next(), parts.next()) else {
        bail!("--named-vector takes {FORM}, got `{s}`");
    };
    let dimension = dim
        .trim()
        .parse()
        .with_context(|| format!("--named-vector `{s}`: `{dim}` is not a dimension"))?;
    let metric = match parts.next().unwrap_or("cosine") {
        m @ ("cosine" | "l2" | "dot") => metric_of(m) as i32,
        m => bail!("--named-vector `{s}`: metric `{m}` is not cosine, l2 or dot"),
    };
    let (mut datatype, mut quantization) = (None, None);
    for p in parts {
        match p {
            "float32" | "float16" if datatype.is_none() => datatype = Some(datatype_of(p)),
            "none" | "int8" | "binary" if quantization.is_none() => {
                quantization = Some(quantization_of(p))
            }
            _ => bail!(
                "--named-vector `{s}`: `{p}` is not a datatype (float32, float16) or a quantization (none, int8, binary) not given already; the form is {FORM}"
            ),
        }
    }
    let params = pb::NamedVectorParams {
        dimension,
        metric,
        hnsw: None,
        datatype: datatype.unwrap_or(pb::VectorDatatype::Float32) as i32,
        quantization: quantization.unwrap_or(pb::Quantization::None) as i32,
    };
    Ok((name.trim().to_string(), params))
}

/// `--vector`'s comma-separated components.
fn dense_arg(v: &str) -> anyhow::Result<Vec<f32>> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<f32>()
                .with_context(|| format!("`{x}` is not a number"))
        })
        .collect()
}

/// `--sparse NAME=INDEX:WEIGHT,...`, sent as written (the server checks the order).
fn sparse_arg(s: &str) -> anyhow::Result<pb::SparseQuery> {
    let (name, entries) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--sparse takes NAME=INDEX:WEIGHT,..., got `{s}`"))?;
    let mut v = pb::SparseVector::default();
    for e in entries.split(',').filter(|e| !e.trim().is_empty()) {
        let (i, w) = e
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--sparse entry `{e}` is not INDEX:WEIGHT"))?;
        v.indices.push(
            i.trim()
                .parse()
                .with_context(|| format!("`{i}` is not an index (0 to 4294967295)"))?,
        );
        v.values.push(
            w.trim()
                .parse()
                .with_context(|| format!("`{w}` is not a number"))?,
        );
    }
    Ok(pb::SparseQuery {
        name: name.trim().to_string(),
        vector: Some(v),
    })
}

pub async fn search(g: &Global, a: SearchArgs) -> anyhow::Result<()> {
    let sparse = a.sparse.as_deref().map(sparse_arg).transpose()?;
    let vectors = match (&a.vector, &a.query_file, &sparse) {
        (Some(v), _, _) => vec![dense_arg(v)?],
        (None, Some(f), _) => dataset::read_fvecs(f)?.into_iter().take(a.limit).collect(),
        (None, None, Some(_)) => vec![vec![]],
        (None, None, None) => bail!("give --vector, --sparse or --query-file"),
    };
    let filter = a.filter.as_deref().map(filter::parse).transpose()?;
    let l = link(g, &g.query_addr)?;
    let mut c = l.query();
    let mut out = vec![];
    for v in vectors {
        let r = c
            .search(l.request(pb::SearchRequest {
                collection: a.collection.clone(),
                vector: v,
                k: a.k,
                filter: filter.clone(),
                ef: a.ef,
                with_payload: a.with_payload,
                with_vector: false,
                exact: a.exact,
                oversampling: a.oversampling,
                sparse: sparse.clone(),
                vector_name: a.vector_name.clone().unwrap_or_default(),
            }))
            .await?
            .into_inner();
        out.push(r);
    }
    let as_json = |r: &pb::SearchResponse| {
        json!({
            "hits": hits_json(&r.hits),
            "stats": r.stats.as_ref().map(|s| json!({
                "tier": pb::Tier::try_from(s.tier).map(|t| t.as_str_name()).unwrap_or("?"), "loaded": s.loaded,
                "points_exact": s.points_exact, "points_graph": s.points_graph, "cache_hit": s.cache_hit})),
        })
    };
    let value = if out.len() == 1 {
        as_json(&out[0])
    } else {
        json!(out.iter().map(as_json).collect::<Vec<_>>())
    };
    emit(g, value, || {
        let mut t = table(&["query", "rank", "id", "score", "payload"]);
        for (qi, r) in out.iter().enumerate() {
            for (i, h) in r.hits.iter().enumerate() {
                let mut row = vec![qi.to_string()];
                row.extend(hit_cells(i, h, 4));
                t.add_row(row);
            }
        }
        t
    });
    Ok(())
}

/// Hits as `--json` prints them.
fn hits_json(hits: &[pb::ScoredPoint]) -> serde_json::Value {
    json!(
        hits.iter()
            .map(|h| json!({
            "id": h.id.as_ref().map(|i| i.to_string()), "score": h.score,
            "payload": h.payload.as_ref().map(payload::from_struct)}))
            .collect::<Vec<_>>()
    )
}

/// The rank (from 1), id, score (to `digits` decimals) and payload cells of hit `i`.
fn hit_cells(i: usize, h: &pb::ScoredPoint, digits: usize) -> Vec<String> {
    vec![
        (i + 1).to_string(),
        h.id.as_ref().map(|i| i.to_string()).unwrap_or_default(),
        format!("{:.digits$}", h.score),
        h.payload
            .as_ref()
            .map(|p| payload::from_struct(p).to_string())
            .unwrap_or_default(),
    ]
}

/// `akidb query`: a hybrid search, several searches fused by the server.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[arg(long)]
    pub collection: String,
    /// A dense branch: comma-separated components, after `NAME=` to search a named vector
    /// (repeatable).
    #[arg(long = "vector", value_name = "X,Y,...")]
    pub vectors: Vec<String>,
    /// A sparse branch: `NAME=INDEX:WEIGHT,...` (repeatable).
    #[arg(long = "sparse", value_name = "NAME=I:W,...")]
    pub sparse: Vec<String>,
    /// How the branches' rankings are fused: rrf (reciprocal rank) or dbsf (normalized scores).
    #[arg(long, default_value = "rrf", value_parser = ["rrf", "dbsf"])]
    pub fusion: String,
    /// One weight per branch (repeatable; dense branches first, then sparse, each in the order
    /// given); default 1 each.
    #[arg(long = "weight")]
    pub weights: Vec<f32>,
    /// Results of the fused ranking.
    #[arg(long, default_value_t = 10)]
    pub k: u32,
    /// Results each branch contributes (default: twice k).
    #[arg(long)]
    pub branch_k: Option<u32>,
    /// JSON filter applied in every branch.
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long)]
    pub with_payload: bool,
}

pub async fn query(g: &Global, a: QueryArgs) -> anyhow::Result<()> {
    let filter = a.filter.as_deref().map(filter::parse).transpose()?;
    let branch = pb::SearchRequest {
        k: a.branch_k
            .unwrap_or((a.k.saturating_mul(2)).min(*akidb_proto::limits::K.end() as u32)),
        filter,
        ..Default::default()
    };
    let mut branches = Vec::new();
    for v in &a.vectors {
        let (vector_name, v) = match v.split_once('=') {
            Some((name, v)) => (name.trim().to_string(), v),
            None => (String::new(), v.as_str()),
        };
        branches.push(pb::SearchRequest {
            vector: dense_arg(v)?,
            vector_name,
            ..branch.clone()
        });
    }
    for s in &a.sparse {
        branches.push(pb::SearchRequest {
            sparse: Some(sparse_arg(s)?),
            ..branch.clone()
        });
    }
    if branches.is_empty() {
        bail!("give at least one --vector or --sparse branch");
    }
    let l = link(g, &g.query_addr)?;
    let r = l
        .query()
        .query(l.request(pb::QueryRequest {
            collection: a.collection,
            branches,
            fusion: match a.fusion.as_str() {
                "dbsf" => pb::Fusion::Dbsf,
                _ => pb::Fusion::Rrf,
            } as i32,
            weights: a.weights,
            k: a.k,
            with_payload: a.with_payload,
            with_vector: false,
            rrf_k: None,
        }))
        .await?
        .into_inner();
    let value = json!({
        "hits": hits_json(&r.hits),
        "branches": r.branches.iter().map(|b| json!({
            "returned": b.returned,
            "points_exact": b.stats.as_ref().map_or(0, |s| s.points_exact),
            "points_graph": b.stats.as_ref().map_or(0, |s| s.points_graph),
            "sparse_scored": b.stats.as_ref().map_or(0, |s| s.sparse_scored),
        })).collect::<Vec<_>>(),
        "partial": r.partial,
    });
    emit(g, value, || {
        let mut t = table(&["rank", "id", "score", "payload"]);
        for (i, h) in r.hits.iter().enumerate() {
            t.add_row(hit_cells(i, h, 5));
        }
        t
    });
    Ok(())
}

pub async fn slo(g: &Global) -> anyhow::Result<()> {
    // Through the query service, which forwards to the aggregator.
    let l = link(g, &g.query_addr)?;
    let r = l
        .telemetry()
        .get_slo_status(l.request(pb::GetSloStatusRequest {}))
        .await?
        .into_inner();
    let value = json!(r.slos.iter().map(|s| json!({
        "name": s.name, "objective": s.objective, "period": s.period,
        "error_budget_remaining": s.error_budget_remaining, "page": s.page_alert, "ticket": s.ticket_alert,
        "windows": s.windows.iter().map(|w| json!({"window": w.window, "sli": w.sli, "burn_rate": w.burn_rate,
            "total": w.total_events, "good": w.good_events})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>());
    emit(g, value, || {
        let mut t = table(&[
            "slo",
            "objective",
            "sli 1h",
            "burn 1h",
            "burn 6h",
            "budget left",
            "alert",
        ]);
        for s in &r.slos {
            let w = |name: &str| s.windows.iter().find(|w| w.window == name);
            let alert = match (s.page_alert, s.ticket_alert) {
                (true, _) => "PAGE",
                (false, true) => "TICKET",
                _ => "ok",
            };
            t.add_row(vec![
                s.name.clone(),
                format!("{:.4}", s.objective),
                w("1h").map(|w| format!("{:.5}", w.sli)).unwrap_or_default(),
                w("1h")
                    .map(|w| format!("{:.2}", w.burn_rate))
                    .unwrap_or_default(),
                w("6h")
                    .map(|w| format!("{:.2}", w.burn_rate))
                    .unwrap_or_default(),
                format!("{:.1}%", s.error_budget_remaining * 100.0),
                alert.into(),
            ]);
        }
        t
    });
    Ok(())
}

/// `KEY:KIND` of `--index`.
fn payload_index(spec: &str) -> anyhow::Result<(String, i32)> {
    use pb::PayloadIndexKind as P;
    let (key, kind) = spec
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--index takes KEY:KIND, got `{spec}`"))?;
    let kind = match kind {
        "keyword" => P::PayloadIndexKeyword,
        "integer" => P::PayloadIndexInteger,
        "float" => P::PayloadIndexFloat,
        "bool" => P::PayloadIndexBool,
        "datetime" => P::PayloadIndexDatetime,
        "geo" => P::PayloadIndexGeo,
        "text" => P::PayloadIndexText,
        other => anyhow::bail!(
            "--index {key}:{other}: the kind is one of keyword, integer, float, bool, datetime, geo, text"
        ),
    };
    Ok((key.to_string(), kind as i32))
}
