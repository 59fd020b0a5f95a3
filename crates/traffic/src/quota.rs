//! Per-caller quotas: a token bucket (rate per second, burst) and a limit on
//! calls in flight, per account. Beyond either the call is refused with
//! RESOURCE_EXHAUSTED and a retry hint (gRPC RetryInfo): the time until the
//! bucket holds a token, or `limits.retry_after_ms` for concurrency.
//!
//! Every caller has its own bucket and semaphore, so one caller over its
//! quota never takes anything from another (seed 003: a caller's loop must
//! not bring down the order path of everyone else). The state of a caller is
//! rebuilt when its account's limits change in the control file; calls in
//! flight at that moment finish on the old semaphore, so for their duration
//! the new limit may be exceeded by at most the old in-flight count.
//! Concurrency is checked before the rate, so a refused call spends no token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::{Either, Ready, ready};
use pricing_control::{CallerAccount, Switchboard};
use pricing_proto::ApiError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::auth::{Caller, Exempt};
use crate::guard::Guarded;
use crate::rate::RateLimit;
use crate::refuse;

/// Why a caller's call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error("caller {caller} is over its rate of calls")]
    Rate { caller: String, retry_after: Duration },
    #[error("caller {caller} has too many calls in flight")]
    Concurrency { caller: String, retry_after: Duration },
    /// No authenticated caller on the request: the auth layer is missing
    /// in front of this one. Fails closed.
    #[error("no authenticated caller")]
    NoCaller,
}

impl QuotaExceeded {
    fn reason(&self) -> &'static str {
        match self {
            QuotaExceeded::Rate { .. } => "rate",
            QuotaExceeded::Concurrency { .. } => "concurrency",
            QuotaExceeded::NoCaller => "no_caller",
        }
    }
}

impl From<QuotaExceeded> for ApiError {
    fn from(err: QuotaExceeded) -> ApiError {
        match err {
            QuotaExceeded::Rate { retry_after, .. } | QuotaExceeded::Concurrency { retry_after, .. } => {
                ApiError::ResourceExhausted { message: err.to_string(), retry_after: Some(retry_after) }
            }
            QuotaExceeded::NoCaller => ApiError::Unauthenticated(err.to_string()),
        }
    }
}

/// The limits of one account that its state is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    rate: u32,
    burst: u32,
    max_concurrent: u32,
}

impl Limits {
    fn of(account: &CallerAccount) -> Limits {
        Limits {
            rate: account.rate_per_second,
            burst: account.effective_burst(),
            max_concurrent: account.max_concurrent,
        }
    }
}

struct CallerState {
    limits: Limits,
    rate: RateLimit,
    in_flight: Arc<Semaphore>,
}

impl CallerState {
    fn new(limits: Limits) -> CallerState {
        CallerState {
            limits,
            rate: RateLimit::new(limits.rate, limits.burst),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent as usize)),
        }
    }
}

/// The per-caller limiters, shared by every clone of the layer.
pub struct Quotas {
    board: Switchboard,
    /// Keyed by caller name; only names of configured accounts get here
    /// (the auth layer runs first), so the map is bounded by the file.
    callers: RwLock<HashMap<Arc<str>, Arc<CallerState>>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").finish_non_exhaustive()
    }
}

impl Quotas {
    pub fn new(board: Switchboard) -> Quotas {
        Quotas { board, callers: RwLock::new(HashMap::new()) }
    }

    /// Admits one call of `caller`; the permit is its place among the
    /// caller's calls in flight until dropped.
    pub fn admit(&self, caller: &Caller) -> Result<OwnedSemaphorePermit, QuotaExceeded> {
        let config = self.board.load_config();
        let Some(account) = config.callers.get(caller.name()) else {
            // Removed by a reload after auth let the call in: treat as unknown.
            return Err(QuotaExceeded::NoCaller);
        };
        let state = self.state(caller, Limits::of(account));
        let permit = state.in_flight.clone().try_acquire_owned().map_err(|_| QuotaExceeded::Concurrency {
            caller: caller.name().to_owned(),
            retry_after: config.limits.retry_after,
        })?;
        state.rate.check().map_err(|wait| QuotaExceeded::Rate {
            caller: caller.name().to_owned(),
            retry_after: wait.max(Duration::from_millis(1)),
        })?;
        Ok(permit)
    }

    fn state(&self, caller: &Caller, limits: Limits) -> Arc<CallerState> {
        if let Some(state) = self.callers.read().unwrap_or_else(|e| e.into_inner()).get(caller.name())
            && state.limits == limits
        {
            return state.clone();
        }
        let mut callers = self.callers.write().unwrap_or_else(|e| e.into_inner());
        match callers.get(caller.name()) {
            Some(state) if state.limits == limits => state.clone(),
            _ => {
                let state = Arc::new(CallerState::new(limits));
                callers.insert(caller.0.clone(), state.clone());
                // Forget callers the file no longer has.
                let config = self.board.load_config();
                callers.retain(|name, _| config.callers.contains_key(&**name));
                state
            }
        }
    }
}

/// Enforces each caller's quota; needs [`crate::AuthLayer`] in front.
#[derive(Debug, Clone)]
pub struct QuotaLayer {
    quotas: Arc<Quotas>,
}

impl QuotaLayer {
    pub fn new(board: Switchboard) -> QuotaLayer {
        QuotaLayer { quotas: Arc::new(Quotas::new(board)) }
    }

    pub fn quotas(&self) -> &Arc<Quotas> {
        &self.quotas
    }
}

impl<S> Layer<S> for QuotaLayer {
    type Service = Quota<S>;

    fn layer(&self, inner: S) -> Quota<S> {
        Quota { inner, quotas: self.quotas.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Quota<S> {
    inner: S,
    quotas: Arc<Quotas>,
}

type Admitted<F> = Guarded<F, Option<OwnedSemaphorePermit>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Quota<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Self::Response, S::Error>>, Admitted<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        if request.extensions().get::<Exempt>().is_some() {
            return Either::Right(Guarded::new(self.inner.call(request), None));
        }
        let admitted = match request.extensions().get::<Caller>() {
            Some(caller) => self.quotas.admit(caller).map_err(|e| (e, caller.name().to_owned())),
            None => Err((QuotaExceeded::NoCaller, String::new())),
        };
        match admitted {
            Ok(permit) => Either::Right(Guarded::new(self.inner.call(request), Some(permit))),
            Err((err, caller)) => {
                metrics::counter!("pricing_quota_refused_total", "caller" => caller.clone(), "reason" => err.reason())
                    .increment(1);
                tracing::debug!(caller, reason = err.reason(), "call refused: over quota");
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
    use tonic_types::StatusExt;
    use tower::ServiceExt;

    use super::*;

    fn board(rate: u32, burst: u32, max_concurrent: u32) -> Switchboard {
        let mut config = ControlConfig::default();
        config
            .callers
            .insert("a".into(), CallerAccount::with_token("token-of-caller-a", rate, Some(burst), max_concurrent));
        config
            .callers
            .insert("b".into(), CallerAccount::with_token("token-of-caller-b", rate, Some(burst), max_concurrent));
        Switchboard::from_config(config).unwrap()
    }

    fn request(caller: &str) -> http::Request<()> {
        let mut request = http::Request::builder().uri("/pricing.v1.ListPricing/GetPrices").body(()).unwrap();
        request.extensions_mut().insert(Caller(Arc::from(caller)));
        request
    }

    fn ok() -> impl Service<http::Request<()>, Response = http::Response<()>, Error = Infallible, Future: Send> + Clone
    {
        tower::service_fn(|_req: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) })
    }

    fn status(response: &http::Response<()>) -> Option<tonic::Status> {
        tonic::Status::from_header_map(response.headers())
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_over_its_rate_is_exhausted_while_another_is_unaffected() {
        let layer = QuotaLayer::new(board(10, 2, 10));
        let svc = layer.layer(ok());
        for _ in 0..2 {
            assert!(status(&svc.clone().oneshot(request("a")).await.unwrap()).is_none());
        }
        let refused = status(&svc.clone().oneshot(request("a")).await.unwrap()).expect("a is over its rate");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        let hint = refused.get_error_details().retry_info().and_then(|r| r.retry_delay);
        assert_eq!(hint, Some(Duration::from_millis(100)), "one token per 100 ms at 10/s");
        // b has its own bucket.
        for _ in 0..2 {
            assert!(status(&svc.clone().oneshot(request("b")).await.unwrap()).is_none());
        }
        // After the hint, a gets a token again.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(status(&svc.clone().oneshot(request("a")).await.unwrap()).is_none());
    }

    /// An inner service whose calls wait for `release`, counting entries.
    fn held(
        release: Arc<Notify>,
        entered: Arc<AtomicUsize>,
    ) -> impl Service<http::Request<()>, Response = http::Response<()>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static {
        tower::service_fn(move |_req: http::Request<()>| {
            let (release, entered) = (release.clone(), entered.clone());
            async move {
                let released = release.notified();
                entered.fetch_add(1, Ordering::SeqCst);
                released.await;
                Ok::<_, Infallible>(http::Response::new(()))
            }
        })
    }

    /// Lets spawned calls run until `n` of them are inside the handler.
    pub(crate) async fn until_entered(entered: &AtomicUsize, n: usize) {
        for _ in 0..1000 {
            if entered.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("only {} of {n} calls entered", entered.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_over_its_concurrency_is_exhausted_until_a_call_ends() {
        let (release, entered) = (Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let svc = QuotaLayer::new(board(1000, 1000, 2)).layer(held(release.clone(), entered.clone()));
        let first = tokio::spawn(svc.clone().oneshot(request("a")));
        let second = tokio::spawn(svc.clone().oneshot(request("a")));
        until_entered(&entered, 2).await;
        // Both admitted and held; the third of a is refused at once.
        let third = svc.clone().oneshot(request("a")).await.unwrap();
        let refused = status(&third).expect("a has 2 in flight");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert_eq!(
            refused.get_error_details().retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_millis(50))
        );
        // b is not affected by a's calls in flight.
        let b = tokio::spawn(svc.clone().oneshot(request("b")));
        until_entered(&entered, 3).await;
        release.notify_waiters();
        for call in [first, second, b] {
            assert!(status(&call.await.unwrap().unwrap()).is_none());
        }
        // The permits came back with the responses.
        let next = tokio::spawn(svc.clone().oneshot(request("a")));
        until_entered(&entered, 4).await;
        release.notify_waiters();
        assert!(status(&next.await.unwrap().unwrap()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_changes_a_callers_limits_live() {
        let board = board(1, 1, 10);
        let svc = QuotaLayer::new(board.clone()).layer(ok());
        assert!(status(&svc.clone().oneshot(request("a")).await.unwrap()).is_none());
        assert!(status(&svc.clone().oneshot(request("a")).await.unwrap()).is_some(), "burst of 1 spent");
        let mut config = (*board.snapshot()).clone();
        config.callers.insert("a".into(), CallerAccount::with_token("token-of-caller-a", 100, Some(5), 10));
        board.replace(config).unwrap();
        for i in 0..5 {
            assert!(
                status(&svc.clone().oneshot(request("a")).await.unwrap()).is_none(),
                "call {i} under the new burst"
            );
        }
        assert!(status(&svc.clone().oneshot(request("a")).await.unwrap()).is_some());
    }

    #[tokio::test]
    async fn without_an_authenticated_caller_it_fails_closed() {
        let svc = QuotaLayer::new(board(10, 10, 10)).layer(ok());
        let request = http::Request::builder().uri("/pricing.v1.ListPricing/GetPrices").body(()).unwrap();
        let refused = status(&svc.oneshot(request).await.unwrap()).unwrap();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
}
