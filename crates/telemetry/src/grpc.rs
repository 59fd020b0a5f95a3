//! Serving one gRPC service the way every server here does: health (with
//! NOT_SERVING while draining), reflection (v1 and v1alpha), per-call
//! metrics, an optional `/metrics` endpoint, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::ServerSettings;

/// Serves `service` on `listener` until `shutdown` resolves, then reports
/// NOT_SERVING for `settings.drain_grace()`, stops accepting and finishes
/// the calls in flight.
pub async fn serve_grpc<S>(
    listener: TcpListener,
    settings: &ServerSettings,
    descriptor_sets: &[&'static [u8]],
    admin: Option<crate::AdminView>,
    service: S,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    // Install the recorder before the first call so no count is lost.
    let _ = crate::prometheus();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status(S::NAME, tonic_health::ServingStatus::Serving).await;
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    let (reflection, reflection_v1alpha) = crate::reflection(descriptor_sets)?;

    let (metrics_stop, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = settings.metrics_listen {
        let metrics_listener = TcpListener::bind(addr).await.with_context(|| format!("bind metrics on {addr}"))?;
        tokio::spawn(crate::serve_metrics(metrics_listener, admin, async {
            let _ = metrics_stopped.await;
        }));
    }

    let addr = listener.local_addr()?;
    tracing::info!(%addr, service = S::NAME, metrics = ?settings.metrics_listen, "serving");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let drain = crate::drain(shutdown, health, &[S::NAME], settings.drain_grace());
    let result = Server::builder()
        .layer(crate::GrpcMetricsLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, drain)
        .await
        .context("grpc server");
    let _ = metrics_stop.send(());
    tracing::info!(%addr, service = S::NAME, "stopped");
    result
}
