//! Load shedding: a global limit on calls in flight, and an optional global
//! rate. When either is reached the excess call is refused AT ONCE with
//! RESOURCE_EXHAUSTED: nothing is queued, so the calls already admitted
//! keep their latency (seed 003: better to fail the part above capacity
//! fast than to let it take the whole service down). The outermost layer,
//! so a flood is refused before any token is hashed.
//!
//! Limits come from `[limits]` of the live control config; the semaphore and
//! the bucket are rebuilt when they change (calls in flight then finish on
//! the old semaphore).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::future::{Either, Ready, ready};
use pricing_control::{GlobalLimits, Switchboard};
use pricing_proto::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::guard::Guarded;
use crate::rate::RateLimit;
use crate::{is_exempt, refuse};

/// Why a call was shed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Shed {
    #[error("server saturated: too many calls in flight")]
    Saturated { retry_after: Duration },
    #[error("server over its global rate of calls")]
    Rate { retry_after: Duration },
}

impl Shed {
    fn reason(&self) -> &'static str {
        match self {
            Shed::Saturated { .. } => "saturated",
            Shed::Rate { .. } => "rate",
        }
    }
}

impl From<Shed> for ApiError {
    fn from(err: Shed) -> ApiError {
        let (Shed::Saturated { retry_after } | Shed::Rate { retry_after }) = err;
        ApiError::ResourceExhausted { message: err.to_string(), retry_after: Some(retry_after) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    max_concurrent: u32,
    rate: Option<(u32, u32)>,
}

impl Limits {
    fn of(limits: &GlobalLimits) -> Limits {
        Limits {
            max_concurrent: limits.max_concurrent,
            rate: limits.rate_per_second.map(|rate| (rate, limits.burst.unwrap_or(rate))),
        }
    }
}

struct State {
    limits: Limits,
    in_flight: Arc<Semaphore>,
    rate: Option<RateLimit>,
}

/// The global limiter, shared by every clone of the layer.
pub struct Shedder {
    board: Switchboard,
    state: ArcSwap<State>,
}

impl std::fmt::Debug for Shedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shedder").field("limits", &self.state.load().limits).finish()
    }
}

impl Shedder {
    pub fn new(board: Switchboard) -> Shedder {
        let state = State::new(Limits::of(&board.load_config().limits));
        Shedder { board, state: ArcSwap::from_pointee(state) }
    }

    /// Admits one call or refuses it at once.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, Shed> {
        let config = self.board.load_config();
        let limits = Limits::of(&config.limits);
        let mut state = self.state.load_full();
        if state.limits != limits {
            // Two calls racing here may both rebuild; the last one stays.
            state = Arc::new(State::new(limits));
            self.state.store(state.clone());
        }
        let retry_after = config.limits.retry_after;
        let permit = state.in_flight.clone().try_acquire_owned().map_err(|_| Shed::Saturated { retry_after })?;
        if let Some(rate) = &state.rate {
            rate.check().map_err(|wait| Shed::Rate { retry_after: wait.max(Duration::from_millis(1)) })?;
        }
        Ok(permit)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        let state = self.state.load();
        state.limits.max_concurrent as usize - state.in_flight.available_permits()
    }
}

impl State {
    fn new(limits: Limits) -> State {
        State {
            limits,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent as usize)),
            rate: limits.rate.map(|(rate, burst)| RateLimit::new(rate, burst)),
        }
    }
}

/// Sheds calls above the global limits; the outermost protection layer.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    shedder: Arc<Shedder>,
}

impl ShedLayer {
    pub fn new(board: Switchboard) -> ShedLayer {
        ShedLayer { shedder: Arc::new(Shedder::new(board)) }
    }

    pub fn shedder(&self) -> &Arc<Shedder> {
        &self.shedder
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> LoadShed<S> {
        LoadShed { inner, shedder: self.shedder.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct LoadShed<S> {
    inner: S,
    shedder: Arc<Shedder>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for LoadShed<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, Guarded<S::Future, Option<OwnedSemaphorePermit>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if is_exempt(&request) {
            return Either::Right(Guarded::new(self.inner.call(request), None));
        }
        match self.shedder.admit() {
            Ok(permit) => Either::Right(Guarded::new(self.inner.call(request), Some(permit))),
            Err(err) => {
                metrics::counter!("pricing_shed_total", "reason" => err.reason()).increment(1);
                Either::Left(ready(Ok(refuse(ApiError::from(err).into()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use pricing_control::ControlConfig;
    use tokio::sync::Notify;
    use tonic::Code;
    use tower::ServiceExt;

    use super::*;

    fn board(max_concurrent: u32, rate: Option<u32>) -> Switchboard {
        let mut config = ControlConfig::default();
        config.limits.max_concurrent = max_concurrent;
        config.limits.rate_per_second = rate;
        Switchboard::from_config(config).unwrap()
    }

    fn request() -> http::Request<()> {
        http::Request::builder().uri("/pricing.v1.ListPricing/GetPrices").body(()).unwrap()
    }

    fn code(response: &http::Response<()>) -> Option<Code> {
        tonic::Status::from_header_map(response.headers()).map(|s| s.code())
    }

    async fn until_entered(entered: &AtomicUsize, n: usize) {
        for _ in 0..1000 {
            if entered.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("only {} of {n} calls entered", entered.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn when_saturated_excess_calls_are_refused_at_once_and_admitted_ones_finish() {
        let (release, entered) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let held = {
            let (release, entered) = (release.clone(), entered.clone());
            tower::service_fn(move |_req: http::Request<()>| {
                let (release, entered) = (release.clone(), entered.clone());
                async move {
                    let released = release.notified();
                    entered.fetch_add(1, Ordering::SeqCst);
                    released.await;
                    Ok::<_, Infallible>(http::Response::new(()))
                }
            })
        };
        let layer = ShedLayer::new(board(3, None));
        let svc = layer.layer(held);
        let admitted: Vec<_> = (0..3).map(|_| tokio::spawn(svc.clone().oneshot(request()))).collect();
        until_entered(&entered, 3).await;
        assert_eq!(layer.shedder().in_flight(), 3);

        // Saturated: refused without waiting (the call completes while the
        // three admitted ones are still held, and time has not moved).
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            let refused = svc.clone().oneshot(request()).await.unwrap();
            assert_eq!(code(&refused), Some(Code::ResourceExhausted));
        }
        assert_eq!(tokio::time::Instant::now(), start);
        assert_eq!(entered.load(Ordering::SeqCst), 3, "no refused call reached the handler");

        // Health probes are never shed.
        let probe = http::Request::builder().uri("/grpc.health.v1.Health/Check").body(()).unwrap();
        let probe = tokio::spawn(svc.clone().oneshot(probe));
        until_entered(&entered, 4).await;

        release.notify_waiters();
        for call in admitted {
            assert_eq!(code(&call.await.unwrap().unwrap()), None);
        }
        assert_eq!(code(&probe.await.unwrap().unwrap()), None);
        assert_eq!(layer.shedder().in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_rate_refuses_above_it_and_recovers() {
        let ok = tower::service_fn(|_req: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) });
        let svc = ShedLayer::new(board(100, Some(5))).layer(ok);
        for _ in 0..5 {
            assert_eq!(code(&svc.clone().oneshot(request()).await.unwrap()), None);
        }
        assert_eq!(code(&svc.clone().oneshot(request()).await.unwrap()), Some(Code::ResourceExhausted));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(code(&svc.clone().oneshot(request()).await.unwrap()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_changes_the_global_limit_live() {
        let board = board(1, None);
        let shedder = Shedder::new(board.clone());
        let held = shedder.admit().unwrap();
        assert!(matches!(shedder.admit(), Err(Shed::Saturated { .. })));
        let mut config = (*board.snapshot()).clone();
        config.limits.max_concurrent = 2;
        board.replace(config).unwrap();
        let a = shedder.admit().unwrap();
        let b = shedder.admit().unwrap();
        assert!(shedder.admit().is_err());
        drop((held, a, b));
    }
}
