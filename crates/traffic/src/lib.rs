//! Traffic protection for the servers: who may call, how much, and what a
//! call is routed to.
//!
//! Layout: one tower layer per policy, each in its own file with its small
//! rejection error and its tests: [`shed`] (global concurrency and rate,
//! refused at once), [`auth`] (caller accounts: `x-caller` + `x-caller-token`),
//! [`quota`] (per-caller rate and concurrency) and [`deadline`]
//! (`grpc-timeout` as a request extension); [`stack`] composes them in the
//! one order they run in. Three pieces are not layers because they need the
//! decoded request: [`hotkey`] (one goods id or pin asked far too often),
//! [`canary`] (the variant of a call by pin, store, city or pin hash) and
//! [`shadow`] (sampled answers re-checked in the background). [`watch`]
//! counts the answered prices themselves and the engine's dropped candidates. Every limit is
//! read from the live control config ([`pricing_control::Switchboard`]), so a
//! reload changes it without a restart; every refusal is a gRPC status from
//! [`pricing_proto::ApiError`], answered at the HTTP level so the handler
//! never runs. Time comes from `tokio::time` so tests run on paused time.
#![forbid(unsafe_code)]

pub mod auth;
pub mod canary;
pub mod deadline;
pub mod hotkey;
pub mod quota;
pub mod shadow;
pub mod shed;
pub mod stack;
pub mod watch;

pub mod guard;
pub mod named;
mod rate;

pub use auth::{AuthError, AuthLayer, Caller};
pub use canary::{Canary, VARIANT_HEADER};
pub use deadline::{Deadline, DeadlineLayer, call_deadline};
pub use hotkey::{HotKey, HotKeyLimiter, Key};
pub use named::{Named, protect, serve_guarded};
pub use quota::{QuotaExceeded, QuotaLayer, Quotas};
pub use shadow::{Mismatch, PriceSample, Sampler, ShadowQueue, ShadowStats, Verdict};
pub use shed::{Shed, ShedLayer, Shedder};
pub use stack::{Protection, protection};

/// Calls no policy refuses: health probes and reflection. Shedding or
/// refusing a kubelet probe under load would get a healthy pod killed.
pub const EXEMPT_PREFIXES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection."];

/// Whether a request path is one of [`EXEMPT_PREFIXES`].
pub fn is_exempt<B>(request: &http::Request<B>) -> bool {
    let path = request.uri().path();
    EXEMPT_PREFIXES.iter().any(|prefix| path.starts_with(prefix))
}

/// A refusal as an HTTP response carrying the gRPC status (trailers-only).
pub(crate) fn refuse<B: Default>(status: tonic::Status) -> http::Response<B> {
    status.into_http()
}
