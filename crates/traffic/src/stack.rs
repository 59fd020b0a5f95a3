//! The protection stack, in the one order it runs, top to bottom:
//!
//! 1. [`ShedLayer`]: global concurrency and rate; refuses a flood before any
//!    work, unauthenticated floods included.
//! 2. [`AuthLayer`]: the caller's account; puts [`crate::Caller`] on the request.
//! 3. [`QuotaLayer`]: that caller's rate and concurrency.
//! 4. [`DeadlineLayer`]: the caller's remaining time as [`crate::Deadline`];
//!    last, so that time spent in the layers above counts against it.
//!
//! Then the handler, which runs the request-level checks that need the
//! decoded message: hot keys ([`crate::HotKeyLimiter`]), the canary variant
//! ([`crate::Canary`]) and the shadow sample ([`crate::Sampler`]).
//!
//! ```text
//! let board = Switchboard::load(&control_path)?;
//! board.spawn_watcher(Duration::from_secs(1));
//! Server::builder().layer(pricing_traffic::protection(&board)).add_service(list).serve(addr).await?;
//! ```

use pricing_control::Switchboard;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};

use crate::{AuthLayer, DeadlineLayer, QuotaLayer, ShedLayer};

/// The composed layer: shed -> auth -> quota -> deadline.
pub type Protection =
    ServiceBuilder<Stack<DeadlineLayer, Stack<QuotaLayer, Stack<AuthLayer, Stack<ShedLayer, Identity>>>>>;

/// Every protection layer over one switch board, in order.
pub fn protection(board: &Switchboard) -> Protection {
    ServiceBuilder::new()
        .layer(ShedLayer::new(board.clone()))
        .layer(AuthLayer::new(board.clone()))
        .layer(QuotaLayer::new(board.clone()))
        .layer(DeadlineLayer::new(board.clone()))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use pricing_control::{CallerAccount, ControlConfig};
    use tonic::Code;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::{CALLER_HEADER, TOKEN_HEADER};
    use crate::{Caller, Deadline};

    const TOKEN: &str = "list-web-0123456789abcdef";

    fn board() -> Switchboard {
        let mut config = ControlConfig::default();
        config.limits.max_concurrent = 100;
        config.callers.insert("list-web".into(), CallerAccount::with_token(TOKEN, 2, Some(2), 10));
        Switchboard::from_config(config).unwrap()
    }

    fn request(token: &str) -> http::Request<()> {
        http::Request::builder()
            .uri("/pricing.v1.ListPricing/GetPrices")
            .header(CALLER_HEADER, "list-web")
            .header(TOKEN_HEADER, token)
            .header("grpc-timeout", "100m")
            .body(())
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_stack_authenticates_limits_and_passes_caller_and_deadline_on() {
        let handler = tower::service_fn(|req: http::Request<()>| async move {
            let caller = req.extensions().get::<Caller>().map(|c| c.name().to_owned());
            let deadline = req.extensions().get::<Deadline>().map(|d| d.remaining());
            Ok::<_, Infallible>(http::Response::new(Some((caller, deadline))))
        });
        let svc = protection(&board()).service(handler);
        let code = |r: &http::Response<_>| tonic::Status::from_header_map(r.headers()).map(|s| s.code());

        let ok = svc.clone().oneshot(request(TOKEN)).await.unwrap();
        assert_eq!(code(&ok), None);
        assert_eq!(ok.into_body(), Some((Some("list-web".to_owned()), Some(Duration::from_millis(100)))));

        let wrong = svc.clone().oneshot(request("wrong-token-0123456789")).await.unwrap();
        assert_eq!(code(&wrong), Some(Code::Unauthenticated));
        // A refused call spends none of the caller's quota: one token is left.
        assert_eq!(code(&svc.clone().oneshot(request(TOKEN)).await.unwrap()), None);
        assert_eq!(code(&svc.clone().oneshot(request(TOKEN)).await.unwrap()), Some(Code::ResourceExhausted));
    }
}
