//! Caller accounts: every call names its caller (`x-caller`) and proves it
//! (`x-caller-token`); unknown callers and wrong tokens are refused with
//! UNAUTHENTICATED before the handler runs.
//!
//! The accounts are read from the live control snapshot on every call, so a
//! caller added by a reload is accepted at once. The presented token is
//! hashed (SHA-256) and compared with the account's digest in constant time
//! (`subtle`), the same way whether the file holds the token or its hash;
//! an unknown caller's token is hashed too so that both refusals take the
//! same path. Tokens are never logged; the refusal message does not say
//! whether the name or the token was wrong. An accepted call carries its
//! [`Caller`] in the request extensions for the layers and handlers after.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use pricing_control::Switchboard;
use pricing_proto::ApiError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::{is_exempt, refuse};

/// Metadata that names the caller.
pub const CALLER_HEADER: &str = "x-caller";
/// Metadata that carries the caller's token.
pub const TOKEN_HEADER: &str = "x-caller-token";

/// The authenticated caller of a request (a request extension). `Arc<str>`:
/// cloned into every request and metric label without copying the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller(pub Arc<str>);

impl Caller {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// Marks a request the policies let through unauthenticated (health,
/// reflection): the quota layer passes it instead of failing closed.
#[derive(Debug, Clone, Copy)]
pub struct Exempt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing x-caller or x-caller-token metadata")]
    Missing,
    /// Unknown caller or wrong token; which one is not told to the caller.
    #[error("unknown caller or wrong token")]
    Refused { reason: &'static str },
}

impl AuthError {
    fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Refused { reason } => reason,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        ApiError::Unauthenticated(err.to_string())
    }
}

/// Checks a caller name and token against the accounts in force.
pub fn authenticate(board: &Switchboard, name: Option<&[u8]>, token: Option<&[u8]>) -> Result<Caller, AuthError> {
    let (Some(name), Some(token)) = (name, token) else { return Err(AuthError::Missing) };
    let presented: [u8; 32] = Sha256::digest(token).into();
    let config = board.load_config();
    let account = std::str::from_utf8(name).ok().and_then(|name| config.callers.get_key_value(name));
    match account {
        Some((name, account)) => {
            if bool::from(presented.ct_eq(account.token_digest())) {
                Ok(Caller(Arc::from(name.as_str())))
            } else {
                Err(AuthError::Refused { reason: "wrong_token" })
            }
        }
        None => {
            // Same work as a known caller, so timing does not tell names apart.
            let _ = presented.ct_eq(&[0u8; 32]);
            Err(AuthError::Refused { reason: "unknown_caller" })
        }
    }
}

/// Refuses calls without a valid caller account.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    board: Switchboard,
}

impl AuthLayer {
    pub fn new(board: Switchboard) -> AuthLayer {
        AuthLayer { board }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, board: self.board.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    board: Switchboard,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
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
        if is_exempt(&request) {
            request.extensions_mut().insert(Exempt);
            return Either::Right(self.inner.call(request));
        }
        let headers = request.headers();
        let name = headers.get(CALLER_HEADER).map(|v| v.as_bytes());
        let token = headers.get(TOKEN_HEADER).map(|v| v.as_bytes());
        match authenticate(&self.board, name, token) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Either::Right(self.inner.call(request))
            }
            Err(err) => {
                metrics::counter!("pricing_auth_refused_total", "reason" => err.reason()).increment(1);
                // The presented name is the caller's text: logged shortened,
                // never as a metric label; the token is never logged.
                let shown = name.map(|n| String::from_utf8_lossy(&n[..n.len().min(64)]).into_owned());
                tracing::debug!(
                    caller = shown.as_deref().unwrap_or(""),
                    reason = err.reason(),
                    path = request.uri().path(),
                    "call refused: not authenticated"
                );
                Either::Left(ready(Ok(refuse(ApiError::from(err).into()))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use pricing_control::{CallerAccount, ControlConfig};
    use tonic::Code;
    use tower::ServiceExt;

    use super::*;

    pub(crate) const TOKEN: &str = "list-web-0123456789abcdef";

    fn board() -> Switchboard {
        let mut config = ControlConfig::default();
        config.callers.insert("list-web".into(), CallerAccount::with_token(TOKEN, 100, None, 10));
        Switchboard::from_config(config).unwrap()
    }

    async fn call(
        board: &Switchboard,
        path: &str,
        caller: Option<&str>,
        token: Option<&str>,
    ) -> (Option<Code>, Option<String>) {
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            let caller = req.extensions().get::<Caller>().map(|c| c.name().to_owned());
            Ok::<_, Infallible>(http::Response::new(caller))
        });
        let mut request = http::Request::builder().uri(path);
        if let Some(caller) = caller {
            request = request.header(CALLER_HEADER, caller);
        }
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token);
        }
        let response = AuthLayer::new(board.clone()).layer(inner).oneshot(request.body(()).unwrap()).await.unwrap();
        let code = tonic::Status::from_header_map(response.headers()).map(|s| s.code());
        (code, response.into_body())
    }

    const PATH: &str = "/pricing.v1.ListPricing/GetPrices";

    #[tokio::test]
    async fn a_known_caller_with_its_token_passes_and_is_named_downstream() {
        let (code, seen) = call(&board(), PATH, Some("list-web"), Some(TOKEN)).await;
        assert_eq!(code, None);
        assert_eq!(seen.as_deref(), Some("list-web"));
    }

    #[tokio::test]
    async fn unknown_caller_wrong_token_and_missing_metadata_are_unauthenticated() {
        let board = board();
        for (caller, token) in [
            (Some("nobody"), Some(TOKEN)),
            (Some("list-web"), Some("list-web-0123456789abcdeX")),
            (Some("list-web"), Some("")),
            (Some("list-web"), None),
            (None, Some(TOKEN)),
        ] {
            let (code, seen) = call(&board, PATH, caller, token).await;
            assert_eq!(code, Some(Code::Unauthenticated), "{caller:?} {token:?}");
            assert_eq!(seen, None, "the handler must not run");
        }
    }

    #[tokio::test]
    async fn a_caller_added_by_a_reload_is_accepted_without_restart() {
        let board = board();
        let newcomer = "checkout-0123456789abcdef";
        assert_eq!(call(&board, PATH, Some("checkout"), Some(newcomer)).await.0, Some(Code::Unauthenticated));
        let mut config = (*board.snapshot()).clone();
        config.callers.insert("checkout".into(), CallerAccount::with_token(newcomer, 100, None, 10));
        board.replace(config).unwrap();
        assert_eq!(call(&board, PATH, Some("checkout"), Some(newcomer)).await, (None, Some("checkout".into())));
    }

    #[tokio::test]
    async fn health_probes_need_no_account() {
        let (code, _) = call(&board(), "/grpc.health.v1.Health/Check", None, None).await;
        assert_eq!(code, None);
    }

    #[test]
    fn a_hashed_token_in_the_file_accepts_the_clear_token() {
        let hashed: String = Sha256::digest(TOKEN.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let config = ControlConfig::parse(&format!(
            "version = 1\n[callers.list-web]\ntoken_sha256 = '{hashed}'\nrate_per_second = 5\nmax_concurrent = 5\n"
        ))
        .unwrap();
        let board = Switchboard::from_config(config).unwrap();
        assert!(authenticate(&board, Some(b"list-web"), Some(TOKEN.as_bytes())).is_ok());
        assert!(authenticate(&board, Some(b"list-web"), Some(hashed.as_bytes())).is_err(), "the hash is not the token");
    }
}
