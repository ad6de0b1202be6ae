//! The OpenAPI 3.1 document of the REST routes, generated from the descriptors: every route
//! of [`crate::rest::routes`] with its parameters, body and answers, every message as a JSON
//! Schema of its canonical JSON (as [`crate::rest`] reads and writes it), and the proto
//! comments as descriptions. Query serves it at `/openapi.json`; `docs/openapi.json` is the
//! committed copy (the test below fails when they differ; `AKIDB_WRITE_OPENAPI=1 cargo test
//! -p akidb-proto openapi` writes it again).

use crate::rest::{Body, Route, routes};
use prost_reflect::{FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The document.
pub fn document() -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in routes() {
        let op = operation(r, &mut schemas);
        paths
            .entry(r.path.clone())
            .or_default()
            .insert(r.verb.as_str().to_ascii_lowercase(), op);
    }
    let codes: Vec<&str> = (0..=16).map(crate::rest::code_name).collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every error: the gRPC code's name (the HTTP status follows from it) and a message that says what to change.",
            "properties": {
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string"},
            },
            "required": ["code", "message"],
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "AkiDB",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST/JSON face of AkiDB's gRPC API (package akidb.v1), served by the query service. Each route calls the gRPC method of the same name, with the same checks, limits, keys, metrics and traces; request and response bodies are the messages' canonical proto3 JSON with proto field names (lowerCamelCase names are accepted too), 64-bit integers as numbers, enums by name, and fields at their default left out. An error is answered with the HTTP status of its gRPC code and an `Error` body.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`akidb keys create`), needed when the server has a key file.",
                },
            },
        },
        "security": [{}, {"bearer": []}],
    })
}

fn operation(r: &Route, schemas: &mut BTreeMap<String, Value>) -> Value {
    let input = r.method.input();
    let mut op = Map::new();
    let service = r.method.parent_service();
    op.insert("operationId".into(), json!(r.method.name()));
    op.insert(
        "tags".into(),
        json!([service.name().trim_end_matches("Service")]),
    );
    let summary = comments(&r.method.parent_file(), r.method.path())
        .unwrap_or_else(|| format!("{}.{}", service.name(), r.method.name()));
    op.insert("description".into(), json!(summary));
    let mut params: Vec<Value> = r
        .path_fields
        .iter()
        .map(|f| {
            let mut schema = json!({"type": "string", "minLength": 1});
            merge(&mut schema, rules(input.name(), f));
            json!({"name": f, "in": "path", "required": true, "schema": schema})
        })
        .collect();
    match &r.body {
        Body::Json => {
            let mut body = object_schema(&input, schemas);
            if let Some(Value::Object(props)) = body.get_mut("properties") {
                for f in &r.path_fields {
                    props.remove(f);
                }
            }
            // A body with fields it needs is required (an empty one is `{}`, refused).
            let required = ["required", "anyOf", "allOf"]
                .iter()
                .any(|k| body.get(k).is_some());
            op.insert(
                "requestBody".into(),
                json!({"required": required, "content": {"application/json": {"schema": body}}}),
            );
        }
        Body::None => query_params(&input, "", &r.path_fields, schemas, &mut params),
        Body::Raw(field) => {
            // The first message's fields other than the raw one, one level down.
            for f in input.fields() {
                if f.name() == field {
                    continue;
                }
                if let Kind::Message(m) = f.kind() {
                    query_params(&m, &format!("{}.", f.name()), &[], schemas, &mut params);
                }
            }
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"}}}}),
            );
        }
    }
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    let ok = match &r.response_body {
        Some(_) => {
            json!({"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}})
        }
        None => json!({"application/json": {"schema": reference(&r.method.output(), schemas)}}),
    };
    op.insert(
        "responses".into(),
        json!({
            "200": {"description": "Done.", "content": ok},
            "default": {
                "description": "Refused or failed: the HTTP status of the gRPC code.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        }),
    );
    Value::Object(op)
}

/// The scalar fields of `m` as query parameters (`prefix` before their names).
fn query_params(
    m: &MessageDescriptor,
    prefix: &str,
    skip: &[String],
    schemas: &mut BTreeMap<String, Value>,
    out: &mut Vec<Value>,
) {
    for f in m.fields() {
        if skip.iter().any(|s| s == f.name())
            || f.is_list()
            || f.is_map()
            || matches!(f.kind(), Kind::Message(_))
        {
            continue;
        }
        let mut schema = field_schema(&f, schemas);
        merge(&mut schema, rules(m.name(), f.name()));
        // A restore's new name is the one parameter it cannot do without.
        let required = (m.name(), f.name()) == ("RestoreSnapshotStart", "collection");
        let mut p = json!({
            "name": format!("{prefix}{}", f.name()),
            "in": "query",
            "required": required,
            "schema": schema,
        });
        if let Some(d) = comments(&f.parent_file(), f.path()) {
            p["description"] = json!(d);
        }
        out.push(p);
    }
}

/// The component name of a message (`SearchRequest`; well-known types by full name).
fn component(m: &MessageDescriptor) -> String {
    m.full_name()
        .strip_prefix("akidb.v1.")
        .unwrap_or(m.full_name())
        .to_string()
}

/// A reference to `m`'s schema (registered with the ones it needs); the well-known JSON types
/// are written in place.
fn reference(m: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    match m.full_name() {
        "google.protobuf.Struct" => return json!({"type": "object"}),
        "google.protobuf.Value" => return json!({}),
        "google.protobuf.ListValue" => return json!({"type": "array"}),
        _ => {}
    }
    let name = component(m);
    if !schemas.contains_key(&name) {
        schemas.insert(name.clone(), Value::Null);
        let s = object_schema(m, schemas);
        schemas.insert(name.clone(), s);
    }
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn object_schema(m: &MessageDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    let mut props = Map::new();
    for f in m.fields() {
        let mut s = field_schema(&f, schemas);
        merge(&mut s, rules(m.name(), f.name()));
        if let Some(d) = comments(&f.parent_file(), f.path()) {
            // A `$ref` with siblings is allowed in 3.1.
            if let Value::Object(o) = &mut s {
                o.insert("description".into(), json!(d));
            }
        }
        props.insert(f.name().to_string(), s);
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if let Some(d) = comments(&m.parent_file(), m.path()) {
        s["description"] = json!(d);
    }
    // A oneof takes at most one of its fields.
    let pairs: Vec<Value> = m
        .oneofs()
        .filter(|o| !o.is_synthetic())
        .flat_map(|o| {
            let names: Vec<String> = o.fields().map(|f| f.name().to_string()).collect();
            let mut v = Vec::new();
            for i in 0..names.len() {
                for j in i + 1..names.len() {
                    v.push(json!({"required": [names[i], names[j]]}));
                }
            }
            v
        })
        .collect();
    if !pairs.is_empty() {
        s["not"] = json!({"anyOf": pairs});
    }
    if m.package_name() == "akidb.v1" {
        merge(&mut s, message_rules(m.name()));
    }
    s
}

/// What the API's checks ask of a whole message: fields it needs, and which of its fields
/// go together (a oneof that must be set, ids or a filter). See [`rules`].
fn message_rules(message: &str) -> Value {
    match message {
        // A oneof that must be set.
        "PointId" | "Condition" | "AliasAction" => json!({"minProperties": 1}),
        "Point" => json!({"required": ["id", "vector"]}),
        // Some vector to replace.
        "PointVectors" => json!({"required": ["id"], "anyOf": [
            {"required": ["vector"], "properties": {"vector": {"minItems": 1}}},
            {"required": ["vectors"], "properties": {"vectors": {"minProperties": 1}}},
            {"required": ["sparse"], "properties": {"sparse": {"minProperties": 1}}},
        ]}),
        "AnyOf" => json!({"maxProperties": 1, "anyOf": [
            {"required": ["keywords"], "properties": {"keywords": {"minItems": 1}}},
            {"required": ["integers"], "properties": {"integers": {"minItems": 1}}},
        ]}),
        "UpdateAliasesRequest" => json!({"required": ["actions"]}),
        "UpsertRequest" | "UpdateVectorsRequest" => json!({"required": ["points"]}),
        "QueryRequest" => json!({"required": ["branches", "k"]}),
        // k, and a dense vector or a sparse one.
        "SearchRequest" => json!({"required": ["k"], "oneOf": [
            {"required": ["vector"], "properties": {"vector": {"minItems": 1}},
             "not": {"required": ["sparse"]}},
            {"required": ["sparse"], "properties": {"vector": {"maxItems": 0}}},
        ]}),
        "Alias" => json!({"required": ["alias", "collection"]}),
        "CreateCollectionRequest" => json!({"required": ["name", "dimension", "metric"]}),
        "NamedVectorParams" => json!({"required": ["dimension", "metric"]}),
        "TierMoveRequest" => json!({"required": ["target"]}),
        "SparseQuery" => json!({"required": ["name"]}),
        "FieldCondition" => json!({"required": ["key"], "minProperties": 2}),
        "MinShould" => json!({"required": ["conditions", "min_count"]}),
        "DlqPurgeRequest" => json!({"anyOf": [
            {"required": ["id"], "properties": {"id": {"minLength": 1}}},
            {"required": ["all"], "properties": {"all": {"const": true}}},
        ]}),
        "UpdatePayloadRequest" => json!({"allOf": [
            {"anyOf": [
                {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
                {"required": ["filter"], "properties": {"filter": {"anyOf": [
                    {"required": ["must"], "properties": {"must": {"minItems": 1}}},
                    {"required": ["should"], "properties": {"should": {"minItems": 1}}},
                    {"required": ["must_not"], "properties": {"must_not": {"minItems": 1}}},
                    {"required": ["min_should"]},
                ]}}},
            ]},
            {"anyOf": [
                {"required": ["set"]},
                {"required": ["overwrite"]},
                {"required": ["delete_keys"]},
                {"required": ["clear"], "properties": {"clear": {"const": true}}},
            ]},
        ]}),
        _ => Value::Null,
    }
}

/// The collection name rule of [`crate::limits::check_name`] as a pattern.
fn name_pattern(min: usize) -> Value {
    json!({"pattern": format!("^[A-Za-z0-9_-]{{{min},{}}}$", crate::limits::MAX_NAME_LEN)})
}

/// What the API's checks ask of field `field` of message `message` beyond its type, as JSON
/// Schema keywords (the numbers from [`crate::limits`]): the name rule and the ranges, so that
/// a client reading the document knows them. Rules that join fields or depend on the
/// collection (a vector's length is its dimension, sparse indices ascend, `ids` or a filter)
/// are in the descriptions and the server's answers only.
fn rules(message: &str, field: &str) -> Value {
    use crate::limits as l;
    let range =
        |r: std::ops::RangeInclusive<u64>| json!({"minimum": *r.start(), "maximum": *r.end()});
    let or_zero = |r: std::ops::RangeInclusive<u64>| json!({"maximum": *r.end()});
    match (message, field) {
        ("TierStatusRequest", "collection") | ("SearchRequest", "vector_name") => name_pattern(0),
        ("SparseQuery", "name") => name_pattern(1),
        ("CreateCollectionRequest", "sparse_vectors") => {
            let mut items = json!({"type": "string"});
            merge(&mut items, name_pattern(1));
            json!({"items": items})
        }
        ("CreateCollectionRequest", "vectors") => json!({"propertyNames": name_pattern(1)}),
        ("MinShould", "conditions") => json!({"minItems": 1}),
        ("FieldCondition" | "FieldKey" | "ValuesCount", "key") => json!({"minLength": 1}),
        ("MinShould", "min_count") => json!({"minimum": 1}),
        // Promote and Demote take a tier.
        ("TierMoveRequest", "target") => json!({"not": {"enum": ["TIER_UNSPECIFIED", 0]}}),
        ("CreateCollectionRequest" | "NamedVectorParams", "metric") => {
            json!({"not": {"enum": ["METRIC_UNSPECIFIED", 0]}})
        }
        (m, "collection") if m.ends_with("Request") || m == "RestoreSnapshotStart" => {
            name_pattern(1)
        }
        (
            "CreateCollectionRequest" | "GetCollectionRequest" | "DeleteCollectionRequest",
            "name",
        )
        | ("Alias", "alias" | "collection")
        | ("AliasAction", "delete") => name_pattern(1),
        ("SearchRequest" | "QueryRequest", "k") => range(l::K),
        ("SearchRequest", "ef") => range(l::EF),
        ("SearchRequest", "oversampling") => json!({
            "minimum": *l::OVERSAMPLING.start(), "maximum": *l::OVERSAMPLING.end(),
        }),
        // 0: the default page.
        ("ScrollRequest", "limit") => or_zero(l::SCROLL_LIMIT),
        ("CreateCollectionRequest" | "NamedVectorParams", "dimension") => range(l::DIMENSION),
        ("CreateCollectionRequest" | "HnswConfig", "m") => range(l::M),
        ("CreateCollectionRequest" | "HnswConfig", "ef_construction") => range(l::EF_CONSTRUCTION),
        // 0: one shard, and the service's default copies.
        ("CreateCollectionRequest", "shards") => or_zero(l::SHARDS),
        ("CreateCollectionRequest", "replication") => or_zero(l::REPLICATION),
        ("QueryRequest", "rrf_k") => range(l::RRF_K),
        ("QueryRequest", "branches") => json!({
            "minItems": *l::QUERY_BRANCHES.start(), "maxItems": *l::QUERY_BRANCHES.end(),
        }),
        ("UpsertRequest" | "UpdateVectorsRequest", "points")
        | ("UpdateAliasesRequest", "actions")
        | ("Point", "vector") => json!({"minItems": 1}),
        _ => Value::Null,
    }
}

/// `rules`' keywords added to `schema` (a field's own; `$ref` siblings are allowed in 3.1).
fn merge(schema: &mut Value, rules: Value) {
    if let (Value::Object(s), Value::Object(r)) = (schema, rules) {
        s.extend(r);
    }
}

fn field_schema(f: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Value {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else {
            unreachable!("a map field's kind is its entry message")
        };
        let value = entry.map_entry_value_field();
        return json!({"type": "object", "additionalProperties": scalar_schema(&value.kind(), schemas)});
    }
    let one = scalar_schema(&f.kind(), schemas);
    if f.is_list() {
        json!({"type": "array", "items": one})
    } else {
        one
    }
}

fn scalar_schema(kind: &Kind, schemas: &mut BTreeMap<String, Value>) -> Value {
    match kind {
        Kind::Double => json!({"type": "number", "format": "double"}),
        Kind::Float => json!({
            "type": "number", "format": "float",
            "minimum": -(f32::MAX as f64), "maximum": f32::MAX as f64,
        }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({
            "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX,
        }),
        Kind::Uint32 | Kind::Fixed32 => json!({
            "type": "integer", "minimum": 0, "maximum": u32::MAX,
        }),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({
            "type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX,
        }),
        Kind::Uint64 | Kind::Fixed64 => json!({
            "type": "integer", "minimum": 0, "maximum": u64::MAX,
        }),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        // By name (as answers write them) or by number (which the JSON mapping also reads).
        Kind::Enum(e) => {
            let mut values: Vec<Value> = e.values().map(|v| json!(v.name())).collect();
            values.extend(e.values().map(|v| json!(v.number())));
            json!({"enum": values})
        }
        Kind::Message(m) => reference(m, schemas),
    }
}

/// The leading comment of the element at `path` in `file`, as one paragraph per blank line.
fn comments(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text = loc.leading_comments.as_deref()?;
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    (!paragraphs.is_empty()).then(|| paragraphs.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed copy is what the code generates.
    #[test]
    fn openapi_document_is_committed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let text = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("AKIDB_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "docs/openapi.json differs from what the proto files give: run \
             `AKIDB_WRITE_OPENAPI=1 cargo test -p akidb-proto openapi` and commit it"
        );
    }

    #[test]
    fn every_route_is_described() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for r in routes() {
            let op = &doc["paths"][&r.path][r.verb.as_str().to_ascii_lowercase()];
            assert!(op.is_object(), "{} {}", r.verb, r.path);
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()));
        }
        // Every reference resolves.
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
        let search = &doc["components"]["schemas"]["SearchRequest"];
        assert_eq!(search["properties"]["k"]["type"], "integer");
        assert!(search["properties"]["k"]["description"].is_string());
        let body = &doc["paths"]["/v1/collections/{collection}/points/search"]["post"]["requestBody"]
            ["content"]["application/json"]["schema"];
        assert!(body["properties"]["collection"].is_null());
        assert!(body["properties"]["vector"].is_object());
    }
}
