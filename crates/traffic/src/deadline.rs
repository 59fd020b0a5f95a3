//! Deadline propagation: the caller's `grpc-timeout` becomes a [`Deadline`]
//! in the request extensions, so that every store call can run under
//! min(its own timeout, what is left of the caller's). A call that arrives
//! with no time left (or less than `limits.min_deadline_ms`) is refused at
//! once with DEADLINE_EXCEEDED: its answer could not be used anyway.
//!
//! A call without `grpc-timeout` has no deadline (the stores' own timeouts
//! apply); a malformed header is ignored, as tonic itself does.
//!
//! Handlers take the deadline with [`call_deadline`]: the layer's extension,
//! or, on a server without the protection layers (no control file), the
//! call's own `grpc-timeout`, in both cases `limits.min_deadline_ms`
//! earlier: the time the server keeps to send its answer (and a call that
//! arrives with no more than that is refused by the layer). The handler
//! passes it to the read chain, which cuts every store call to it.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, Ready, ready};
use pricing_control::Switchboard;
use tower::{Layer, Service};

use crate::refuse;

/// When the caller stops waiting (a request extension): the stores' type,
/// so that a handler hands it down as it is.
pub use pricing_store::Deadline;

/// The budget of a call: `own`, or less when the request has a deadline.
pub fn budget(deadline: Option<&Deadline>, own: Duration) -> Duration {
    deadline.map_or(own, |d| d.budget(own))
}

/// The deadline a handler bounds its store calls with: the
/// [`DeadlineLayer`]'s extension, else the request's own `grpc-timeout`
/// (from now), `reserve` earlier (the time kept to answer; the control
/// file's `limits.min_deadline_ms`). `None` when the caller set no timeout.
pub fn call_deadline<T>(request: &tonic::Request<T>, reserve: Duration) -> Option<Deadline> {
    let deadline = request.extensions().get::<Deadline>().copied().or_else(|| {
        let header = request.metadata().get("grpc-timeout")?;
        parse_grpc_timeout(header.as_bytes()).map(Deadline::after)
    })?;
    Some(deadline.earlier_by(reserve))
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit
/// (H, M, S, m, u, n), per the gRPC over HTTP/2 spec.
pub fn parse_grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Puts the caller's deadline on the request and refuses calls out of time.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    board: Switchboard,
}

impl DeadlineLayer {
    pub fn new(board: Switchboard) -> DeadlineLayer {
        DeadlineLayer { board }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadlines<S>;

    fn layer(&self, inner: S) -> Deadlines<S> {
        Deadlines { inner, board: self.board.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Deadlines<S> {
    inner: S,
    board: Switchboard,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Deadlines<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let timeout = request.headers().get("grpc-timeout").and_then(|v| parse_grpc_timeout(v.as_bytes()));
        if let Some(timeout) = timeout {
            let min = self.board.load_config().limits.min_deadline;
            if timeout.is_zero() || timeout <= min {
                metrics::counter!("pricing_deadline_refused_total").increment(1);
                let status = tonic::Status::deadline_exceeded(format!(
                    "grpc-timeout {timeout:?} leaves no time to answer (minimum {min:?})"
                ));
                return Either::Left(ready(Ok(refuse(status))));
            }
            request.extensions_mut().insert(Deadline::after(timeout));
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use pricing_control::ControlConfig;
    use tonic::Code;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn grpc_timeout_values_parse_per_spec() {
        assert_eq!(parse_grpc_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout(b"5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_grpc_timeout(b"7n"), Some(Duration::from_nanos(7)));
        assert_eq!(parse_grpc_timeout(b"0m"), Some(Duration::ZERO));
        for bad in [&b""[..], b"m", b"100", b"123456789m", b"-1m", b"10x", b"1.5S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }

    fn board(min_ms: u64) -> Switchboard {
        let mut config = ControlConfig::default();
        config.limits.min_deadline = Duration::from_millis(min_ms);
        Switchboard::from_config(config).unwrap()
    }

    async fn call(board: &Switchboard, timeout: Option<&str>) -> (Option<Code>, Option<Deadline>) {
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            Ok::<_, Infallible>(http::Response::new(req.extensions().get::<Deadline>().copied()))
        });
        let mut request = http::Request::builder().uri("/pricing.v1.DetailPricing/GetDetailPrice");
        if let Some(timeout) = timeout {
            request = request.header("grpc-timeout", timeout);
        }
        let response = DeadlineLayer::new(board.clone()).layer(inner).oneshot(request.body(()).unwrap()).await.unwrap();
        (tonic::Status::from_header_map(response.headers()).map(|s| s.code()), response.into_body())
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_reaches_the_handler_and_bounds_store_budgets() {
        let (code, deadline) = call(&board(0), Some("80m")).await;
        assert_eq!(code, None);
        let deadline = deadline.expect("deadline extension");
        assert_eq!(deadline.remaining(), Duration::from_millis(80));
        assert_eq!(deadline.budget(Duration::from_millis(50)), Duration::from_millis(50));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(budget(Some(&deadline), Duration::from_millis(50)), Duration::from_millis(20));
        tokio::time::advance(Duration::from_millis(30)).await;
        assert!(deadline.is_expired());
        assert_eq!(budget(None, Duration::from_millis(50)), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_takes_the_extension_or_the_header_less_the_reserve() {
        let reserve = Duration::from_millis(5);
        let mut request = tonic::Request::new(());
        assert_eq!(call_deadline(&request, reserve), None, "no timeout, no deadline");
        request.metadata_mut().insert("grpc-timeout", "150m".parse().unwrap());
        let from_header = call_deadline(&request, reserve).expect("the header's deadline");
        assert_eq!(from_header.remaining(), Duration::from_millis(145));
        request.extensions_mut().insert(Deadline::after(Duration::from_millis(80)));
        let from_layer = call_deadline(&request, reserve).expect("the layer's deadline");
        assert_eq!(from_layer.remaining(), Duration::from_millis(75), "the layer's extension wins");
    }

    #[tokio::test(start_paused = true)]
    async fn no_time_left_is_refused_at_once() {
        assert_eq!(call(&board(0), Some("0m")).await, (Some(Code::DeadlineExceeded), None));
        assert_eq!(call(&board(5), Some("5m")).await, (Some(Code::DeadlineExceeded), None));
        assert_eq!(call(&board(5), Some("6m")).await.0, None);
        // No header or a malformed one: no deadline, not refused.
        assert_eq!(call(&board(5), None).await, (None, None));
        assert_eq!(call(&board(5), Some("soon")).await, (None, None));
    }
}
