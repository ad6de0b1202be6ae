//! How every AkiDB service serves and calls gRPC: the instrumented tonic server builder,
//! accepted connections without Nagle, reflection, and the instrumented client channel.

use crate::layers::{ClientLayer, ClientService, ServerLayer};
use std::time::Duration;
use tower::layer::util::{Identity, Stack};

/// The default of every service's `--max-message-bytes`.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A tonic server with AkiDB's instrumentation and transport settings (no Nagle, HTTP/2
/// keep-alive so dead peers are noticed, at most
/// [`akidb_proto::limits::MAX_CONCURRENT_PER_CONNECTION`] calls per connection).
pub fn builder() -> tonic::transport::Server<Stack<ServerLayer, Identity>> {
    let per_connection = akidb_proto::limits::MAX_CONCURRENT_PER_CONNECTION;
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // A connection may not hold more calls at once than this: HTTP/2 tells the client,
        // and the server makes further calls wait.
        .max_concurrent_streams(Some(per_connection as u32))
        .concurrency_limit_per_connection(per_connection)
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .layer(ServerLayer)
}

/// The accepted connections of `listener`, with Nagle off. `Server::tcp_nodelay` only applies
/// when tonic binds the socket itself; with `serve_with_incoming` each service must set it,
/// or small responses wait for the peer's delayed ACK (40 ms on Linux).
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// gRPC server reflection for the `akidb.v1` API and `grpc.health.v1`.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(akidb_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// What [`channel`] returns: a cloneable, `Send + Sync` gRPC transport, so that a client
/// built on it can live in a tonic service (whose handlers must be `Sync`).
pub type Channel = ClientService<tonic::transport::Channel>;

/// A channel to another AkiDB service: lazy connect (a peer that is down does not fail
/// start-up), no Nagle, keep-alive, a connect timeout, and the client layer.
pub fn channel(
    endpoint: &str,
    connect_timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    channel_with(endpoint, connect_timeout, ClientLayer::default())
}

/// [`channel`] with a client layer of the caller's (credentials). An `https://` endpoint is
/// reached over TLS as [`crate::tls::client`] says (CA, name check, client certificate); an
/// endpoint without a scheme is `https://` when the process has a CA (`--ca-cert`).
pub fn channel_with(
    endpoint: &str,
    connect_timeout: Duration,
    layer: ClientLayer,
) -> Result<Channel, tonic::transport::Error> {
    Ok(tower::Layer::layer(
        &layer,
        plain_channel(endpoint, connect_timeout)?,
    ))
}

/// [`channel`] without the client layer: for a front that passes its caller's calls on as
/// they came (the REST port's writes to ingest), whose trace and metrics are the server's.
pub fn plain_channel(
    endpoint: &str,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let tls = crate::tls::client();
    let url = tls.url(endpoint);
    let mut ep = tonic::transport::Endpoint::from_shared(url.clone())?;
    if url.starts_with("https://") {
        ep = ep.tls_config(tls.tonic())?;
    }
    let ch = ep
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy();
    Ok(ch)
}
