//! The life of a service process, the same for all four services.
//!
//! ```text
//! Service::new ─► starting ─► running ─► stopping ─► stopped
//!                 (health      (until     (the gRPC   (background tasks
//!                  NOT_SERVING  SIGINT/    server      told to stop
//!                  until the    SIGTERM,   drains;     and joined)
//!                  service's    or a       the
//!                  start work   failed     service's
//!                  is done)     start)     stop work)
//! ```
//!
//! A service builds a [`Service`], hands it its background tasks ([`Service::spawn`], the
//! HTTP port with [`Service::serve_http`]) and calls [`Service::run`] with its gRPC routes, its
//! start work and its stop work. gRPC (with health and reflection) serves from the first
//! moment, so probes see NOT_SERVING while a service starts; stop is one cancellation token,
//! never an `abort()`: in-flight calls finish, then the service's stop work runs (storage
//! flushes its WALs), then every background task ends and is joined.
//!
//! [`serve`] is what runs around it in a process (each service binary through [`main`], and
//! `akidb serve <service>`): logs, metrics and traces set up, addresses bound, SIGINT/SIGTERM
//! as the shutdown, traces flushed at the end.

use crate::config::TelemetryArgs;
use crate::metrics::Component;
use crate::tls::{ServerTls, TlsArgs};
use crate::transport::{builder, incoming, reflection};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Resolves when the service must stop ([`shutdown_signal`], as [`serve`] passes it).
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// A bound port of a service, and the TLS it serves with (none: plaintext).
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<ServerTls>,
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }
}

impl From<TcpListener> for Listener {
    fn from(tcp: TcpListener) -> Self {
        Listener { tcp, tls: None }
    }
}

/// What a service runs on: its bound gRPC and HTTP listeners, and the future that says when
/// to stop.
pub struct Serving {
    pub grpc: Listener,
    pub http: Listener,
    pub shutdown: Shutdown,
}

impl Serving {
    /// Plaintext on both ports.
    pub fn new(
        grpc: TcpListener,
        http: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Serving {
            grpc: grpc.into(),
            http: http.into(),
            shutdown: Box::pin(shutdown),
        }
    }

    /// Both ports serve TLS with `tls` (if some); only the gRPC port asks for client
    /// certificates (`--tls-client-ca`).
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Self {
        self.grpc.tls = tls.clone();
        self.http.tls = tls;
        self
    }
}

/// What the lifecycle needs to know of a service's flags.
pub trait ServiceConfig: clap::Args + Send + 'static {
    /// Which service these are the flags of (its metrics, its log and trace name).
    const COMPONENT: Component;
    /// The (gRPC, HTTP) addresses it listens on.
    fn addrs(&self) -> (std::net::SocketAddr, std::net::SocketAddr);
    /// Its TLS flags.
    fn tls(&self) -> &TlsArgs;
}

/// Run a service as a process does: set up logs, metrics and traces for it, read its TLS
/// files (what it serves with, and what its calls to the other services use), bind its gRPC
/// and HTTP addresses, `run` it until SIGINT/SIGTERM, then flush traces. What each service
/// binary and `akidb serve <service>` do.
pub async fn serve<C, F, Fut>(config: C, telemetry: TelemetryArgs, run: F) -> anyhow::Result<()>
where
    C: ServiceConfig,
    F: FnOnce(C, Serving) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let guard = crate::init::init(C::COMPONENT, &telemetry)?;
    crate::idle_poll::start(Duration::from_micros(telemetry.idle_poll_us));
    crate::tls::set_client(config.tls().client()?);
    let tls = config.tls().server()?;
    let (grpc_addr, http_addr) = config.addrs();
    let grpc = TcpListener::bind(grpc_addr).await?;
    let http = TcpListener::bind(http_addr).await?;
    let on = Serving::new(grpc, http, shutdown_signal()).with_tls(tls);
    let res = run(config, on).await;
    guard.shutdown().await;
    res
}

/// Declares `Listen`, a service's listen flags: `--grpc-addr` and `--metrics-addr` (the HTTP
/// port: `/metrics`, `/healthz`, `/tracing`), read from `AKIDB_<SERVICE>_GRPC_ADDR` and
/// `AKIDB_<SERVICE>_METRICS_ADDR`, on loopback at the service's default ports by default;
/// `--max-message-bytes`; the TLS flags ([`crate::tls::TlsArgs`]); and
/// makes `$config` (which flattens it as its field `listen`) a
/// [`ServiceConfig`] of `$component`.
///
/// ```text
/// akidb_instrumentation::listen_args!(QueryConfig, Query, "QUERY", 50051, 9101);
/// ```
#[macro_export]
macro_rules! listen_args {
    ($config:ident, $component:ident, $service:literal, $grpc_port:literal, $http_port:literal) => {
        #[doc = concat!("Where the ", $service, " service listens.")]
        #[derive(Debug, Clone, clap::Args)]
        pub struct Listen {
            /// gRPC listen address.
            #[arg(
                                                long = "grpc-addr",
                                                env = concat!("AKIDB_", $service, "_GRPC_ADDR"),
                                                default_value = concat!("127.0.0.1:", $grpc_port)
                                            )]
            pub grpc_addr: std::net::SocketAddr,
            /// HTTP listen address: `/metrics`, `/healthz` and `/tracing`.
            #[arg(
                                                long = "metrics-addr",
                                                env = concat!("AKIDB_", $service, "_METRICS_ADDR"),
                                                default_value = concat!("127.0.0.1:", $http_port)
                                            )]
            pub metrics_addr: std::net::SocketAddr,
            /// Largest gRPC message the service takes or sends, in bytes; a larger request is
            /// RESOURCE_EXHAUSTED before it is read.
            #[arg(
                                                long = "max-message-bytes",
                                                env = concat!("AKIDB_", $service, "_MAX_MESSAGE_BYTES"),
                                                default_value_t = $crate::transport::DEFAULT_MAX_MESSAGE_BYTES
                                            )]
            pub max_message_bytes: usize,
            #[command(flatten)]
            pub tls: $crate::tls::TlsArgs,
        }

        impl $crate::lifecycle::ServiceConfig for $config {
            const COMPONENT: $crate::metrics::Component = $crate::metrics::Component::$component;
            fn addrs(&self) -> (std::net::SocketAddr, std::net::SocketAddr) {
                (self.listen.grpc_addr, self.listen.metrics_addr)
            }
            fn tls(&self) -> &$crate::tls::TlsArgs {
                &self.listen.tls
            }
        }
    };
}

/// A service binary's flags: the service's own and the shared telemetry ones.
#[derive(clap::Parser)]
struct ServiceArgs<C: clap::Args> {
    #[command(flatten)]
    config: C,
    #[command(flatten)]
    telemetry: TelemetryArgs,
}

/// The `main` of a service binary (`akidb-storage`, ...): parse the flags, then [`serve`] on a
/// multi-threaded runtime.
pub fn main<C, F, Fut>(name: &'static str, about: &'static str, run: F) -> anyhow::Result<()>
where
    C: ServiceConfig,
    F: FnOnce(C, Serving) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    use clap::{CommandFactory, FromArgMatches};
    let command = ServiceArgs::<C>::command()
        .name(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"));
    let args = ServiceArgs::<C>::from_arg_matches(&command.get_matches())?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args.config, args.telemetry, run))
}

/// One running service: its health, its stop token and its background tasks.
pub struct Service {
    component: Component,
    /// Cancelled when the service must stop: the shutdown future resolved, or its start work
    /// failed. The gRPC server drains on it.
    stop: CancellationToken,
    /// Cancelled after the gRPC server has drained and the service's stop work is done: the
    /// background tasks end on it.
    background: CancellationToken,
    /// Background tasks, joined (never aborted) when the service stops.
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// What `grpc.health.v1` answers; the service sets it as it starts and as its upstreams
    /// come and go.
    health: HealthReporter,
    /// Who the gRPC server lets in (API keys): a layer around every route, inside the
    /// instrumentation layer. Lets everything in until [`Service::guard`] sets one.
    guard: Guard,
}

/// A service's gRPC routes behind the layers of its gRPC port, to call in the process (what
/// [`Service::local`] gives).
pub type Local = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

/// A layer around every gRPC route of a service (its API key check), type-erased.
pub type Guard = tower::util::BoxCloneSyncServiceLayer<
    tonic::service::Routes,
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    std::convert::Infallible,
>;

impl Service {
    /// A service that stops when `shutdown` resolves. Health answers NOT_SERVING for the
    /// whole server (`""`) until the service says otherwise.
    pub async fn new(
        component: Component,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let stop = CancellationToken::new();
        let on_signal = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown => on_signal.cancel(),
                _ = on_signal.cancelled() => {}
            }
        });
        let health = HealthReporter::new();
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        Service {
            component,
            stop,
            background: CancellationToken::new(),
            tasks: Vec::new(),
            health,
            guard: Guard::new(tower::layer::util::Identity::new()),
        }
    }

    /// Check every gRPC call with `layer` (the service's API key check) before any handler
    /// runs.
    pub fn guard<L>(&mut self, layer: L)
    where
        L: tower::Layer<tonic::service::Routes> + Send + Sync + 'static,
        L::Service: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    {
        self.guard = Guard::new(layer);
    }

    /// `routes` behind the same layers as the gRPC port (the instrumentation layer, then the
    /// guard), to be called in the process: the REST port calls the API through it, so its
    /// calls are counted, traced and let in as gRPC calls are. Call after [`Service::guard`].
    pub fn local(&self, routes: tonic::service::Routes) -> Local {
        Local::new(
            tower::ServiceBuilder::new()
                .layer(crate::layers::ServerLayer)
                .layer(self.guard.clone())
                .service(routes),
        )
    }

    /// What `grpc.health.v1` answers.
    pub fn health(&self) -> &HealthReporter {
        &self.health
    }

    /// A background task that runs until the service has stopped serving: `task` gets the
    /// future that resolves then, and must end soon after it does.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(WaitForCancellationFutureOwned) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let fut = task(self.background.clone().cancelled_owned());
        self.tasks.push((name, tokio::spawn(fut)));
    }

    /// Serve the HTTP port (`/metrics`, `/healthz`, `/tracing`, and any `extra` routes) on
    /// `listener` until the service has stopped.
    pub fn serve_http(
        &mut self,
        listener: impl Into<Listener>,
        extra: Option<axum::Router>,
        access: crate::http::Access,
    ) {
        let listener = listener.into();
        self.spawn("http", move |stopped| async move {
            let extra = extra.unwrap_or_default();
            if let Err(e) =
                crate::http::serve(listener.tcp, listener.tls, extra, access, stopped).await
            {
                tracing::error!(error = %e, "HTTP port failed");
            }
        });
    }

    /// Serve gRPC on `listener` (health, reflection and `routes`; over TLS if it has TLS),
    /// do the service's `starting`
    /// work while it serves, and run until the service must stop; then let in-flight calls
    /// finish, run `stopping`, and stop and join the background tasks. A failed `starting`
    /// stops the service and is returned.
    pub async fn run<St, Sp, SpFut>(
        mut self,
        listener: impl Into<Listener>,
        routes: tonic::service::Routes,
        starting: St,
        stopping: Sp,
    ) -> anyhow::Result<()>
    where
        St: Future<Output = anyhow::Result<()>>,
        Sp: FnOnce() -> SpFut,
        SpFut: Future<Output = ()>,
    {
        let listener = listener.into();
        let health = HealthServer::new(HealthService::from_health_reporter(self.health.clone()));
        let mut server = builder();
        if let Some(tls) = &listener.tls {
            server = server.tls_config(tls.tonic())?;
        }
        let server = tokio::spawn(
            server
                .layer(self.guard.clone())
                .add_routes(routes)
                .add_service(health)
                .add_service(reflection()?)
                .serve_with_incoming_shutdown(
                    incoming(listener.tcp),
                    self.stop.clone().cancelled_owned(),
                ),
        );
        let failure = match starting.await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "{} failed to start", self.component.as_str());
                self.stop.cancel();
                Some(e)
            }
        };
        let served = server.await;
        stopping().await;
        self.background.cancel();
        for (name, task) in self.tasks.drain(..) {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "background task failed");
            }
        }
        tracing::info!("{} stopped", self.component.as_str());
        if let Some(e) = failure {
            return Err(e);
        }
        served??;
        Ok(())
    }
}
