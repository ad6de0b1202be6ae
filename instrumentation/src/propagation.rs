//! W3C Trace Context: `traceparent` parsed and written in small pure functions (not through
//! the SDK's text-map propagator, which allocates a `String` per field and re-parses what the
//! layer has parsed already), and AkiDB's own "not traced" marker.

use opentelemetry::trace::{TraceContextExt as _, TraceId};

/// The parts of a valid `traceparent` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    pub(crate) version00: bool,
    pub(crate) trace_hi: u64,
    pub(crate) trace_lo: u64,
    pub(crate) span: u64,
    pub(crate) sampled: bool,
}

pub(crate) fn hex_u64(b: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u64;
    }
    Some(v)
}

/// Parse `traceparent` as the W3C Trace Context spec says (version `00`, or a later version
/// read as `00`; lowercase hex; all-zero ids and version `ff` are invalid).
pub(crate) fn parse_traceparent(v: &http::HeaderValue) -> Option<TraceParent> {
    let b = v.as_bytes();
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex_u64(&b[0..2])?;
    if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    let trace_hi = hex_u64(&b[3..19])?;
    let trace_lo = hex_u64(&b[19..35])?;
    let span = hex_u64(&b[36..52])?;
    let flags = hex_u64(&b[53..55])?;
    if (trace_hi == 0 && trace_lo == 0) || span == 0 {
        return None;
    }
    Some(TraceParent {
        version00: version == 0,
        trace_hi,
        trace_lo,
        span,
        sampled: flags & 1 == 1,
    })
}

/// `00-<trace>-<span>-<flags>`.
pub(crate) fn format_traceparent(
    trace_hi: u64,
    trace_lo: u64,
    span: u64,
    sampled: bool,
) -> http::HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 55];
    b[..3].copy_from_slice(b"00-");
    let put = |b: &mut [u8], v: u64| {
        for (i, out) in b.iter_mut().enumerate() {
            *out = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
    };
    put(&mut b[3..19], trace_hi);
    put(&mut b[19..35], trace_lo);
    b[35] = b'-';
    put(&mut b[36..52], span);
    b[52] = b'-';
    b[53..55].copy_from_slice(if sampled { b"01" } else { b"00" });
    http::HeaderValue::from_bytes(&b).expect("ASCII")
}

/// What an untraced request forwards (kept in its request context, [`crate::context`]): the caller's trace
/// context, not sampled.
#[derive(Clone)]
pub(crate) struct Untraced {
    pub(crate) traceparent: http::HeaderValue,
    pub(crate) tracestate: Option<http::HeaderValue>,
}

/// Sent by a service that decided not to trace a request that came without trace context, so
/// that the services it calls do not start traces of their own for it. A constant: HTTP/2
/// sends it as one byte (an HPACK table index) after the first call on a connection, where a
/// fresh `traceparent` would cost 55 bytes and its Huffman coding and decoding on every call.
pub const UNTRACED_HEADER: &str = "akidb-untraced";

// Header names parsed once (a `&str` name is parsed and validated on every use).
pub(crate) static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
pub(crate) static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");
pub(crate) static UNTRACED: http::HeaderName = http::HeaderName::from_static(UNTRACED_HEADER);

/// `v` marked sensitive, which HTTP/2 sends as a literal "never indexed": trace context
/// differs on every call, so letting HPACK index it would only cycle the connection's header
/// table and push out the entries every call reuses (path, content-type, te, ...), making
/// each request's headers larger and costlier to encode and decode on both ends.
pub(crate) fn never_indexed(mut v: http::HeaderValue) -> http::HeaderValue {
    v.set_sensitive(true);
    v
}

/// The remote parent of a sampled caller: its `traceparent` (parsed already) and `tracestate`.
pub(crate) fn remote_parent(p: &TraceParent, headers: &http::HeaderMap) -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};
    let state = headers
        .get(&TRACESTATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceState>().ok())
        .unwrap_or_default();
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(((p.trace_hi as u128) << 64) | p.trace_lo as u128),
        SpanId::from(p.span),
        TraceFlags::SAMPLED,
        true,
        state,
    ))
}

/// `traceparent` (and `tracestate`, when not empty) of the span context `cx` into `headers`.
pub(crate) fn inject(cx: &opentelemetry::Context, headers: &mut http::HeaderMap) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    let trace = u128::from_be_bytes(sc.trace_id().to_bytes());
    headers.insert(
        TRACEPARENT.clone(),
        never_indexed(format_traceparent(
            (trace >> 64) as u64,
            trace as u64,
            u64::from_be_bytes(sc.span_id().to_bytes()),
            sc.is_sampled(),
        )),
    );
    let state = sc.trace_state().header();
    if !state.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&state)
    {
        headers.insert(TRACESTATE.clone(), never_indexed(v));
    }
}

/// The entry points of the `traceparent` fuzz target (`fuzz/` at the repository root):
/// hidden from the docs and not an API. The parser and writer stay crate-private; these call
/// them unchanged.
#[doc(hidden)]
pub mod fuzzing {
    /// The fields [`parse_traceparent`] reads from a `traceparent` value.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Parsed {
        /// Version `00` (a later version is read as `00` when its fields fit).
        pub version00: bool,
        pub trace_hi: u64,
        pub trace_lo: u64,
        pub span: u64,
        pub sampled: bool,
    }

    /// Parse a `traceparent` header value as the server layer does.
    pub fn parse_traceparent(v: &http::HeaderValue) -> Option<Parsed> {
        super::parse_traceparent(v).map(|p| Parsed {
            version00: p.version00,
            trace_hi: p.trace_hi,
            trace_lo: p.trace_lo,
            span: p.span,
            sampled: p.sampled,
        })
    }

    /// Write a version-00 `traceparent` as the client layer does.
    pub fn format_traceparent(
        trace_hi: u64,
        trace_lo: u64,
        span: u64,
        sampled: bool,
    ) -> http::HeaderValue {
        super::format_traceparent(trace_hi, trace_lo, span, sampled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let v = http::HeaderValue::from_static(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        );
        let p = parse_traceparent(&v).unwrap();
        assert!(p.sampled && p.version00);
        assert_eq!(p.trace_hi, 0x4bf92f3577b34da6);
        assert_eq!(p.trace_lo, 0xa3ce929d0e0e4736);
        assert_eq!(p.span, 0x00f067aa0ba902b7);
        assert_eq!(format_traceparent(p.trace_hi, p.trace_lo, p.span, true), v);
        let unsampled = format_traceparent(p.trace_hi, p.trace_lo, p.span, false);
        assert!(!parse_traceparent(&unsampled).unwrap().sampled);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(
                parse_traceparent(&http::HeaderValue::from_static(bad)),
                None,
                "{bad}"
            );
        }
        // A later version is read as 00 when its extra fields are dash-separated.
        let v1 = http::HeaderValue::from_static(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra",
        );
        let p = parse_traceparent(&v1).unwrap();
        assert!(!p.sampled && !p.version00);
    }
}
