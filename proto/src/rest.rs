//! The REST/JSON face of the API, read from the proto files: each public method's
//! `google.api.http` rule ([`Route`], [`routes`]), JSON ↔ protobuf by the proto3 JSON mapping
//! ([`request`], [`response`]; prost-reflect over the embedded descriptors), and the gRPC code
//! of an answer as an HTTP status and a JSON error ([`http_status`], [`error_json`]).
//!
//! The proto stays the one source: a method gets a REST route by an `option (google.api.http)`
//! in its `.proto` file, and its JSON is its messages' canonical JSON with proto field names
//! (`with_payload`; the lowerCamelCase names are accepted too), 64-bit integers as numbers,
//! enums by name and fields left at their default omitted. Query serves the routes
//! (`services/query/src/rest.rs`); [`crate::openapi`] describes them.

use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use std::sync::LazyLock;
use tonic::{Code, Status};

/// The descriptors of every `akidb.v1` file and what they import.
pub fn pool() -> &'static DescriptorPool {
    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes (built by build.rs)")
    });
    &POOL
}

/// Where a route's request comes from besides its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// The JSON body is the request (less the path's fields).
    Json,
    /// No body: the query parameters fill scalar fields (`?collection=a&create=true`).
    None,
    /// The raw body is the stream of this bytes field (an upload); the query parameters fill
    /// the first message.
    Raw(String),
}

/// One REST route: a method of the API reached over HTTP.
#[derive(Clone, Debug)]
pub struct Route {
    pub verb: http::Method,
    /// The path template with `{field}` segments (also axum's syntax).
    pub path: String,
    /// The request's top-level string fields the path's segments fill, in order.
    pub path_fields: Vec<String>,
    /// `/akidb.v1.QueryService/Search`: the gRPC path, as the server layers see it.
    pub grpc_path: String,
    pub method: MethodDescriptor,
    /// The service's full name (`akidb.v1.IngestService`).
    pub service: String,
    pub body: Body,
    /// A server stream whose messages' bytes field of this name is the raw response body.
    pub response_body: Option<String>,
}

/// Every route of the API, in the order of the proto files.
pub fn routes() -> &'static [Route] {
    static ROUTES: LazyLock<Vec<Route>> = LazyLock::new(|| {
        let pool = pool();
        let ext = pool
            .get_extension_by_name("google.api.http")
            .expect("google/api/annotations.proto is compiled in");
        let mut out = Vec::new();
        for service in pool.services() {
            if service.package_name() != "akidb.v1" {
                continue;
            }
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(&ext) {
                    continue;
                }
                let rule = options.get_extension(&ext);
                let rule = rule.as_message().expect("HttpRule is a message");
                out.push(route_of(&method, rule));
            }
        }
        out
    });
    &ROUTES
}

fn route_of(method: &MethodDescriptor, rule: &DynamicMessage) -> Route {
    let text = |name: &str| {
        rule.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (verb, path) = [
        ("get", http::Method::GET),
        ("put", http::Method::PUT),
        ("post", http::Method::POST),
        ("delete", http::Method::DELETE),
        ("patch", http::Method::PATCH),
    ]
    .into_iter()
    .find(|(name, _)| rule.has_field_by_name(name))
    .map(|(name, verb)| (verb, text(name)))
    .unwrap_or_else(|| panic!("{}: an HTTP rule without a verb", method.full_name()));
    let path_fields: Vec<String> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_string)
        .collect();
    let input = method.input();
    for f in &path_fields {
        let field = input.get_field_by_name(f);
        assert!(
            field.is_some_and(|f| f.kind() == Kind::String && !f.is_list()),
            "{}: path segment {{{f}}} is not a string field of its request",
            method.full_name()
        );
    }
    let body = match text("body").as_str() {
        "*" => Body::Json,
        "" => Body::None,
        field => Body::Raw(field.to_string()),
    };
    let response_body = Some(text("response_body")).filter(|s| !s.is_empty());
    Route {
        verb,
        path,
        path_fields,
        grpc_path: format!("/{}/{}", method.parent_service().full_name(), method.name()),
        method: method.clone(),
        service: method.parent_service().full_name().to_string(),
        body,
        response_body,
    }
}

/// How responses are written: proto field names, 64-bit integers as JSON numbers, enums by
/// name, default values left out.
pub fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
}

/// A REST request's message, encoded: `body` (JSON, when the route takes one), the path's
/// fields and the query parameters. Anything that does not fit the request message is
/// INVALID_ARGUMENT with what to change.
pub fn request(
    route: &Route,
    path: &[(String, String)],
    query: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, Status> {
    let input = route.method.input();
    let mut object = match route.body {
        Body::Json => json_object(body, &input)?,
        Body::None | Body::Raw(_) => {
            if route.body == Body::None && !body.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "{} {} takes no body: its fields are query parameters",
                    route.verb, route.path
                )));
            }
            serde_json::Map::new()
        }
    };
    for (name, value) in path {
        match object.get(name) {
            Some(serde_json::Value::String(v)) if v == value => {}
            Some(other) => {
                return Err(Status::invalid_argument(format!(
                    "`{name}` is `{value}` in the path and {other} in the body: leave it out of the body"
                )));
            }
            None => {}
        }
        object.insert(name.clone(), serde_json::Value::String(value.clone()));
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        if route.body == Body::Json {
            return Err(Status::invalid_argument(format!(
                "{} {} takes its fields in the JSON body, not as query parameters",
                route.verb, route.path
            )));
        }
        for (name, value) in form_urlencoded(query)? {
            set_query_field(&mut object, &input, &name, &value)?;
        }
    }
    let object = serde_json::Value::Object(object);
    check_json(&object, &input, "")?;
    let message =
        DynamicMessage::deserialize_with_options(input.clone(), object, &DeserializeOptions::new())
            .map_err(|e| {
                Status::invalid_argument(format!("the request does not fit {}: {e}", input.name()))
            })?;
    Ok(message.encode_to_vec())
}

/// What the JSON mapping would read silently and is refused instead, in `v` as a message `m`
/// (at `at`): a `null` for a field (read as its default, which hides a client's mistake:
/// `"k": null` would ask for k 0; inside a payload, a `google.protobuf.Value`, null is a value
/// like any other), and an integer field given a number outside its type's range (read as
/// the nearest one it has).
fn check_json(v: &serde_json::Value, m: &MessageDescriptor, at: &str) -> Result<(), Status> {
    use serde_json::Value as J;
    let J::Object(o) = v else { return Ok(()) };
    if m.full_name().starts_with("google.protobuf.") {
        return Ok(());
    }
    let null = |path: &str| {
        Status::invalid_argument(format!(
            "`{path}` is null: leave it out for its default, or give a value"
        ))
    };
    for (k, v) in o {
        // Unknown fields are named by the deserializer.
        let Some(f) = m
            .get_field_by_name(k)
            .or_else(|| m.get_field_by_json_name(k))
        else {
            continue;
        };
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        let inner = match f.kind() {
            Kind::Message(inner) => Some(inner),
            _ => None,
        };
        let value_kind = inner
            .as_ref()
            .is_some_and(|i| i.full_name() == "google.protobuf.Value");
        if v.is_null() && !value_kind {
            return Err(null(&path));
        }
        if f.is_map() {
            let entry = inner.expect("a map field's kind is its entry message");
            let value = entry.map_entry_value_field();
            let J::Object(items) = v else { continue };
            for (key, item) in items {
                let at = format!("{path}.{key}");
                match value.kind() {
                    Kind::Message(vm) if vm.full_name() == "google.protobuf.Value" => {}
                    _ if item.is_null() => return Err(null(&at)),
                    Kind::Message(vm) => check_json(item, &vm, &at)?,
                    kind => integer_in_range(item, &kind, &at)?,
                }
            }
        } else if f.is_list() {
            let J::Array(items) = v else { continue };
            for (i, item) in items.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match &inner {
                    _ if value_kind => {}
                    _ if item.is_null() => return Err(null(&at)),
                    Some(im) => check_json(item, im, &at)?,
                    None => integer_in_range(item, &f.kind(), &at)?,
                }
            }
        } else if let Some(im) = &inner {
            check_json(v, im, &path)?;
        } else {
            integer_in_range(v, &f.kind(), &path)?;
        }
    }
    Ok(())
}

/// A JSON number for an integer field of `kind` that the field can hold exactly.
fn integer_in_range(v: &serde_json::Value, kind: &Kind, at: &str) -> Result<(), Status> {
    let serde_json::Value::Number(n) = v else {
        return Ok(());
    };
    let (min, max): (i128, i128) = match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => (i32::MIN.into(), i32::MAX.into()),
        Kind::Uint32 | Kind::Fixed32 => (0, u32::MAX.into()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => (i64::MIN.into(), i64::MAX.into()),
        Kind::Uint64 | Kind::Fixed64 => (0, u64::MAX.into()),
        _ => return Ok(()),
    };
    let fits = match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(x), _, _) => (min..=max).contains(&i128::from(x)),
        (_, Some(x), _) => (min..=max).contains(&i128::from(x)),
        // `5.0` is a whole number (JSON Schema's integer too); `max as f64 + 1.0` is the
        // first value past the range (2^64 for uint64, where `max` rounds up to it).
        (_, _, Some(f)) => f.fract() == 0.0 && f >= min as f64 && f < max as f64 + 1.0,
        _ => false,
    };
    if fits {
        return Ok(());
    }
    Err(Status::invalid_argument(format!(
        "`{at}` is {n}: it must be a whole number from {min} to {max}"
    )))
}

/// The JSON body as an object (an empty body is `{}`).
fn json_object(
    body: &[u8],
    input: &MessageDescriptor,
) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err(Status::invalid_argument(format!(
            "the body must be a JSON object (a {})",
            input.name()
        ))),
        Err(e) => Err(Status::invalid_argument(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// `a=1&b=x%20y` as pairs; a name given twice is refused.
fn form_urlencoded(query: &str) -> Result<Vec<(String, String)>, Status> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| Status::invalid_argument(format!("the query string does not parse: {e}")))?;
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &pairs {
        if !seen.insert(name.as_str()) {
            return Err(Status::invalid_argument(format!(
                "query parameter `{name}` is given twice"
            )));
        }
    }
    Ok(pairs)
}

/// Put query parameter `name` (a field, `start.collection` for a nested one) into `object`,
/// typed as its field is.
fn set_query_field(
    object: &mut serde_json::Map<String, serde_json::Value>,
    input: &MessageDescriptor,
    name: &str,
    value: &str,
) -> Result<(), Status> {
    let unknown = || {
        Status::invalid_argument(format!(
            "`{name}` is not a query parameter of {} (its scalar fields are)",
            input.name()
        ))
    };
    let (head, rest) = match name.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (name, None),
    };
    let field = input.get_field_by_name(head).ok_or_else(unknown)?;
    if field.is_list() || field.is_map() {
        return Err(unknown());
    }
    match (field.kind(), rest) {
        (Kind::Message(m), Some(rest)) => {
            let inner = object
                .entry(head.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            let serde_json::Value::Object(inner) = inner else {
                return Err(unknown());
            };
            set_query_field(inner, &m, rest, value)
        }
        (Kind::Message(_), None) | (_, Some(_)) => Err(unknown()),
        (kind, None) => {
            let typed = query_value(&kind, value).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "query parameter `{name}` must be {}, not `{value}`",
                    kind_words(&kind)
                ))
            })?;
            object.insert(head.to_string(), typed);
            Ok(())
        }
    }
}

fn query_value(kind: &Kind, value: &str) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match kind {
        Kind::Bool => J::Bool(value.parse().ok()?),
        Kind::String | Kind::Bytes | Kind::Enum(_) => J::String(value.to_string()),
        Kind::Double | Kind::Float => J::from(value.parse::<f64>().ok()?),
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => J::from(value.parse::<i64>().ok()?),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => {
            J::from(value.parse::<u64>().ok()?)
        }
        Kind::Message(_) => return None,
    })
}

fn kind_words(kind: &Kind) -> &'static str {
    match kind {
        Kind::Bool => "true or false",
        Kind::Double | Kind::Float => "a number",
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => "a non-negative integer",
        Kind::Enum(_) => "one of the enum's names",
        Kind::String | Kind::Bytes | Kind::Message(_) => "text",
        _ => "an integer",
    }
}

/// The JSON of an encoded `message` (a method's response), as [`message_json`] writes it.
pub fn response(message: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, Status> {
    message_json(message, bytes)
}

/// The JSON of an encoded message of type `message`, as the REST port writes every answer.
pub fn message_json(message: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, Status> {
    let m = DynamicMessage::decode(message.clone(), bytes).map_err(|e| {
        Status::internal(format!(
            "the {} answered does not decode: {e}",
            message.name()
        ))
    })?;
    let json = m
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .map_err(|e| Status::internal(format!("the {} answered as JSON: {e}", message.name())))?;
    serde_json::to_vec(&whole_numbers(json))
        .map_err(|e| Status::internal(format!("the {} answered as JSON: {e}", message.name())))
}

/// Whole numbers written without a fraction: a payload's `1979` stays `1979` (a Struct keeps
/// every number as a double, which would print as `1979.0`), up to 2^53, where doubles stop
/// being exact integers.
fn whole_numbers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::Number(n) => match n.as_f64() {
            // -0.0 stays a double (0 would lose its sign).
            Some(f)
                if n.is_f64()
                    && f.fract() == 0.0
                    && f.abs() < 9_007_199_254_740_992.0
                    && !(f == 0.0 && f.is_sign_negative()) =>
            {
                J::from(f as i64)
            }
            _ => J::Number(n),
        },
        J::Array(a) => J::Array(a.into_iter().map(whole_numbers).collect()),
        J::Object(o) => J::Object(o.into_iter().map(|(k, v)| (k, whole_numbers(v))).collect()),
        other => other,
    }
}

/// The field `name` (a bytes field) of an encoded `message`: a streamed chunk's data.
pub fn bytes_field(
    message: &MessageDescriptor,
    bytes: &[u8],
    name: &str,
) -> Result<Option<bytes::Bytes>, Status> {
    let m = DynamicMessage::decode(message.clone(), bytes).map_err(|e| {
        Status::internal(format!(
            "the {} answered does not decode: {e}",
            message.name()
        ))
    })?;
    Ok(m.get_field_by_name(name)
        .filter(|_| m.has_field_by_name(name))
        .and_then(|v| v.as_bytes().cloned()))
}

/// One message of an upload (`Body::Raw`): `field` set to `data`.
pub fn bytes_message(message: &MessageDescriptor, field: &str, data: bytes::Bytes) -> Vec<u8> {
    let mut m = DynamicMessage::new(message.clone());
    m.set_field_by_name(field, prost_reflect::Value::Bytes(data));
    m.encode_to_vec()
}

/// Name of a gRPC status code as in the gRPC spec (`OK`, `NOT_FOUND`, ...).
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The HTTP status of a gRPC code (the mapping of `google/rpc/code.proto` and grpc-gateway).
pub fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        Code::Ok => S::OK,
        Code::Cancelled => S::from_u16(499).expect("499 is a valid status"),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => S::BAD_REQUEST,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => S::CONFLICT,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::Unauthenticated => S::UNAUTHORIZED,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of an error: `{"code": "NOT_FOUND", "message": "..."}`.
pub fn error_json(code: Code, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "code": code_name(code as i32),
        "message": message,
    }))
    .expect("a JSON object of two strings serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(grpc: &str) -> &'static Route {
        routes().iter().find(|r| r.grpc_path == grpc).unwrap()
    }

    #[test]
    fn routes_come_from_the_proto() {
        let search = route("/akidb.v1.QueryService/Search");
        assert_eq!(search.verb, http::Method::POST);
        assert_eq!(search.path, "/v1/collections/{collection}/points/search");
        assert_eq!(search.path_fields, ["collection"]);
        assert_eq!(search.body, Body::Json);
        let get = route("/akidb.v1.CollectionService/GetCollection");
        assert_eq!(
            (get.verb.clone(), get.body.clone()),
            (http::Method::GET, Body::None)
        );
        // Storage's own API and the streaming upsert have none.
        assert!(
            routes()
                .iter()
                .all(|r| !r.grpc_path.contains("StorageService"))
        );
        assert!(
            routes()
                .iter()
                .all(|r| !r.grpc_path.ends_with("/UpsertStream"))
        );
        // Two routes never share a verb and a path.
        let mut seen = std::collections::HashSet::new();
        for r in routes() {
            assert!(
                seen.insert((r.verb.clone(), r.path.clone())),
                "{} {}",
                r.verb,
                r.path
            );
        }
    }

    #[test]
    fn json_requests_become_messages() {
        let search = route("/akidb.v1.QueryService/Search");
        let path = [("collection".to_string(), "docs".to_string())];
        let body = br#"{"vector": [1, 0.5], "k": 3, "withPayload": true,
            "filter": {"must": [{"field": {"key": "lang", "keyword": "en"}}]}}"#;
        let bytes = request(search, &path, None, body).unwrap();
        let m = crate::v1::SearchRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(m.collection, "docs");
        assert_eq!(m.vector, [1.0, 0.5]);
        assert_eq!((m.k, m.with_payload), (3, true));
        assert_eq!(m.filter.unwrap().must.len(), 1);
        let bad = |body: &[u8], path: &[(String, String)]| {
            let e = request(search, path, None, body).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
            e.message().to_string()
        };
        assert!(bad(b"{", &path).contains("not valid JSON"));
        assert!(bad(b"[1]", &path).contains("JSON object"));
        assert!(bad(br#"{"k": "three"}"#, &path).contains("SearchRequest"));
        assert!(bad(br#"{"colour": 1}"#, &path).contains("colour"));
        assert!(bad(br#"{"collection": "other"}"#, &path).contains("in the path"));
        // null is refused where it would be read as a default, kept inside a payload.
        assert!(bad(br#"{"k": null}"#, &path).contains("`k` is null"));
        assert!(
            bad(br#"{"filter": {"must": [null]}}"#, &path).contains("`filter.must[0]` is null")
        );
        // Integers beyond their field's type, or with a fraction, are refused, not rounded.
        assert!(bad(br#"{"k": 4294967296}"#, &path).contains("0 to 4294967295"));
        assert!(bad(br#"{"k": 1.5}"#, &path).contains("whole number"));
        assert!(request(search, &path, None, br#"{"k": 5.0}"#).is_ok());
        let get = route("/akidb.v1.QueryService/Get");
        let e = request(
            get,
            &path,
            None,
            br#"{"ids": [{"num": 18446744073709551616}]}"#,
        );
        assert!(e.unwrap_err().message().contains("ids[0].num"));
        let upsert = route("/akidb.v1.IngestService/Upsert");
        let body = br#"{"points": [{"id": {"num": 1}, "vector": [1], "payload": {"a": null}}]}"#;
        let m = crate::v1::UpsertRequest::decode(
            request(upsert, &path, None, body).unwrap().as_slice(),
        )
        .unwrap();
        assert!(
            m.points[0]
                .payload
                .as_ref()
                .unwrap()
                .fields
                .contains_key("a")
        );
        // The same name in the body and the path is no conflict.
        assert!(request(search, &path, None, br#"{"collection": "docs"}"#).is_ok());
    }

    #[test]
    fn query_parameters_fill_scalar_fields() {
        let r = route("/akidb.v1.AdminService/TierStatus");
        let bytes = request(r, &[], Some("collection=a%20b"), b"").unwrap();
        let m = crate::v1::TierStatusRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(m.collection, "a b");
        for (q, says) in [
            ("colour=red", "not a query parameter"),
            ("collection=a&collection=b", "twice"),
        ] {
            let e = request(r, &[], Some(q), b"").unwrap_err();
            assert!(e.message().contains(says), "{q}: {}", e.message());
        }
        let e = request(r, &[], None, b"{}").unwrap_err();
        assert!(e.message().contains("takes no body"), "{}", e.message());
    }

    #[test]
    fn responses_are_json_with_proto_names() {
        let out = crate::v1::CountResponse { count: 1 << 60 };
        let desc = pool()
            .get_message_by_name("akidb.v1.CountResponse")
            .unwrap();
        let json = response(&desc, &out.encode_to_vec()).unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"count":1152921504606846976}"#
        );
        // Payload numbers: whole ones without a fraction, others as they are.
        let hit = crate::v1::RetrievedPoint {
            payload: Some(prost_types::Struct {
                fields: [("year", 1979.0), ("score", 0.5), ("big", 1e300)]
                    .into_iter()
                    .map(|(k, v)| {
                        let v = prost_types::Value {
                            kind: Some(prost_types::value::Kind::NumberValue(v)),
                        };
                        (k.to_string(), v)
                    })
                    .collect(),
            }),
            ..Default::default()
        };
        let desc = pool()
            .get_message_by_name("akidb.v1.RetrievedPoint")
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&response(&desc, &hit.encode_to_vec()).unwrap()).unwrap();
        assert_eq!(json["payload"]["year"].to_string(), "1979");
        assert_eq!(json["payload"]["score"].to_string(), "0.5");
        assert_eq!(json["payload"]["big"].to_string(), "1e+300");
        let e: serde_json::Value =
            serde_json::from_slice(&error_json(Code::NotFound, "no `x`")).unwrap();
        assert_eq!(
            e,
            serde_json::json!({"code": "NOT_FOUND", "message": "no `x`"})
        );
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::Unauthenticated), 401);
    }
}
