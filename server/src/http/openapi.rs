//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations and the body
//! types they take and give, and served at `/api/v1/openapi.json`.

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/openapi.json", web::get().to(openapi_get));
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "lexgate API",
        version = "1",
        description = "Governed retrieval over the regulatory documents the caller may read. Callers \
            authenticate with a browser session (sending the CSRF token in `X-CSRF-Token` when they \
            change anything) or a service token (`Authorization: Bearer lxg_...`). The same domain \
            checks as the pages apply. Every error is `{\"error\": {\"code\", \"message\", \"request_id\"}}`."
    ),
    paths(
        crate::http::ask::api_ask_get,
        crate::http::documents::api_documents_get,
        crate::http::documents::api_documents_post,
        crate::http::documents::api_document_get,
        crate::http::documents::api_document_delete,
        crate::http::documents::api_access_put,
        crate::http::documents::api_job_get,
        crate::http::tokens::tokens_get,
        crate::http::tokens::tokens_post,
        crate::http::tokens::token_delete,
        crate::http::obligations::api_list_get,
        crate::http::obligations::api_detail_get,
        crate::http::obligations::api_status_post,
        crate::http::obligations::api_control_post,
    ),
    modifiers(&Security),
    security(("session" = []), ("bearer" = [])),
    tags(
        (name = "ask", description = "Questions and cited answers"),
        (name = "documents", description = "Documents, their versions and access, uploads (admins)"),
        (name = "tokens", description = "Service tokens (admins)"),
        (name = "obligations", description = "The obligation register: review, controls, exports (analysts and reviewers)")
    )
)]
pub struct ApiDoc;

/// The two ways to authenticate.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::http::session::SESSION_COOKIE))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("lxg_...").build()),
        );
    }
}

/// The document, pretty-printed once.
static OPENAPI: LazyLock<String> =
    LazyLock::new(|| ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));

/// The OpenAPI document as JSON.
pub fn document() -> &'static str {
    &OPENAPI
}

async fn openapi_get() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document())
}
