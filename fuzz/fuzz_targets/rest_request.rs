//! The REST port's reading of a request (`akidb_proto::rest::request`: JSON through the
//! descriptors, query parameters, nulls and integer ranges refused). Input: a byte that picks
//! one of the routes, then the query string, a NUL, and the body. Asserts: it never panics;
//! a message it accepts from a JSON body writes as JSON (as the port writes answers) that it
//! accepts again as the same message.
#![no_main]

use akidb_proto::rest::{Body, message_json, request, routes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [pick, rest @ ..] = data else {
        return;
    };
    let all = routes();
    let route = &all[*pick as usize % all.len()];
    let (query, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let path: Vec<(String, String)> = route
        .path_fields
        .iter()
        .map(|f| (f.clone(), "docs".to_string()))
        .collect();
    let Ok(bytes) = request(route, &path, Some(query), body) else {
        return;
    };
    if route.body != Body::Json {
        return;
    }
    let input = route.method.input();
    let json = message_json(&input, &bytes).expect("an accepted message writes as JSON");
    let again = request(route, &path, None, &json).unwrap_or_else(|e| {
        panic!(
            "its own JSON is refused: {}\n{}",
            e.message(),
            String::from_utf8_lossy(&json)
        )
    });
    // Compared as JSON values: map order and NaN make the bytes and the messages unequal.
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    let json_again = message_json(&input, &again).unwrap();
    assert_eq!(parse(&json), parse(&json_again), "the JSON round trip changed the message");
});
