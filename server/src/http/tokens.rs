//! Service tokens under `/api/v1/tokens`: an admin issues, lists and revokes the tokens of their
//! tenant. A token is shown once, when issued; lexgate keeps only its hash.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Classification, Permission};
use crate::http::AppState;
use crate::http::documents::parse_groups;
use crate::http::error::{ErrorBody, WebResult, web_err};
use crate::http::session::{self, Authenticated, SignedIn};
use crate::service::tokens::TokenInfo;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/tokens", web::get().to(tokens_get))
        .route("/api/v1/tokens", web::post().to(tokens_post))
        .route("/api/v1/tokens/{id}", web::delete().to(token_delete));
}

/// The tokens of the caller's tenant, never their secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// A token to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub name: String,
    /// `ask` and/or `documents`.
    pub scopes: Vec<String>,
    /// Groups of the token's principal.
    pub groups: Vec<String>,
    #[schema(value_type = String, example = "internal")]
    pub clearance: Classification,
    /// 1 to 366; 90 when absent.
    #[serde(default = "ninety")]
    pub valid_days: i64,
}

fn ninety() -> i64 {
    90
}

/// A token just issued: the secret, shown this once, and its record.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub token: String,
    pub note: String,
    pub record: TokenInfo,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenList), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody)))]
pub(crate) async fn tokens_get(req: HttpRequest, state: web::Data<AppState>, SignedIn(actor): SignedIn) -> WebResult {
    let tokens = state.tokens.list(&actor).await.map_err(web_err(&req))?;
    Ok(HttpResponse::Ok().json(TokenList { tokens }))
}

/// Issues a token (admins; CSRF header with a session).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenBody,
    responses(
        (status = 201, description = "The token, shown this once", body = IssuedToken),
        (status = 400, description = "Invalid input; the message says what to change", body = ErrorBody), (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody)))]
pub(crate) async fn tokens_post(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, body): Authenticated<web::Json<TokenBody>>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    let request = crate::service::tokens::TokenRequest {
        name: body.name.clone(),
        scopes: body.scopes.iter().map(|s| Permission::from_scope(s)).collect::<Result<_, _>>().map_err(&err)?,
        groups: parse_groups(body.groups.iter().map(String::as_str)).map_err(&err)?,
        clearance: body.clearance,
        valid_days: body.valid_days,
    };
    let (token, record) = state.tokens.issue(&actor, &request).await.map_err(&err)?;
    Ok(HttpResponse::Created().json(IssuedToken {
        token,
        note: "Store this token now: lexgate keeps only its hash and cannot show it again.".to_owned(),
        record,
    }))
}

/// Revokes a token (admins; CSRF header with a session).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No open session and no valid service token", body = ErrorBody), (status = 403, description = "Not allowed; the attempt is audited", body = ErrorBody), (status = 404, description = "No such thing among what the caller may see", body = ErrorBody)))]
pub(crate) async fn token_delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    Authenticated(actor, id): Authenticated<web::Path<String>>,
) -> WebResult {
    let err = web_err(&req);
    session::verify_api_csrf(&req, &state).await.map_err(&err)?;
    state.tokens.revoke(&actor, &id).await.map_err(&err)?;
    Ok(HttpResponse::NoContent().finish())
}
