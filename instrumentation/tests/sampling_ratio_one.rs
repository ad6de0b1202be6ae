//! Head sampling at `--trace-sample-ratio 1`: a request without `traceparent` starts a new
//! trace that every hop exports, linked; a caller's `traceparent` with flags `00` is still
//! followed (parent-based): nothing exported, back receives flags `00`.
//!
//! One test per file: `init` installs process-wide tracing state.

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_one_exports_every_new_trace() {
    let chain = start(1.0).await;

    // An unsampled caller first.
    let (t0, p0) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let got = chain.call(Some(format!("00-{t0}-{p0}-00"))).await;
    assert_eq!(got.traceparent, Some(format!("00-{t0}-{p0}-00")));

    // No traceparent: a new sampled trace through both hops.
    let got = chain
        .call(None)
        .await
        .traceparent
        .expect("back receives a traceparent");
    let (trace, parent, flags) = parts(&got);
    assert_eq!(flags, "01", "{got}");
    let client = chain.linked(&trace, None).await;
    assert_eq!(parent, client, "back's parent is front's client span");

    chain
        .assert_only(&trace, "spans other than the sampled trace's")
        .await;
}
