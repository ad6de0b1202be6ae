//! The Prometheus text (0.0.4) and OpenMetrics (1.0.0) parsers the aggregator runs on every
//! scraped target (`exposition::parse_as`). Input: a format byte (bit 0: OpenMetrics), then
//! the exposition. Asserts what `/federate` relies on: families that parse are written (by
//! `write_families`, exemplars kept) as an exposition that parses to the same families
//! (NaN equal to NaN), and writing those again gives the same text.
#![no_main]

use akidb_fuzz::same_families;
use akidb_instrumentation::exposition::{Format, parse_as, write_families};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [flags, text @ ..] = data else {
        return;
    };
    let format = if flags & 1 != 0 {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(families) = parse_as(text, format) else {
        return;
    };
    let mut out = String::new();
    write_families(&mut out, format, &families, |_, s| s.exemplar.clone());
    let back = match parse_as(&out, format) {
        Ok(b) => b,
        Err(e) => panic!("written exposition does not parse: {e}\n{out}"),
    };
    assert!(
        same_families(&families, &back),
        "families changed on a write and parse:\n{families:?}\n{back:?}\n{out}"
    );
    let mut again = String::new();
    write_families(&mut again, format, &back, |_, s| s.exemplar.clone());
    assert_eq!(again, out, "the written exposition is not canonical");
});
