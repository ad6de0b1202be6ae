//! Head sampling at `--trace-sample-ratio 0`: a request without `traceparent`, or with one
//! whose flags are `00`, exports no span from any hop (not even the inner span of the back
//! service); the back service receives the caller's `traceparent` with flags `00` when it sent
//! one, and the `akidb-untraced` marker (no `traceparent`) when it did not; a sampled caller is
//! still followed through every hop.
//!
//! One test per file: `init` installs process-wide tracing state.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_zero_exports_only_sampled_callers() {
    let chain = start(0.0).await;

    // No traceparent: not sampled; back is told so, with no made-up context.
    let got = chain.call(None).await;
    assert_eq!(
        got,
        Received {
            traceparent: None,
            untraced: true
        }
    );

    // traceparent with flags 00: back gets the caller's trace and parent span, flags 00.
    let (t0, p0) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let got = chain.call(Some(format!("00-{t0}-{p0}-00"))).await;
    assert_eq!(got.traceparent, Some(format!("00-{t0}-{p0}-00")));
    assert!(!got.untraced, "{got:?}");

    // A sampled caller: the whole chain is exported and linked.
    let (t1, p1) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let got = chain.call(Some(format!("00-{t1}-{p1}-01"))).await;
    let got = got.traceparent.expect("back receives a traceparent");
    let (trace, parent, flags) = parts(&got);
    assert_eq!((trace.as_str(), flags.as_str()), (t1, "01"));
    let client = chain.linked(t1, Some(p1)).await;
    assert_eq!(parent, client, "back's parent is front's client span");

    // Nothing else: the two unsampled requests left no span (spans are exported in order,
    // and these were ended before the sampled ones).
    chain.assert_only(t1, "unsampled spans exported").await;
}
