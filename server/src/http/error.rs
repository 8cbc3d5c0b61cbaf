//! The one place errors become responses: HTML pages, htmx fragments or the API's JSON error.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::Error;

/// Every JSON error of the API has this shape: `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine code from [`ERROR_CODES`], words for people, and the id the
/// server logged the request under.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the codes in the table of `ERROR_CODES` (stable; clients may branch on it).
    pub code: &'static str,
    /// Safe to show to the user; never internals.
    pub message: String,
    pub request_id: String,
}

/// The API's error codes, their HTTP status and when each is given. This table is the contract:
/// `code_of` maps every domain error onto a code, and the response status comes from here.
pub const ERROR_CODES: [(&str, u16, &str); 9] = [
    ("invalid_request", 400, "the input is not valid; the message says what to change"),
    ("unauthenticated", 401, "no open session and no service token"),
    ("invalid_token", 401, "the service token is unknown, revoked or expired"),
    ("forbidden", 403, "the caller may not do this; the attempt is audited"),
    ("not_found", 404, "no such thing among what the caller may see"),
    ("overloaded", 429, "too much work is queued; retry after the Retry-After seconds"),
    ("rate_limited", 429, "this principal asks faster than allowed; retry after the Retry-After seconds"),
    ("internal", 500, "a fault on the server, logged under the request id"),
    ("store_unavailable", 503, "the database cannot be reached; nothing was answered or changed"),
];

/// The stable code of a domain error.
pub fn code_of(error: &Error) -> &'static str {
    match error {
        Error::User(_) => "invalid_request",
        Error::Forbidden => "forbidden",
        Error::Unauthenticated => "unauthenticated",
        Error::Token(_) => "invalid_token",
        Error::NotFound => "not_found",
        Error::Overloaded => "overloaded",
        Error::RateLimited(_) => "rate_limited",
        Error::Storage(_) => "store_unavailable",
        Error::Internal(_) => "internal",
    }
}

/// An error on its way to the browser or API client. Knows whether the caller wants HTML, an htmx
/// fragment or JSON, and never shows internals: internal errors are logged under a request id.
#[derive(Debug)]
pub struct WebError {
    error: Error,
    html: bool,
    htmx: bool,
    request_id: String,
}

impl WebError {
    pub fn new(error: Error, html: bool, htmx: bool) -> Self {
        let request_id = crate::domain::random_hex(8).unwrap_or_else(|_| "unknown".to_owned());
        Self { error, html, htmx, request_id }
    }

    fn public_message(&self) -> String {
        match &self.error {
            Error::User(msg) => msg.clone(),
            Error::Forbidden => "You are not allowed to do that. The attempt has been recorded.".to_owned(),
            Error::Unauthenticated => "Please sign in.".to_owned(),
            Error::Token(msg) => msg.clone(),
            Error::NotFound => "Not found.".to_owned(),
            Error::Overloaded => "lexgate is busy with many requests right now; try again in a few seconds.".to_owned(),
            Error::RateLimited(secs) => {
                format!("You are asking faster than lexgate allows; try again in {secs} seconds.")
            }
            Error::Storage(_) => {
                "The document store cannot be reached, so no answer was given. Try again shortly.".to_owned()
            }
            Error::Internal(_) => "Something went wrong on our side.".to_owned(),
        }
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (request {})", self.error, self.request_id)
    }
}

impl ResponseError for WebError {
    /// The status the table of [`ERROR_CODES`] gives the error's code.
    fn status_code(&self) -> StatusCode {
        let code = code_of(&self.error);
        ERROR_CODES
            .iter()
            .find(|(c, _, _)| *c == code)
            .and_then(|(_, status, _)| StatusCode::from_u16(*status).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if matches!(self.error, Error::Storage(_) | Error::Internal(_)) {
            tracing::error!(request_id = %self.request_id, error = %self.error, "request failed");
        }
        let status = self.status_code();
        if matches!(self.error, Error::Unauthenticated) && self.html {
            if self.htmx {
                return HttpResponse::Unauthorized().insert_header(("HX-Redirect", "/signin")).finish();
            }
            return HttpResponse::SeeOther().insert_header((header::LOCATION, "/signin")).finish();
        }
        let message = self.public_message();
        let mut resp = HttpResponse::build(status);
        match self.error {
            Error::Overloaded => {
                resp.insert_header((header::RETRY_AFTER, "2"));
            }
            Error::RateLimited(secs) => {
                resp.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            _ => {}
        }
        if !self.html {
            return resp.json(ErrorBody {
                error: ErrorDetail { code: code_of(&self.error), message, request_id: self.request_id.clone() },
            });
        }
        let view = ErrorView { status: status.as_u16(), message: &message, request_id: &self.request_id };
        let body = if self.htmx { view.render_partial() } else { view.render() };
        resp.content_type("text/html; charset=utf-8");
        if self.htmx {
            // htmx ignores error responses unless told where to put them.
            resp.insert_header(("HX-Retarget", "#flash")).insert_header(("HX-Reswap", "innerHTML"));
        }
        resp.body(body.unwrap_or_else(|_| message.clone()))
    }
}

pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("HX-Request")
}

/// API routes answer JSON; everything else answers HTML.
pub fn wants_html(req: &HttpRequest) -> bool {
    !req.path().starts_with("/api/")
}

pub(crate) fn web_err(req: &HttpRequest) -> impl Fn(Error) -> WebError + '_ {
    move |e| WebError::new(e, wants_html(req), is_htmx(req))
}

pub(crate) type WebResult = Result<HttpResponse, WebError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorView<'a> {
    status: u16,
    message: &'a str,
    request_id: &'a str,
}

impl ErrorView<'_> {
    fn render_partial(&self) -> askama::Result<String> {
        Ok(format!(
            "<div class=\"flash error\" role=\"alert\">{} <small>(request {})</small></div>",
            askama::filters::escape(self.message, askama::filters::Html)?,
            askama::filters::escape(self.request_id, askama::filters::Html)?
        ))
    }
}
