//! A protected service that keeps its gRPC name, so it can be added to a
//! tonic server like the generated service it wraps.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use pricing_control::Switchboard;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::{Layer, Service};

use crate::stack::{Protection, protection};

/// `S` (the layered service) under the name of `T` (the generated service).
pub struct Named<T, S> {
    service: S,
    _named: PhantomData<fn() -> T>,
}

impl<T, S: Clone> Clone for Named<T, S> {
    fn clone(&self) -> Self {
        Named { service: self.service.clone(), _named: PhantomData }
    }
}

impl<T: NamedService, S> NamedService for Named<T, S> {
    const NAME: &'static str = T::NAME;
}

impl<T, S: Service<R>, R> Service<R> for Named<T, S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.service.call(request)
    }
}

/// `service` behind every protection layer of the board, under its own name.
pub fn protect<T>(board: &Switchboard, service: T) -> Named<T, <Protection as Layer<T>>::Service>
where
    T: NamedService,
    Protection: Layer<T>,
{
    Named { service: Layer::layer(&protection(board), service), _named: PhantomData }
}

/// Serves `service` the way every server here does
/// ([`pricing_telemetry::serve_grpc`], with the board's admin view at
/// `/config`), behind every protection layer when a control file governs
/// the board. Without one (the embedded default) there are no caller
/// accounts to check, so the layers are left out, with a warning.
pub async fn serve_guarded<T>(
    listener: tokio::net::TcpListener,
    settings: &pricing_telemetry::ServerSettings,
    descriptor_sets: &[&'static [u8]],
    board: &Switchboard,
    service: T,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()>
where
    T: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    T::Future: Send + 'static,
    Protection: Layer<T>,
    <Protection as Layer<T>>::Service: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <<Protection as Layer<T>>::Service as Service<http::Request<Body>>>::Future: Send + 'static,
{
    let admin = Some(board.admin_endpoint());
    if board.has_file() {
        let protected = protect(board, service);
        pricing_telemetry::serve_grpc(listener, settings, descriptor_sets, admin, protected, shutdown).await
    } else {
        tracing::warn!("no control file: caller accounts and quotas are not enforced");
        pricing_telemetry::serve_grpc(listener, settings, descriptor_sets, admin, service, shutdown).await
    }
}
