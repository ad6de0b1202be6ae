//! The REST/JSON port on the real binaries: every kind of call answers as its gRPC method
//! does (same results, same checks, same codes as HTTP statuses with a JSON error), bad JSON
//! and oversized bodies are refused with nothing changed, calls are counted in the gRPC
//! metrics, snapshots go out and back in as archives, and `/openapi.json` is the document.

mod common;

use akidb_proto::v1 as pb;
use common::*;
use serde_json::{Value, json};

struct Rest {
    client: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Rest {
    fn new(s: &Stack) -> Rest {
        let (client, scheme) = http_client();
        Rest {
            client,
            base: format!("{scheme}://127.0.0.1:{}", s.rest_port),
            key: None,
        }
    }

    fn with_key(&self, key: &str) -> Rest {
        Rest {
            client: self.client.clone(),
            base: self.base.clone(),
            key: Some(key.to_string()),
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let mut r = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(k) = &self.key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: {status} `{text}` is not JSON: {e}"));
        (status, v)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.send(method, path, Some(body.to_string().into_bytes()))
            .await
    }

    /// A call that must succeed: its JSON.
    async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }
}

/// A refusal: its status, its code name, and a message containing `needle`.
#[track_caller]
fn refused(got: (u16, Value), status: u16, code: &str, needle: &str) {
    let (s, v) = got;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    let m = v["message"].as_str().unwrap();
    assert!(m.contains(needle), "`{m}` lacks `{needle}`");
}

fn vector(i: u64) -> Vec<f32> {
    let x = i as f32;
    vec![1.0 + x.sin(), x.cos(), (x * 0.5).sin(), 0.25]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_serves_the_api_as_grpc_does() {
    let s = Stack::start().await;
    let r = Rest::new(&s);

    // The document the port serves is the generated one.
    let (status, doc) = r.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc, akidb_proto::openapi::document());

    r.ok(
        "POST",
        "/v1/collections",
        json!({"name": "docs", "dimension": 4, "metric": "COSINE"}),
    )
    .await;
    let points: Vec<Value> = (0..50u64)
        .map(|i| {
            json!({
                "id": {"num": i},
                "vector": vector(i),
                "payload": {"n": i, "tag": if i % 2 == 0 { "even" } else { "odd" }},
            })
        })
        .collect();
    let up = r
        .ok(
            "POST",
            "/v1/collections/docs/points",
            json!({ "points": points }),
        )
        .await;
    assert_eq!(up["upserted"], 50);

    // A search answers what the gRPC search answers.
    let q = vector(7);
    let hits = r
        .ok(
            "POST",
            "/v1/collections/docs/points/search",
            json!({"vector": q, "k": 5, "withPayload": true}),
        )
        .await;
    let grpc = s
        .q()
        .query()
        .search(s.q().request(pb::SearchRequest {
            collection: "docs".into(),
            vector: q.clone(),
            k: 5,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let rest_hits = hits["hits"].as_array().unwrap();
    assert_eq!(rest_hits.len(), 5);
    for (h, g) in rest_hits.iter().zip(&grpc.hits) {
        let id = match g.id.as_ref().unwrap().kind {
            Some(pb::point_id::Kind::Num(n)) => n,
            _ => unreachable!(),
        };
        assert_eq!(h["id"]["num"], id);
        assert_eq!(h["score"].as_f64().unwrap() as f32, g.score);
        assert_eq!(h["payload"]["n"], id);
    }
    assert_eq!(rest_hits[0]["id"]["num"], 7);

    // Filters, counts, gets, payload updates, scrolls, deletes.
    let even = r
        .ok(
            "POST",
            "/v1/collections/docs/points/search",
            json!({"vector": q, "k": 10, "with_payload": true,
                   "filter": {"must": [{"field": {"key": "tag", "keyword": "even"}}]}}),
        )
        .await;
    let even = even["hits"].as_array().unwrap();
    assert_eq!(even.len(), 10);
    assert!(even.iter().all(|h| h["payload"]["tag"] == "even"));
    let count = |v: Value| v["count"].as_u64().unwrap_or(0);
    assert_eq!(
        count(
            r.ok("POST", "/v1/collections/docs/points/count", json!({}))
                .await
        ),
        50
    );
    let upd = r
        .ok(
            "POST",
            "/v1/collections/docs/points/payload",
            json!({"ids": [{"num": 3}], "set": {"color": "red"}}),
        )
        .await;
    assert_eq!(upd["updated"], 1);
    let got = r
        .ok(
            "POST",
            "/v1/collections/docs/points/get",
            json!({"ids": [{"num": 3}], "with_payload": true, "with_vector": true}),
        )
        .await;
    let p = &got["points"][0];
    assert_eq!(p["payload"], json!({"n": 3, "tag": "odd", "color": "red"}));
    assert_eq!(p["vector"].as_array().unwrap().len(), 4);
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = String::new();
    loop {
        let page = r
            .ok(
                "POST",
                "/v1/collections/docs/points/scroll",
                json!({"limit": 20, "cursor": cursor}),
            )
            .await;
        for p in page["points"].as_array().unwrap() {
            assert!(seen.insert(p["id"]["num"].as_u64().unwrap()));
        }
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(seen.len(), 50);
    let del = r
        .ok(
            "POST",
            "/v1/collections/docs/points/delete",
            json!({"ids": [{"num": 49}]}),
        )
        .await;
    assert_eq!(del["deleted"], 1);
    let (status, info) = r.get("/v1/collections/docs").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["collection"]["name"], "docs", "{info}");
    let (_, list) = r.get("/v1/collections").await;
    assert!(
        list["collections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "docs")
    );

    // An alias reaches the collection in the path.
    r.ok(
        "POST",
        "/v1/aliases",
        json!({"actions": [{"create": {"alias": "current", "collection": "docs"}}]}),
    )
    .await;
    assert_eq!(
        count(
            r.ok("POST", "/v1/collections/current/points/count", json!({}))
                .await
        ),
        49
    );

    // Bad input: a 4xx with a JSON error, and nothing changed.
    let upsert = "/v1/collections/docs/points";
    refused(
        r.send("POST", upsert, Some(b"{\"points\": [".to_vec()))
            .await,
        400,
        "INVALID_ARGUMENT",
        "not valid JSON",
    );
    refused(
        r.call("POST", upsert, json!({"points": "many"})).await,
        400,
        "INVALID_ARGUMENT",
        "UpsertRequest",
    );
    refused(
        r.call("POST", upsert, json!({"pointz": []})).await,
        400,
        "INVALID_ARGUMENT",
        "pointz",
    );
    refused(
        r.call(
            "POST",
            upsert,
            json!({"points": [{"id": {"num": 100}, "vector": [1, 2, 3]}]}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "dimension",
    );
    refused(
        r.call(
            "POST",
            "/v1/collections/docs/points/search",
            json!({"vector": ["NaN", 0, 0, 0], "k": 1}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "finite",
    );
    let big = format!(
        "{{\"points\": [{{\"id\": {{\"num\": 1000}}, \"vector\": [{}]}}]}}",
        vec!["0.5"; 5_000_000].join(",")
    );
    assert!(big.len() > 10_000_000);
    refused(
        r.send("POST", upsert, Some(big.into_bytes())).await,
        413,
        "RESOURCE_EXHAUSTED",
        "--rest-max-body-bytes",
    );
    refused(
        r.call("POST", "/v1/collections/nope/points/count", json!({}))
            .await,
        404,
        "NOT_FOUND",
        "nope",
    );
    refused(
        r.call(
            "POST",
            "/v1/collections/docs/points",
            json!({"collection": "other"}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "in the path",
    );
    refused(
        r.send("GET", "/v1/collections/docs", Some(b"{}".to_vec()))
            .await,
        400,
        "INVALID_ARGUMENT",
        "takes no body",
    );
    refused(r.get("/v2/things").await, 404, "NOT_FOUND", "openapi.json");
    refused(
        r.get("/v1/collections/docs/points/search").await,
        405,
        "UNIMPLEMENTED",
        "does not take GET",
    );
    assert_eq!(
        count(
            r.ok("POST", "/v1/collections/docs/points/count", json!({}))
                .await
        ),
        49
    );

    // REST calls are counted as the gRPC calls they are, refusals of their JSON too.
    let m = scrape(s.query_metrics).await;
    let search = |code: &str| {
        series_value(&m, &format!("akidb_grpc_server_requests_total{{grpc_code=\"{code}\",grpc_method=\"Search\",grpc_service=\"akidb.v1.QueryService\"}}")).unwrap_or(0.0)
    };
    assert!(search("OK") >= 2.0, "{m}");
    assert!(search("INVALID_ARGUMENT") >= 1.0, "{m}");
    let m = scrape(s.ingest_metrics).await;
    assert!(
        series_value(&m, "akidb_grpc_server_requests_total{grpc_code=\"OK\",grpc_method=\"Upsert\",grpc_service=\"akidb.v1.IngestService\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );

    // A snapshot goes out as an archive and comes back under another name.
    r.ok("POST", "/v1/collections/docs/snapshots", json!({}))
        .await;
    let res = r
        .client
        .get(format!("{}/v1/collections/docs/snapshots/download", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let archive = res.bytes().await.unwrap();
    assert!(archive.len() > 1024);
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&archive))
    };
    let res = r
        .client
        .post(format!(
            "{}/v1/snapshots/restore?start.collection=copy&start.sha256={sha}",
            r.base
        ))
        .body(archive.clone())
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        count(
            r.ok("POST", "/v1/collections/copy/points/count", json!({}))
                .await
        ),
        49
    );
    // An archive whose checksum is not the one given is refused, and nothing is created.
    let res = r
        .client
        .post(format!(
            "{}/v1/snapshots/restore?start.collection=copy2&start.sha256={}",
            r.base,
            "0".repeat(64)
        ))
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    refused(
        r.call("POST", "/v1/collections/copy2/points/count", json!({}))
            .await,
        404,
        "NOT_FOUND",
        "copy2",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_keys_reach_what_grpc_keys_reach() {
    use akidb_auth::Role;
    use akidb_auth::keys::{KeyFile, load_or_create_internal_key};
    let keys_dir = tempfile::tempdir().unwrap();
    let file = keys_dir.path().join("keys.json");
    let admin = KeyFile::create_key(&file, Role::Admin, vec![]).unwrap();
    let read = KeyFile::create_key(&file, Role::Read, vec![]).unwrap();
    let scoped = KeyFile::create_key(&file, Role::Write, vec!["mine".into()]).unwrap();
    let internal_file = keys_dir.path().join("internal.key");
    load_or_create_internal_key(&internal_file).unwrap();
    let (f, i) = (
        file.display().to_string(),
        internal_file.display().to_string(),
    );
    let front = ["--api-keys-file", &f, "--internal-key-file", &i];
    let s = Stack::start_with(&front, &front, &front).await;
    let anon = Rest::new(&s);
    let (admin_r, read_r, scoped_r) = (
        anon.with_key(&admin),
        anon.with_key(&read),
        anon.with_key(&scoped),
    );
    for name in ["mine", "theirs"] {
        admin_r
            .ok(
                "POST",
                "/v1/collections",
                json!({"name": name, "dimension": 2, "metric": "L2"}),
            )
            .await;
    }
    let upsert = |c: &str| format!("/v1/collections/{c}/points");
    let one = json!({"points": [{"id": {"num": 1}, "vector": [1, 2]}]});
    let count = "/v1/collections/mine/points/count";

    // No key, or a key changed: 401 with the one message; a bad body changes nothing in that.
    refused(
        anon.call("POST", count, json!({})).await,
        401,
        "UNAUTHENTICATED",
        "API key",
    );
    refused(
        anon.send("POST", &upsert("mine"), Some(b"{not json".to_vec()))
            .await,
        401,
        "UNAUTHENTICATED",
        "API key",
    );
    let mut changed = read.clone();
    changed.pop();
    changed.push(if read.ends_with('0') { '1' } else { '0' });
    let (status, v) = anon.with_key(&changed).call("POST", count, json!({})).await;
    assert_eq!(status, 401, "{v}");
    assert!(!v.to_string().contains(&read[6..]), "{v}");

    // Roles and scopes as over gRPC.
    assert_eq!(read_r.call("POST", count, json!({})).await.0, 200);
    refused(
        read_r.call("POST", &upsert("mine"), one.clone()).await,
        403,
        "PERMISSION_DENIED",
        "role read",
    );
    refused(
        scoped_r.call("POST", &upsert("theirs"), one.clone()).await,
        403,
        "PERMISSION_DENIED",
        "theirs",
    );
    assert_eq!(scoped_r.call("POST", &upsert("mine"), one).await.0, 200);
    refused(
        read_r.get("/v1/admin/tiers").await,
        403,
        "PERMISSION_DENIED",
        "admin",
    );
    let (status, tiers) = admin_r.get("/v1/admin/tiers?collection=mine").await;
    assert_eq!(status, 200, "{tiers}");
    assert_eq!(tiers["collections"][0]["name"], "mine", "{tiers}");
    let (_, n) = admin_r.call("POST", count, json!({})).await;
    assert_eq!(n["count"], 1);
}
