//! `GET /metrics` over plain HTTP/1.1 on its own listener.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The admin view served at `/config`: the effective control config as JSON.
pub type AdminView = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves the Prometheus text format at `/metrics`, and the admin view at
/// `/config` when given, until `shutdown` resolves.
pub async fn serve_metrics(listener: TcpListener, admin: Option<AdminView>, shutdown: impl Future<Output = ()>) {
    let handle = crate::prometheus();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener accept failed");
                    continue;
                }
            },
        };
        let admin = admin.clone();
        #[expect(clippy::expect_used, reason = "the responses have static, valid status and header values")]
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let admin = admin.clone();
            async move {
                let response = if req.uri().path() == "/metrics" {
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(handle.render())))
                } else if let (Some(view), "/config") = (&admin, req.uri().path()) {
                    Response::builder().header("content-type", "application/json").body(Full::new(Bytes::from(view())))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::from_static(b"not found\n")))
                };
                Ok::<_, Infallible>(response.expect("static response parts are valid"))
            }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
