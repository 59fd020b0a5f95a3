//! Counts every gRPC call by method, status code and canary variant, with
//! its latency.
//!
//! The status is read from the `grpc-status` response header, where tonic puts
//! it for every error of a unary call (a trailers-only response); a response
//! without it is a success whose status 0 travels in the trailers.
//!
//! The variant is read from the [`VARIANT_HEADER`] response header, which
//! the handlers set on every answer once they know the call's variant (and
//! put in the metadata of an error after that point). Its values come from
//! the control file's configured variants and the default one; a call
//! without it (health, reflection, a call refused by a protection layer or
//! by validation before the canary ran) counts under `variant="none"`. At
//! most [`MAX_VARIANTS`] names are kept per method; past that a new name
//! counts under `variant="other"`, so the series stay bounded whatever a
//! handler sends.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use metrics::{Counter, Histogram};
use tower::{Layer, Service};

/// Response header naming the canary variant that served a call.
pub const VARIANT_HEADER: &str = "x-pricing-variant";

/// The `variant` label of a call that carries none.
pub const NO_VARIANT: &str = "none";

/// The `variant` label past [`MAX_VARIANTS`] names for one method.
pub const OTHER_VARIANT: &str = "other";

/// Variant names kept per method.
pub const MAX_VARIANTS: usize = 32;

/// Records `pricing_grpc_requests_total{service, method, code, variant}` and
/// `pricing_grpc_request_duration_seconds{service, method, variant}`.
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
            let variant = match &result {
                Ok(resp) => resp.headers().get(VARIANT_HEADER).and_then(|v| v.to_str().ok()),
                Err(_) => None,
            };
            let by_variant = metrics.variant(variant);
            by_variant.requests(code).increment(1);
            by_variant.duration.record(started.elapsed().as_secs_f64());
            result
        })
    }
}

/// The metrics of one method, registered once per variant: a call then
/// records without building label strings or a metric key.
struct MethodMetrics {
    service: String,
    method: String,
    /// Calls without a variant.
    none: Arc<VariantMetrics>,
    /// By variant name, at most [`MAX_VARIANTS`].
    variants: RwLock<HashMap<String, Arc<VariantMetrics>>>,
    /// Names past the bound.
    other: OnceLock<Arc<VariantMetrics>>,
}

/// One method's metrics for one variant.
struct VariantMetrics {
    service: String,
    method: String,
    variant: String,
    duration: Histogram,
    /// One counter per status code (index = code, the last for any other),
    /// registered on first use so that only codes seen become series.
    requests: [OnceLock<Counter>; 18],
}

impl MethodMetrics {
    fn new(path: &str) -> MethodMetrics {
        let (service, method) = split_path(path);
        let none = Arc::new(VariantMetrics::new(&service, &method, NO_VARIANT));
        MethodMetrics { service, method, none, variants: RwLock::default(), other: OnceLock::new() }
    }

    fn variant(&self, variant: Option<&str>) -> Arc<VariantMetrics> {
        let Some(variant) = variant else { return Arc::clone(&self.none) };
        if let Some(found) = self.variants.read().unwrap_or_else(|e| e.into_inner()).get(variant) {
            return Arc::clone(found);
        }
        let mut map = self.variants.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(variant) {
            return Arc::clone(found);
        }
        if map.len() >= MAX_VARIANTS {
            return Arc::clone(
                self.other.get_or_init(|| Arc::new(VariantMetrics::new(&self.service, &self.method, OTHER_VARIANT))),
            );
        }
        let built = Arc::new(VariantMetrics::new(&self.service, &self.method, variant));
        map.insert(variant.to_owned(), Arc::clone(&built));
        built
    }
}

impl VariantMetrics {
    fn new(service: &str, method: &str, variant: &str) -> VariantMetrics {
        let duration = metrics::histogram!(
            "pricing_grpc_request_duration_seconds",
            "service" => service.to_owned(), "method" => method.to_owned(), "variant" => variant.to_owned()
        );
        VariantMetrics {
            service: service.to_owned(),
            method: method.to_owned(),
            variant: variant.to_owned(),
            duration,
            requests: Default::default(),
        }
    }

    fn requests(&self, code: i32) -> &Counter {
        let index = usize::try_from(code).ok().filter(|&i| i < 17).unwrap_or(17);
        self.requests[index].get_or_init(|| {
            metrics::counter!(
                "pricing_grpc_requests_total",
                "service" => self.service.clone(), "method" => self.method.clone(), "code" => code_name(code),
                "variant" => self.variant.clone()
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
        let none = a.variant(None);
        let _ = none.requests(3);
        let _ = none.requests(99);
        assert!(none.requests[3].get().is_some() && none.requests[17].get().is_some());
        assert!(none.requests[0].get().is_none(), "codes not seen are not series");
        assert_eq!(none.variant, NO_VARIANT);
    }

    #[test]
    fn variants_are_kept_per_method_up_to_the_bound() {
        let m = MethodMetrics::new("/pricing.v1.Test/Variants");
        let beta = m.variant(Some("beta"));
        assert!(Arc::ptr_eq(&beta, &m.variant(Some("beta"))), "registered once");
        assert_eq!(beta.variant, "beta");
        for i in 1..MAX_VARIANTS {
            assert_eq!(m.variant(Some(&format!("v{i}"))).variant, format!("v{i}"));
        }
        assert_eq!(m.variant(Some("one-too-many")).variant, OTHER_VARIANT);
        assert_eq!(m.variant(Some("beta")).variant, "beta", "names kept stay");
    }

    #[tokio::test]
    async fn the_layer_counts_a_call_under_the_variant_its_answer_names() {
        use tower::ServiceExt as _;
        let answer = |variant: Option<&'static str>, status: &'static str| {
            tower::service_fn(move |_req: http::Request<()>| async move {
                let mut response = http::Response::builder().header("grpc-status", status);
                if let Some(variant) = variant {
                    response = response.header(VARIANT_HEADER, variant);
                }
                Ok::<_, std::convert::Infallible>(response.body(()).unwrap_or_default())
            })
        };
        let path = "/pricing.v1.Test/LayerVariant";
        let call = || http::Request::builder().uri(path).body(()).unwrap_or_default();
        GrpcMetricsLayer.layer(answer(Some("layer-beta"), "14")).oneshot(call()).await.ok();
        GrpcMetricsLayer.layer(answer(None, "0")).oneshot(call()).await.ok();
        let m = method_metrics(path);
        let beta = m.variant(Some("layer-beta"));
        assert!(beta.requests[14].get().is_some(), "an error counted under the variant of its metadata");
        assert!(beta.requests[0].get().is_none());
        assert!(m.none.requests[0].get().is_some(), "a call without a variant counts under none");
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
