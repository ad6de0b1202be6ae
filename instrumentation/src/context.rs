//! The request a task serves: whether it is traced, and its method.
//!
//! The server layer ([`crate::layers`]) decides how each request is traced before any span is
//! built and keeps the decision in a tokio task-local around the handler's future. Outgoing
//! calls (the client layer) read it to know what to propagate, [`step_span`] to know that a
//! costly step needs no span, and the log layer to name the method of an untraced request.
//! [`RequestScope`] carries it to threads of the blocking pool and scoped threads.

use crate::propagation::Untraced;
use opentelemetry::trace::{TraceContextExt as _, TraceId};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How the request a task serves is traced, and its method (for log lines).
#[derive(Clone)]
pub(crate) struct RequestCtx {
    /// `service/method`.
    pub(crate) name: &'static str,
    pub(crate) trace: RequestTrace,
}

#[derive(Clone)]
pub(crate) enum RequestTrace {
    Traced,
    /// Not traced, with the caller's context to forward, if any.
    Untraced(Option<Untraced>),
}

tokio::task_local! {
    /// Set by the server layer around the handler's future: outgoing calls and costly steps
    /// of the request read it; [`RequestScope`] carries it to other threads.
    static REQUEST: RequestCtx;
}

/// The current span and request of this task, carried to a thread of the blocking pool or a
/// scoped thread (`RequestScope::current()` here, `.in_scope(f)` there): the work done there
/// is traced, or not, as the request is.
#[derive(Clone)]
pub struct RequestScope {
    span: tracing::Span,
    request: Option<RequestCtx>,
}

impl RequestScope {
    pub fn current() -> Self {
        RequestScope {
            span: tracing::Span::current(),
            request: REQUEST.try_with(RequestCtx::clone).ok(),
        }
    }

    /// Run `f` in the carried span and request.
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let RequestScope { span, request } = self;
        match request {
            Some(r) => REQUEST.sync_scope(r, || span.in_scope(f)),
            None => span.in_scope(f),
        }
    }
}

/// Run `f` as inside an untraced request for `path` (tests of the log layer).
#[cfg(test)]
pub(crate) fn in_untraced_request<R>(path: &str, f: impl FnOnce() -> R) -> R {
    let ctx = RequestCtx {
        name: Box::leak(path.trim_start_matches('/').to_string().into_boxed_str()),
        trace: RequestTrace::Untraced(None),
    };
    REQUEST.sync_scope(ctx, f)
}

/// The method of the untraced request this task or thread serves: log lines inside it say
/// `rpc=<name>` (a traced request's log lines show its span instead).
pub(crate) fn untraced_request_name() -> Option<&'static str> {
    REQUEST
        .try_with(|r| matches!(r.trace, RequestTrace::Untraced(_)).then_some(r.name))
        .ok()
        .flatten()
}

/// The trace id of `span` when it is sampled (exported).
pub fn span_trace_id(span: &tracing::Span) -> Option<TraceId> {
    let cx = span.context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id())
}

/// The trace id of the current span when it is sampled: a traced request's (its span or a
/// step span inside it) or sampled background work's. `None` inside an untraced request
/// without asking the span (it has none). Exemplars.
pub fn current_trace_id() -> Option<TraceId> {
    match REQUEST.try_with(|r| matches!(r.trace, RequestTrace::Traced)) {
        Ok(false) => None,
        _ => span_trace_id(&tracing::Span::current()),
    }
}

/// The trace of the request the current task or thread serves; `None` outside a request
/// (background work).
pub(crate) fn current_trace() -> Option<RequestTrace> {
    REQUEST.try_with(|r| r.trace.clone()).ok()
}

/// The span of a costly step (`segment.search`, `wal.commit`, ...): `make()` unless the
/// current request is not traced, where the span would be skipped by the exporter anyway and
/// only cost its bookkeeping (`Span::none()` then). Work outside a request (background) gets
/// its span, a trace root sampled at the ratio.
pub fn step_span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    let untraced = REQUEST
        .try_with(|r| matches!(r.trace, RequestTrace::Untraced(_)))
        .unwrap_or(false);
    if untraced {
        tracing::Span::none()
    } else {
        make()
    }
}

/// Run `fut` as the request `ctx` (the server layer, around a handler's future).
pub(crate) fn scope<F: std::future::Future>(
    ctx: RequestCtx,
    fut: F,
) -> tokio::task::futures::TaskLocalFuture<RequestCtx, F> {
    REQUEST.scope(ctx, fut)
}
