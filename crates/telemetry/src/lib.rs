//! Prometheus metrics, tracing, and the gRPC serving glue both servers share.
//!
//! Layout: [`init_logs`] sets up structured logs once (text, coloured only
//! on a terminal, or JSON lines); [`prometheus`] installs the process-wide
//! metrics recorder once and [`serve_metrics`] answers `GET /metrics` on its
//! own listener; [`GrpcMetricsLayer`] counts every call by method and status
//! with its latency; [`drain`] turns a shutdown signal into "health
//! NOT_SERVING, wait, then stop accepting".
#![forbid(unsafe_code)]

mod grpc;
mod grpc_metrics;
mod http_metrics;
mod settings;

use std::future::Future;
use std::io::IsTerminal as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use grpc::serve_grpc;
pub use grpc_metrics::{GrpcMetricsLayer, VARIANT_HEADER};
pub use http_metrics::{AdminView, serve_metrics};
pub use settings::{LogFormat, ServerSettings, ZONE_ENV};

/// Latency buckets in seconds: fine below a millisecond (memory hits), up to a second.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The price-result histogram: the discount of each answered price, in basis
/// points of the original price (0..=10000); its buckets are
/// [`DISCOUNT_BUCKETS`].
pub const DISCOUNT_METRIC: &str = "pricing_price_discount_basis_points";

/// Discount buckets in basis points: the depth bands' edges (10%, 30%, 50%,
/// 70%, 90% off) and finer steps at both ends (a 1% promotion, a 99% mistake).
pub const DISCOUNT_BUCKETS: &[f64] =
    &[100.0, 500.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 7000.0, 8000.0, 9000.0, 9500.0, 9900.0, 10000.0];

/// Sets up structured logging once per process in the text format;
/// `filter` is an env-filter directive such as "info" or
/// "pricing=debug,info". Later calls do nothing.
pub fn init_tracing(filter: &str) {
    init_logs(filter, LogFormat::Text);
}

/// Sets up logging once per process: `filter` as for [`init_tracing`], in
/// `format`. Text is coloured only when stdout is a terminal, so a file or
/// a pipe gets no escape codes; JSON is one object per line (Kubernetes log
/// collectors). Later calls do nothing.
pub fn init_logs(filter: &str, format: LogFormat) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_new(filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
        let _ = match format {
            LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).try_init(),
            LogFormat::Json => builder.json().with_current_span(false).try_init(),
        };
    });
}

/// The process-wide Prometheus recorder, installed on first use. Servers
/// started in one process (as in tests) share it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        #[expect(clippy::expect_used, reason = "LATENCY_BUCKETS and DISCOUNT_BUCKETS are non-empty constants")]
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("buckets are not empty")
            .set_buckets_for_metric(Matcher::Full(DISCOUNT_METRIC.into()), DISCOUNT_BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness): then
        // this handle renders only what it records, which is still correct.
        let _ = metrics::set_global_recorder(recorder);
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
        if let Err(error) = spawned {
            // Every scrape (render) drains the histograms too: only the
            // samples held between scrapes grow.
            tracing::error!(%error, "cannot start the metrics upkeep thread; histograms are drained by scrapes only");
        }
        handle
    })
}

/// Waits for `signal`, then marks the given gRPC services NOT_SERVING so that
/// load balancers and readiness probes stop sending traffic, waits `grace`
/// for them to notice, and returns: the server then stops accepting and
/// finishes the calls in flight.
pub async fn drain(
    signal: impl Future<Output = ()>,
    health: tonic_health::server::HealthReporter,
    services: &[&str],
    grace: Duration,
) {
    signal.await;
    tracing::info!(grace_ms = grace.as_millis() as u64, "draining: health not serving");
    for name in services {
        health.set_service_status(*name, tonic_health::ServingStatus::NotServing).await;
    }
    health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    tokio::time::sleep(grace).await;
}

/// What every server binary does once its config is loaded: structured
/// logs, a tokio runtime with `worker_threads` workers (0: one per core), the
/// listener on `listen`, and `serve` until SIGTERM or Ctrl-C.
pub fn run_server<F, Fut>(settings: &ServerSettings, serve: F) -> anyhow::Result<()>
where
    F: FnOnce(tokio::net::TcpListener, futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use anyhow::Context as _;
    init_logs(&settings.log, settings.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if settings.worker_threads > 0 {
        runtime.worker_threads(settings.worker_threads);
    }
    runtime.event_interval(settings.event_interval.max(1));
    let listen = settings.listen;
    runtime.enable_all().build()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("bind {listen}"))?;
        serve(listener, Box::pin(shutdown_signal())).await
    })
}

/// Resolves on SIGTERM or Ctrl-C.
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
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The gRPC reflection services for the given encoded descriptor sets, both
/// versions clients speak: `grpc.reflection.v1` (grpcurl, Postman) and
/// `grpc.reflection.v1alpha` (the Python grpcio-reflection client, older
/// grpcurl and several GUI clients, which get UNIMPLEMENTED without it).
#[allow(clippy::type_complexity)]
pub fn reflection(
    descriptor_sets: &[&'static [u8]],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
        for set in descriptor_sets {
            builder = builder.register_encoded_file_descriptor_set(set);
        }
        builder
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}
