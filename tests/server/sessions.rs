//! Sessions live on the server: sign-out, an administrator and the time-outs end them, a copied
//! cookie dies with its session, and each sign-in starts a new one.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::test;
use indexer::{Classification, GroupName, TenantId};
use server::domain::PrincipalSeed;
use server::domain::Role;
use server::service::sessions::{self, SessionPolicy};

use crate::on_both_backends;
use crate::support::{Backend, platform};
use crate::web::browser;

const POLICY: SessionPolicy = SessionPolicy { absolute_minutes: 480, idle_minutes: 30 };

pub(crate) async fn seed(p: &server::service::Platform) {
    for (tenant, id, role) in [
        ("acme-bank", "alice@acme-bank", Role::Analyst),
        ("acme-bank", "adam@acme-bank", Role::Admin),
        ("borealis-insurance", "bea@borealis-insurance", Role::Admin),
    ] {
        let tenant = TenantId::parse(tenant).unwrap();
        p.storage.ensure_tenant(&tenant, tenant.as_str()).await.unwrap();
        p.storage
            .upsert_principal(&PrincipalSeed {
                id: id.into(),
                display_name: id.into(),
                tenant,
                role,
                groups: BTreeSet::from([GroupName::parse("staff").unwrap()]),
                clearance: Classification::Internal,
            })
            .await
            .unwrap();
    }
}

/// The session ids listed on `/sessions` for this browser.
fn listed_ids(body: &str) -> Vec<String> {
    body.split("action=\"/sessions/").skip(1).filter_map(|s| s.split('/').next()).map(str::to_owned).collect()
}

#[actix_web::test]
async fn a_copied_cookie_is_dead_after_sign_out_and_sign_in_rotates_the_session() {
    let (_dir, p) = platform(Backend::Sqlite).await;
    seed(&p).await;
    let mut b = browser(&p).await;

    assert_eq!(b.sign_in("alice@acme-bank").await, StatusCode::SEE_OTHER);
    let first = b.cookies.clone();
    assert_eq!(b.get("/sessions").await.0, StatusCode::OK);

    // Signing in again in the same browser replaces the session: the old cookie stops working.
    assert_eq!(b.sign_in("alice@acme-bank").await, StatusCode::SEE_OTHER);
    assert_ne!(b.cookies.get(server::http::session::SESSION_COOKIE), first.get(server::http::session::SESSION_COOKIE));
    let second = b.cookies.clone();
    b.cookies = first;
    assert_eq!(b.get("/api/v1/ask?q=retention").await.0, StatusCode::UNAUTHORIZED, "the replaced session is over");

    // Sign-out ends the session on the server, so a copy of the cookie is dead too.
    b.cookies = second.clone();
    let csrf = b.page_csrf("/sessions").await;
    let (status, _, _) = b.send(test::TestRequest::post().uri("/signout").set_form([("csrf", csrf.as_str())])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    b.cookies = second;
    assert_eq!(b.get("/api/v1/ask?q=retention").await.0, StatusCode::UNAUTHORIZED, "a copied cookie after sign-out");
    let (status, headers, _) = b.get("/ask").await;
    assert_eq!((status, headers.get("location").map(String::as_str)), (StatusCode::SEE_OTHER, Some("/signin")));

    let events = p.storage.recent_audit(20).await.unwrap();
    assert!(events.iter().any(|e| e.action == "sign_out" && e.actor == "alice@acme-bank"));
    assert_eq!(events.iter().filter(|e| e.action == "sign_in" && e.outcome == "succeeded").count(), 2);
}

#[actix_web::test]
async fn an_admin_ends_a_session_of_their_tenant_and_no_other() {
    let (_dir, p) = platform(Backend::Sqlite).await;
    seed(&p).await;
    let mut alice = browser(&p).await;
    alice.sign_in("alice@acme-bank").await;
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let mut bea = browser(&p).await;
    bea.sign_in("bea@borealis-insurance").await;

    // An analyst sees only their own session; an admin every session of the tenant.
    let (_, _, page) = alice.get("/sessions").await;
    assert_eq!(listed_ids(&page).len(), 1, "{page}");
    let (_, _, page) = adam.get("/sessions").await;
    assert!(page.contains("alice@acme-bank") && !page.contains("bea@"), "{page}");
    let ids = listed_ids(&page);
    assert_eq!(ids.len(), 2);
    let (_, _, bea_page) = bea.get("/sessions").await;
    assert!(!bea_page.contains("acme-bank"), "{bea_page}");
    let alice_session =
        ids.iter().find(|id| page.contains(&format!("<code>{id}</code></td><td>alice@acme-bank"))).unwrap().clone();

    // Another tenant's admin cannot end it: "not found", like a session that does not exist.
    let csrf = bea.page_csrf("/sessions").await;
    let uri = format!("/sessions/{alice_session}/end");
    let (status, _, _) = bea.send(test::TestRequest::post().uri(&uri).set_form([("csrf", csrf.as_str())])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(alice.get("/sessions").await.0, StatusCode::OK, "alice is still signed in");

    let csrf = adam.page_csrf("/sessions").await;
    let (status, _, _) = adam.send(test::TestRequest::post().uri(&uri).set_form([("csrf", csrf.as_str())])).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(alice.get("/api/v1/ask?q=retention").await.0, StatusCode::UNAUTHORIZED, "ended by the admin");
    assert_eq!(adam.get("/sessions").await.0, StatusCode::OK, "the admin's own session goes on");

    let events = p.storage.recent_audit(20).await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "end_session" && e.outcome == "succeeded" && e.actor == "adam@acme-bank")
    );
    assert!(events.iter().any(|e| e.action == "end_session" && e.outcome == "not_found"));
}

/// On both backends: the storage side of sessions (look-up by hash, activity, ending, listing).
async fn idle_and_expired_sessions_end(backend: Backend) {
    let (_dir, p) = platform(backend).await;
    seed(&p).await;
    let alice = p.storage.actor("alice@acme-bank").await.unwrap().unwrap();
    let token = sessions::start(&p.storage, &alice, "development", None, POLICY, serde_json::json!({})).await.unwrap();
    let open = sessions::authenticate(&p.storage, &token, POLICY).await.unwrap();
    assert_eq!(open.actor.principal_id, "alice@acme-bank");

    // 31 minutes without a request.
    p.storage.touch_session(&open.session_id, chrono::Utc::now() - chrono::Duration::minutes(31)).await.unwrap();
    assert!(matches!(
        sessions::authenticate(&p.storage, &token, POLICY).await,
        Err(server::error::Error::Unauthenticated)
    ));
    p.storage.touch_session(&open.session_id, chrono::Utc::now()).await.unwrap();
    assert!(sessions::authenticate(&p.storage, &token, POLICY).await.is_err(), "an idle session stays ended");

    // A session past its absolute end, however active.
    let brief = SessionPolicy { absolute_minutes: 0, idle_minutes: 30 };
    let token = sessions::start(&p.storage, &alice, "development", None, brief, serde_json::json!({})).await.unwrap();
    assert!(sessions::authenticate(&p.storage, &token, brief).await.is_err());
    assert!(sessions::authenticate(&p.storage, "not-a-token", POLICY).await.is_err());

    // Listing and ending: the admin sees the open session and ends it; it is over at once.
    let token = sessions::start(&p.storage, &alice, "oidc", None, POLICY, serde_json::json!({})).await.unwrap();
    let adam = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    let listed = sessions::list(&p.storage, &adam, "").await.unwrap();
    assert_eq!(listed.len(), 1, "only the one open session: {listed:?}");
    let bea = p.storage.actor("bea@borealis-insurance").await.unwrap().unwrap();
    assert!(matches!(sessions::end(&p.storage, &bea, &listed[0].id).await, Err(server::error::Error::NotFound)));
    assert!(sessions::authenticate(&p.storage, &token, POLICY).await.is_ok());
    sessions::end(&p.storage, &adam, &listed[0].id).await.unwrap();
    assert!(sessions::authenticate(&p.storage, &token, POLICY).await.is_err());
    assert!(sessions::list(&p.storage, &adam, "").await.unwrap().is_empty());
}

on_both_backends!(idle_and_expired_sessions_end);

/// Finding 13: one principal asking past its rate gets 429 with the seconds to wait, audited;
/// another principal is not held back by it.
#[actix_web::test]
async fn a_principal_asking_past_its_rate_gets_429_and_others_do_not() {
    use actix_web::{App, web};
    let (_dir, p) = platform(Backend::Sqlite).await;
    seed(&p).await;
    let mut state = server::http::app::shared_state(&p).await.unwrap();
    state.ask.rate = server::service::limits::RateLimiter::new(1, 3);
    let service = test::init_service(App::new().app_data(web::Data::new(state)).configure(server::http::routes)).await;
    let mut alice = crate::web::Browser { service, cookies: Default::default() };
    alice.sign_in("alice@acme-bank").await;
    for _ in 0..3 {
        assert_ne!(alice.get("/api/v1/ask?q=retention").await.0, StatusCode::TOO_MANY_REQUESTS);
    }
    let (status, headers, body) = alice.get("/api/v1/ask?q=retention").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let wait: u64 = headers.get("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    let events = p.storage.recent_audit(5).await.unwrap();
    assert!(events.iter().any(|e| e.action == "ask" && e.outcome == "rate_limited"));

    alice.sign_in("adam@acme-bank").await;
    assert_ne!(alice.get("/api/v1/ask?q=retention").await.0, StatusCode::TOO_MANY_REQUESTS, "another principal");
}

/// Finding 13: refusals for want of a session and for a missing CSRF token are audited, with the
/// path but never the query (it can hold a question), and a flood of them is audited at a
/// bounded rate.
#[actix_web::test]
async fn unauthenticated_and_csrf_refusals_are_audited_at_a_bounded_rate() {
    let (_dir, p) = platform(Backend::Sqlite).await;
    seed(&p).await;
    let mut b = browser(&p).await;
    let (status, _, _) = b.get("/api/v1/ask?q=secret+merger+question").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let events = p.storage.recent_audit(5).await.unwrap();
    let refused = events.iter().find(|e| e.action == "request_refused").expect("the refusal is audited");
    assert_eq!(refused.outcome, "unauthenticated");
    assert!(refused.detail.contains("/api/v1/ask") && !refused.detail.contains("merger"), "{}", refused.detail);

    b.sign_in("alice@acme-bank").await;
    let (status, _, _) = b.send(test::TestRequest::post().uri("/signout").set_form([("csrf", "forged")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let events = p.storage.recent_audit(5).await.unwrap();
    assert!(events.iter().any(|e| e.action == "request_refused" && e.outcome == "csrf"));

    let mut anonymous = browser(&p).await;
    for _ in 0..60 {
        anonymous.get("/api/v1/ask?q=x").await;
    }
    let audited = p.storage.recent_audit(200).await.unwrap().iter().filter(|e| e.action == "request_refused").count();
    assert!((20..=25).contains(&audited), "{audited} refusals audited of 62");
}
