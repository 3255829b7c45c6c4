//! Bearer-token authentication, as a tower layer in front of every gRPC service:
//! a request without `authorization: Bearer <token>` matching the sidecar's token
//! gets UNAUTHENTICATED before any handler runs. Health checks are exempt, so
//! probes need no secret. The comparison takes the same time whatever the token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tower::{Layer, Service};

use crate::env::Secret;

/// Paths that need no token.
const EXEMPT_PREFIX: &str = "/grpc.health.v1.Health/";

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        // Still walk `a` so that a wrong length costs about what a wrong byte does.
        let _ = a.iter().fold(0u8, |acc, x| acc | x);
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Clone)]
pub struct AuthLayer {
    token: Option<Arc<Secret>>,
}

impl AuthLayer {
    /// Without a token the layer lets everything through.
    pub fn new(token: Option<Secret>) -> Self {
        AuthLayer {
            token: token.map(Arc::new),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            token: self.token.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Auth<S> {
    inner: S,
    token: Option<Arc<Secret>>,
}

impl<S> Auth<S> {
    /// None when the request may pass; else why not.
    fn refuse<B>(&self, req: &http::Request<B>) -> Option<&'static str> {
        let token = self.token.as_ref()?;
        if req.uri().path().starts_with(EXEMPT_PREFIX) {
            return None;
        }
        let Some(header) = req.headers().get("authorization") else {
            return Some("missing authorization metadata: send `authorization: Bearer <token>` (the sidecar's --auth-token)");
        };
        let given = header.as_bytes();
        let given = given
            .strip_prefix(b"Bearer ")
            .or_else(|| given.strip_prefix(b"bearer "))
            .unwrap_or(b"");
        if constant_time_eq(given, token.expose().as_bytes()) {
            None
        } else {
            Some("invalid bearer token: send the sidecar's --auth-token as `authorization: Bearer <token>`")
        }
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Auth<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        match self.refuse(&req) {
            Some(why) => {
                let resp = tonic::Status::unauthenticated(why).into_http();
                Box::pin(async move { Ok(resp) })
            }
            None => Box::pin(self.inner.call(req)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn requests_are_checked_and_health_is_exempt() {
        let auth = Auth {
            inner: (),
            token: Some(Arc::new(Secret::new("s3cret-token-0123456789"))),
        };
        let req = |path: &str, header: Option<&str>| {
            let mut b = http::Request::builder().uri(path);
            if let Some(h) = header {
                b = b.header("authorization", h);
            }
            b.body(()).unwrap()
        };
        let run = "/runcore.v1.RunService/Init";
        assert!(auth.refuse(&req(run, None)).unwrap().contains("missing"));
        assert!(auth
            .refuse(&req(run, Some("Bearer nope")))
            .unwrap()
            .contains("invalid"));
        assert!(auth
            .refuse(&req(run, Some("s3cret-token-0123456789")))
            .is_some());
        assert_eq!(
            auth.refuse(&req(run, Some("Bearer s3cret-token-0123456789"))),
            None
        );
        assert_eq!(
            auth.refuse(&req("/grpc.health.v1.Health/Check", None)),
            None
        );
        let open = Auth {
            inner: (),
            token: None,
        };
        assert_eq!(open.refuse(&req(run, None)), None);
    }
}
