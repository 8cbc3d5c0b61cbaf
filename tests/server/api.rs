//! The typed JSON API against its OpenAPI document: the document is pinned by a snapshot, every
//! response a real session gets is validated against the schema the document gives for it, and
//! the shapes of the answer, document detail and deletion receipt are pinned too, so a change in
//! a public shape shows up as a reviewed diff.

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::{Map, Value};

use crate::support::{Backend, corpus_platform};
use crate::web::{browser, heron_pdf, multipart, upload_fields};

/// The OpenAPI document as served.
fn spec() -> Value {
    serde_json::from_str(server::http::openapi::document()).unwrap()
}

/// Follows a local `$ref` (`#/components/schemas/Name`).
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unsupported $ref {r}"));
            resolve(spec, &spec["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Checks `value` against `schema` (the subset of JSON Schema the generated document uses):
/// types, required and unknown properties, items, enums, oneOf/anyOf/allOf and integer bounds.
/// Returns the first mismatch, with its JSON path.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(spec, s, value, at)?;
        }
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let passing = options.iter().filter(|s| check(spec, s, value, at).is_ok()).count();
            let ok = if key == "oneOf" { passing == 1 } else { passing >= 1 };
            if !ok {
                return Err(format!("{at}: {passing} of the {key} options match {value}"));
            }
        }
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => return Err(format!("{at}: {value} is not {t}")),
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_matches(t.as_str().unwrap_or(""), value)) => {
            return Err(format!("{at}: {value} is none of {ts:?}"));
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64())
        && n < min
    {
        return Err(format!("{at}: {n} is under the minimum {min}"));
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                return Err(format!("{at}: required field '{name}' is missing"));
            }
        }
        if let Some(properties) = properties {
            for (name, v) in fields {
                let Some(s) = properties.get(name) else {
                    return Err(format!("{at}: field '{name}' is not in the document"));
                };
                check(spec, s, v, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(spec, s, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Validates a response body against what the document says `METHOD path` answers with `status`.
fn validate(method: &str, path: &str, status: StatusCode, body: &str) -> Value {
    let spec = spec();
    let operation = &spec["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the document");
    let response = &operation["responses"][status.as_u16().to_string()];
    assert!(response.is_object(), "{method} {path} does not document status {status}: {body}");
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"));
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status} has no JSON schema");
    if let Err(e) = check(&spec, schema, &value, "$") {
        panic!("{method} {path} {status} does not match the document: {e}\n{body}");
    }
    value
}

/// The shape of a JSON value: keys kept, leaves replaced by their type. A list of objects becomes
/// one object, the union of its elements' shapes; a list of plain values (or an empty list) is
/// `"<list>"`. Data that differs between machines or runs (scores, times, ids, which cases fail)
/// drops out, and what stays is the public contract.
pub(crate) fn shape(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Bool(_) => "<bool>".into(),
        Value::Number(_) => "<number>".into(),
        Value::String(_) => "<string>".into(),
        Value::Array(items) if items.iter().any(Value::is_object) => {
            let merged = items.iter().filter(|i| i.is_object()).map(shape).reduce(merge).unwrap_or(Value::Null);
            Value::Array(vec![merged])
        }
        Value::Array(_) => "<list>".into(),
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), shape(v))).collect::<Map<_, _>>())
        }
    }
}

/// Two shapes as one: objects take the union of their keys; a null gives way to a value.
fn merge(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::Object(mut x), Value::Object(y)) => {
            for (k, v) in y {
                let merged = match x.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                x.insert(k, merged);
            }
            Value::Object(x)
        }
        (Value::Null, other) | (other, Value::Null) => other,
        (Value::Array(x), Value::Array(y)) => match (x.into_iter().next(), y.into_iter().next()) {
            (Some(p), Some(q)) => Value::Array(vec![merge(p, q)]),
            (Some(p), None) | (None, Some(p)) => Value::Array(vec![p]),
            (None, None) => Value::Array(Vec::new()),
        },
        (a, _) => a,
    }
}

#[test]
fn the_openapi_document_is_generated_and_pinned() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", spec);
}

#[test]
fn every_error_code_is_in_the_table_with_its_status() {
    use server::error::Error;
    use server::http::error::{ERROR_CODES, code_of};
    let errors = [
        (Error::user("x"), 400),
        (Error::Forbidden, 403),
        (Error::Unauthenticated, 401),
        (Error::Token("x".into()), 401),
        (Error::NotFound, 404),
        (Error::Overloaded, 429),
        (Error::RateLimited(3), 429),
        (Error::Internal("x".into()), 500),
    ];
    for (error, status) in errors {
        let code = code_of(&error);
        let row = ERROR_CODES.iter().find(|(c, _, _)| *c == code).unwrap_or_else(|| panic!("{code} not in the table"));
        assert_eq!(row.1, status, "{code}");
    }
    let codes: std::collections::BTreeSet<_> = ERROR_CODES.iter().map(|(c, _, _)| c).collect();
    assert_eq!(codes.len(), ERROR_CODES.len(), "codes are unique");
}

#[actix_web::test]
async fn real_responses_match_the_openapi_document_and_their_shapes_are_pinned() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;

    // Errors: signed out, an unknown document, a body that is not the expected JSON.
    let mut anonymous = browser(&p).await;
    let (status, _, body) = anonymous.get("/api/v1/ask?q=retention").await;
    let error = validate("get", "/api/v1/ask", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));

    let mut alice = browser(&p).await;
    alice.sign_in("alice@acme-bank").await;
    let (status, _, body) = alice.get("/api/v1/ask?q=How+long+are+customer+onboarding+files+kept%3F").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ask = validate("get", "/api/v1/ask", status, &body);
    assert!(!ask["answer"]["citations"].as_array().unwrap().is_empty(), "{body}");
    insta::assert_json_snapshot!("ask_shape", shape(&ask));
    let (status, _, body) = alice.get(&format!("/api/v1/ask?q={}", "x".repeat(2100))).await;
    let error = validate("get", "/api/v1/ask", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));

    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let (status, _, body) = adam.get("/api/v1/documents").await;
    let list = validate("get", "/api/v1/documents", status, &body);
    assert!(list["documents"].as_array().unwrap().len() >= 3, "{body}");
    let (status, _, body) = adam.get("/api/v1/documents/acme-erasure-requests").await;
    let detail = validate("get", "/api/v1/documents/{id}", status, &body);
    assert_eq!(detail["id"], "acme-erasure-requests", "{body}");
    insta::assert_json_snapshot!("document_detail_shape", shape(&detail));
    let (status, _, body) = adam.get("/api/v1/documents/no-such-document").await;
    let error = validate("get", "/api/v1/documents/{id}", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // An upload through the API, its job, an access change and the deletion receipt.
    let (content_type, payload) = multipart(&upload_fields(""), &[("heron.pdf", &heron_pdf())]);
    let (status, _, body) = adam
        .send(
            TestRequest::post()
                .uri("/api/v1/documents")
                .insert_header(("content-type", content_type))
                .insert_header(("X-CSRF-Token", csrf.as_str()))
                .set_payload(payload),
        )
        .await;
    let accepted = validate("post", "/api/v1/documents", status, &body);
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = accepted["links"][0].as_str().unwrap().to_owned();
    let mut finished = Value::Null;
    for _ in 0..600 {
        let (status, _, body) = adam.get(&job).await;
        finished = validate("get", "/api/v1/jobs/{id}", status, &body);
        if finished["status"]["finished"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(finished["status"]["stage"], "done", "{finished}");
    let id = finished["document_id"].as_str().unwrap().to_owned();

    let access = serde_json::json!({
        "owner": "Facilities", "classification": "internal", "groups": ["staff"], "status": "approved",
        "effective_from": "2024-01-01",
    });
    let (status, _, body) = adam
        .send(
            TestRequest::put()
                .uri(&format!("/api/v1/documents/{id}/versions/1/access"))
                .insert_header(("X-CSRF-Token", csrf.as_str()))
                .set_json(&access),
        )
        .await;
    validate("put", "/api/v1/documents/{id}/versions/{version}/access", status, &body);
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = adam
        .send(
            TestRequest::put()
                .uri(&format!("/api/v1/documents/{id}/versions/1/access"))
                .insert_header(("X-CSRF-Token", csrf.as_str()))
                .set_json(serde_json::json!({ "owner": "x", "colour": "blue" })),
        )
        .await;
    let error = validate("put", "/api/v1/documents/{id}/versions/{version}/access", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));

    let (status, _, body) = adam
        .send(
            TestRequest::delete()
                .uri(&format!("/api/v1/documents/{id}"))
                .insert_header(("X-CSRF-Token", csrf.as_str()))
                .set_json(serde_json::json!({ "reason": "schema test" })),
        )
        .await;
    let receipt = validate("delete", "/api/v1/documents/{id}", status, &body);
    assert_eq!(receipt["post_check"]["passed"], true, "{body}");
    insta::assert_json_snapshot!("deletion_receipt_shape", shape(&receipt));

    // The obligation register: list, detail, a review decision, a refused body, a control.
    let mut greta = browser(&p).await;
    greta.sign_in("greta@acme-bank").await;
    let greta_csrf = greta.page_csrf("/obligations").await;
    let (status, _, body) = greta.get("/api/v1/obligations?status=proposed").await;
    let list = validate("get", "/api/v1/obligations", status, &body);
    assert_eq!(list["summary"]["total"], 9, "{body}");
    let id = list["obligations"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, body) = greta.get(&format!("/api/v1/obligations/{id}")).await;
    let detail = validate("get", "/api/v1/obligations/{id}", status, &body);
    let control = detail["suggestions"][0]["chunk_id"].as_str().unwrap().to_owned();
    let post = |path: String, body: Value| {
        TestRequest::post().uri(&path).insert_header(("X-CSRF-Token", greta_csrf.as_str())).set_json(body)
    };
    let (status, _, body) =
        greta.send(post(format!("/api/v1/obligations/{id}/status"), serde_json::json!({ "to": "accepted" }))).await;
    let accepted = validate("post", "/api/v1/obligations/{id}/status", status, &body);
    assert_eq!((accepted["status"].as_str(), accepted["gap"].as_bool()), (Some("accepted"), Some(true)), "{body}");
    let refused = serde_json::json!({ "to": "approved", "owner": "x", "due_date": "2030-01-01", "colour": "blue" });
    let (status, _, body) = greta.send(post(format!("/api/v1/obligations/{id}/status"), refused)).await;
    let error = validate("post", "/api/v1/obligations/{id}/status", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    let decision = serde_json::json!({ "chunk_id": control, "confirm": true });
    let (status, _, _) = greta.send(post(format!("/api/v1/obligations/{id}/controls"), decision)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = greta.get("/api/v1/obligations/no-such-obligation").await;
    let error = validate("get", "/api/v1/obligations/{id}", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    // Service tokens.
    let request =
        serde_json::json!({ "name": "schema-bot", "scopes": ["ask"], "groups": ["staff"], "clearance": "internal" });
    let (status, _, body) = adam
        .send(
            TestRequest::post().uri("/api/v1/tokens").insert_header(("X-CSRF-Token", csrf.as_str())).set_json(&request),
        )
        .await;
    let issued = validate("post", "/api/v1/tokens", status, &body);
    let (status, _, body) = adam.get("/api/v1/tokens").await;
    validate("get", "/api/v1/tokens", status, &body);
    let (status, _, body) = adam
        .send(
            TestRequest::delete()
                .uri(&format!("/api/v1/tokens/{}", issued["record"]["id"].as_str().unwrap()))
                .insert_header(("X-CSRF-Token", csrf.as_str())),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, body) = alice.get("/api/v1/tokens").await;
    let error = validate("get", "/api/v1/tokens", status, &body);
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
}

#[test]
fn the_validator_refuses_what_the_document_does_not_allow() {
    let spec = spec();
    let schema = serde_json::json!({ "$ref": "#/components/schemas/ErrorBody" });
    let good = serde_json::json!({ "error": { "code": "not_found", "message": "Not found.", "request_id": "ab" } });
    assert!(check(&spec, &schema, &good, "$").is_ok());
    let cases = [
        serde_json::json!({ "error": "Not found.", "request_id": "ab" }),
        serde_json::json!({ "error": { "code": "not_found", "message": "Not found." } }),
        serde_json::json!({ "error": { "code": "not_found", "message": 4, "request_id": "ab" } }),
        serde_json::json!({ "error": { "code": "not_found", "message": "x", "request_id": "ab", "trace": "x" } }),
    ];
    for bad in cases {
        assert!(check(&spec, &schema, &bad, "$").is_err(), "{bad}");
    }
    let passage = serde_json::json!({ "$ref": "#/components/schemas/PassageScores" });
    assert!(check(&spec, &passage, &serde_json::json!({ "fused": 0.5, "bm25": null }), "$").is_ok());
    assert!(
        check(&spec, &passage, &serde_json::json!({ "fused": 0.5, "bm25": { "rank": -1, "score": 1.0 } }), "$")
            .is_err()
    );
}
