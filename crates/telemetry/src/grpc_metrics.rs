//! Counts every gRPC call by method and status code, with its latency.
//!
//! The status is read from the `grpc-status` response header, where tonic puts
//! it for every error of a unary call (a trailers-only response); a response
//! without it is a success whose status 0 travels in the trailers.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

/// Records `pricing_grpc_requests_total{service, method, code}` and
/// `pricing_grpc_request_duration_seconds{service, method}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let metrics = method_metrics(req.uri().path());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .unwrap_or(0),
                Err(_) => 13,
            };
            metrics.requests(code).increment(1);
            metrics.duration.record(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// The metrics of one method, registered once: a call then records without
/// building label strings or a metric key.
struct MethodMetrics {
    service: String,
    method: String,
    duration: Histogram,
    /// One counter per status code (index = code, the last for any other),
    /// registered on first use so that only codes seen become series.
    requests: [OnceLock<Counter>; 18],
}

impl MethodMetrics {
    fn new(path: &str) -> MethodMetrics {
        let (service, method) = split_path(path);
        let duration = metrics::histogram!(
            "pricing_grpc_request_duration_seconds", "service" => service.clone(), "method" => method.clone()
        );
        MethodMetrics { service, method, duration, requests: Default::default() }
    }

    fn requests(&self, code: i32) -> &Counter {
        let index = usize::try_from(code).ok().filter(|&i| i < 17).unwrap_or(17);
        self.requests[index].get_or_init(|| {
            metrics::counter!(
                "pricing_grpc_requests_total",
                "service" => self.service.clone(), "method" => self.method.clone(), "code" => code_name(code)
            )
        })
    }
}

/// Most methods kept; a client can send any path, so past this the metrics
/// of a new path are built per call and not kept.
const MAX_METHODS: usize = 256;

fn method_metrics(path: &str) -> Arc<MethodMetrics> {
    static METHODS: OnceLock<RwLock<HashMap<String, Arc<MethodMetrics>>>> = OnceLock::new();
    let methods = METHODS.get_or_init(Default::default);
    if let Some(found) = methods.read().unwrap_or_else(|e| e.into_inner()).get(path) {
        return Arc::clone(found);
    }
    let built = Arc::new(MethodMetrics::new(path));
    let mut map = methods.write().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_METHODS {
        return built;
    }
    Arc::clone(map.entry(path.to_owned()).or_insert(built))
}

fn split_path(path: &str) -> (String, String) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or("").rsplit('.').next().unwrap_or("").to_owned();
    let method = parts.next().unwrap_or("").to_owned();
    (service, method)
}

/// Canonical gRPC code names, as operators read them on dashboards.
pub fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_is_registered_once_and_codes_map_to_their_counter_slot() {
        let a = method_metrics("/pricing.v1.ListPricing/BatchGetPrices");
        let b = method_metrics("/pricing.v1.ListPricing/BatchGetPrices");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((a.service.as_str(), a.method.as_str()), ("ListPricing", "BatchGetPrices"));
        let _ = a.requests(3);
        let _ = a.requests(99);
        assert!(a.requests[3].get().is_some() && a.requests[17].get().is_some());
        assert!(a.requests[0].get().is_none(), "codes not seen are not series");
    }

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/pricing.v1.ListPricing/BatchGetPrices"),
            ("ListPricing".to_owned(), "BatchGetPrices".to_owned())
        );
        assert_eq!(split_path("/"), (String::new(), String::new()));
    }
}
