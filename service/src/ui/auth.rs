//! Who may see the UI. With a token (required off loopback), a request needs it
//! as `authorization: Bearer <token>`, as the UI's cookie, or as `?token=` once:
//! a page opened that way sets the cookie and redirects to itself without the
//! token, so it leaves the address bar and the history. Without a token (a
//! loopback listener), only requests naming a loopback host get in, so that a web
//! page elsewhere cannot reach the UI through DNS rebinding.
//!
//! Every response also gets headers that keep it out of frames and other sites.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::UiError;
use super::UiState;
use crate::auth::constant_time_eq;

/// Scripts, styles and data only from the UI itself; styles may be set inline
/// (the chart library positions its parts with style attributes).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// The cookie's name: per port, since browsers share cookies across a host's ports.
pub fn cookie_name(state: &UiState) -> String {
    format!("runcore_ui_{}", state.listen.port())
}

/// The middleware: admits or refuses a request, and adds the security headers.
pub async fn gate(State(state): State<Arc<UiState>>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let refuse = |e: UiError| if api { e.json() } else { e.page() };
    let mut resp = match admit(&state, req.method(), req.uri(), req.headers()) {
        Admit::Yes => next.run(req).await,
        Admit::SetCookie(location) => set_cookie(&state, &location),
        Admit::No(e) => refuse(e),
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    resp
}

#[derive(Debug)]
enum Admit {
    Yes,
    /// The token came in the query of a page: set the cookie, go to this URL.
    SetCookie(String),
    No(UiError),
}

fn admit(state: &UiState, method: &Method, uri: &Uri, headers: &HeaderMap) -> Admit {
    let Some(token) = &state.token else {
        return match host_is_loopback(headers, state) {
            true => Admit::Yes,
            false => Admit::No(UiError::BadHost(host(headers).unwrap_or("").to_owned())),
        };
    };
    let want = token.expose().as_bytes();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    if bearer.is_some_and(|t| constant_time_eq(t.as_bytes(), want)) {
        return Admit::Yes;
    }
    let name = cookie_name(state);
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == name && constant_time_eq(v.as_bytes(), want));
    if cookie {
        return Admit::Yes;
    }
    let query = uri.query().unwrap_or("");
    let (given, rest): (Vec<_>, Vec<_>) =
        form_urlencoded::parse(query.as_bytes()).partition(|(k, _)| k == "token");
    if !given
        .iter()
        .any(|(_, v)| constant_time_eq(v.as_bytes(), want))
    {
        return Admit::No(UiError::Unauthorized);
    }
    if method != Method::GET || uri.path().starts_with("/api/") {
        return Admit::Yes;
    }
    let rest = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rest)
        .finish();
    let path = uri.path();
    Admit::SetCookie(if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{rest}")
    })
}

fn set_cookie(state: &UiState, location: &str) -> Response {
    let token = state.token.as_ref().map(|t| t.expose()).unwrap_or_default();
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict",
        cookie_name(state)
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let (Ok(c), Ok(l)) = (
        HeaderValue::from_str(&cookie),
        HeaderValue::from_str(location),
    ) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|v| v.to_str().ok())
}

/// Whether the Host header names a loopback address or this UI's own IP (a
/// request without one, from a non-browser client, is let in).
fn host_is_loopback(headers: &HeaderMap, state: &UiState) -> bool {
    let Some(h) = host(headers) else {
        return true;
    };
    let name = match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => h,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == state.listen.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Secret;

    fn state(token: Option<&str>) -> UiState {
        UiState::new(
            "/nowhere".into(),
            token.map(Secret::new),
            ([127, 0, 0, 1], 6007).into(),
        )
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn without_a_token_only_loopback_hosts_get_in() {
        let s = state(None);
        let get = |host: &str| {
            admit(
                &s,
                &Method::GET,
                &"/".parse().unwrap(),
                &headers(&[(header::HOST, host)]),
            )
        };
        assert!(matches!(get("127.0.0.1:6007"), Admit::Yes));
        assert!(matches!(get("localhost:6007"), Admit::Yes));
        assert!(matches!(get("[::1]:6007"), Admit::Yes));
        assert!(matches!(
            get("evil.example:6007"),
            Admit::No(UiError::BadHost(_))
        ));
    }

    #[test]
    fn a_token_comes_as_bearer_cookie_or_query_once() {
        let s = state(Some("0123456789abcdef"));
        let uri = |u: &str| u.parse::<Uri>().unwrap();
        let none = headers(&[]);
        assert!(matches!(
            admit(&s, &Method::GET, &uri("/"), &none),
            Admit::No(UiError::Unauthorized)
        ));
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer 0123456789abcdef")]);
        assert!(matches!(
            admit(&s, &Method::GET, &uri("/api/projects"), &bearer),
            Admit::Yes
        ));
        let cookie = headers(&[(header::COOKIE, "a=b; runcore_ui_6007=0123456789abcdef")]);
        assert!(matches!(
            admit(&s, &Method::GET, &uri("/"), &cookie),
            Admit::Yes
        ));
        let other_port = headers(&[(header::COOKIE, "runcore_ui_1=0123456789abcdef")]);
        assert!(matches!(
            admit(&s, &Method::GET, &uri("/"), &other_port),
            Admit::No(_)
        ));
        assert!(matches!(
            admit(&s, &Method::GET, &uri("/runs/p/r?token=0123456789abcdef&x=_step"), &none),
            Admit::SetCookie(l) if l == "/runs/p/r?x=_step"
        ));
        assert!(matches!(
            admit(
                &s,
                &Method::GET,
                &uri("/api/projects?token=0123456789abcdef"),
                &none
            ),
            Admit::Yes
        ));
        assert!(matches!(
            admit(&s, &Method::GET, &uri("/?token=wrong"), &none),
            Admit::No(UiError::Unauthorized)
        ));
    }
}
