//! The UI's errors, and the one place they become HTTP responses: a JSON body
//! `{"error": "..."}` for the API, a small HTML page for pages.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::index::IndexError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("no project {0:?} in this store; the projects page lists the ones there are")]
    NoProject(String),
    #[error("no run {project}/{id} in this store; the project's runs table lists its runs")]
    NoRun { project: String, id: String },
    #[error("run has no chartable metric {0:?}; /metrics lists the ones it has")]
    NoMetric(String),
    #[error("no file {0:?} among the run's saved files")]
    NoFile(String),
    #[error("no such page: {0}")]
    NoPage(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("this UI needs its token: open it once with ?token=<the --auth-token>, or send `authorization: Bearer <token>`")]
    Unauthorized,
    #[error("host {0:?} is not this UI's address; open it as http://127.0.0.1:PORT or http://localhost:PORT")]
    BadHost(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("the UI's worker thread stopped: {0}")]
    Worker(String),
}

impl UiError {
    pub fn bad(msg: impl Into<String>) -> Self {
        UiError::BadRequest(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            UiError::NoProject(_)
            | UiError::NoRun { .. }
            | UiError::NoMetric(_)
            | UiError::NoFile(_)
            | UiError::NoPage(_) => StatusCode::NOT_FOUND,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Unauthorized => StatusCode::UNAUTHORIZED,
            UiError::BadHost(_) => StatusCode::FORBIDDEN,
            UiError::Store(_) | UiError::Index(_) | UiError::Worker(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The error as the API answers it.
    pub fn json(&self) -> Response {
        self.log();
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        (
            self.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }

    /// The error as a page.
    pub fn page(&self) -> Response {
        self.log();
        let status = self.status();
        let html = error_page(status, &self.to_string());
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            html,
        )
            .into_response()
    }

    fn log(&self) {
        if self.status().is_server_error() {
            tracing::warn!("ui: {self}");
        }
    }
}

/// A self-contained error page (the message HTML-escaped).
fn error_page(status: StatusCode, message: &str) -> String {
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Error");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{code} {reason} · runcore</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\
         <body><header class=\"top\"><a class=\"brand\" href=\"/\">runcore</a></header>\
         <main class=\"error-page\"><h1 id=\"error-code\">{code} {reason}</h1>\
         <p id=\"error-message\">{escaped}</p><p><a href=\"/\">All projects</a></p></main>\
         </body></html>"
    )
}

/// An API handler's error.
pub struct ApiError(pub UiError);

impl<E: Into<UiError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.json()
    }
}

/// A page handler's error.
pub struct PageError(pub UiError);

impl<E: Into<UiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.page()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_echo() {
        let page = error_page(StatusCode::NOT_FOUND, "no run \"<script>\"");
        assert!(page.contains("404 Not Found"));
        assert!(page.contains("&quot;&lt;script&gt;&quot;") && !page.contains("<script>"));
    }
}
