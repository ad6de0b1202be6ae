//! The W3C `traceparent` parser every gRPC server layer runs on incoming headers. Asserts:
//! it accepts exactly what the spec's grammar accepts (checked here independently); a valid
//! version-00 value with flags `00` or `01` re-formats to the same bytes; and whatever it
//! accepts re-formats to a version-00 value that parses to the same ids and sampled flag.
#![no_main]

use akidb_instrumentation::propagation::fuzzing::{format_traceparent, parse_traceparent};
use libfuzzer_sys::fuzz_target;

fn lower_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// The grammar of W3C Trace Context level 1, section 3.2, with the rules for versions
/// other than `00` (read as `00` when the value goes on with `-`).
fn valid(b: &[u8]) -> bool {
    if b.len() < 55 {
        return false;
    }
    let (version, trace, span, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    let dashes = b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
    let hex = lower_hex(version) && lower_hex(trace) && lower_hex(span) && lower_hex(flags);
    let len_ok = if version == b"00" {
        b.len() == 55
    } else {
        b.len() == 55 || b[55] == b'-'
    };
    dashes
        && hex
        && version != b"ff"
        && len_ok
        && trace.iter().any(|&c| c != b'0')
        && span.iter().any(|&c| c != b'0')
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let parsed = parse_traceparent(&v);
    assert_eq!(
        parsed.is_some(),
        valid(data),
        "{:?}",
        String::from_utf8_lossy(data)
    );
    let Some(p) = parsed else {
        return;
    };
    let out = format_traceparent(p.trace_hi, p.trace_lo, p.span, p.sampled);
    if p.version00 && (&data[53..55] == b"00" || &data[53..55] == b"01") {
        assert_eq!(
            out.as_bytes(),
            data,
            "a valid version-00 value re-formats differently"
        );
    }
    let back = parse_traceparent(&out).expect("a formatted traceparent parses");
    assert!(back.version00);
    assert_eq!(
        (back.trace_hi, back.trace_lo, back.span, back.sampled),
        (p.trace_hi, p.trace_lo, p.span, p.sampled)
    );
});
