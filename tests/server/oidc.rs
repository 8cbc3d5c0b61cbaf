//! Sign-in against a real OpenID provider: the npm package oidc-provider (OpenID Certified),
//! started on a loopback port by each test (tests/oidc/provider.mjs). scripts/test.sh installs
//! it with `npm ci`; the tests fail, never skip, without it.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use server::http::app::Application;
use server::http::oidc::OidcClient;
use server::service::Platform;
use server::settings::OidcSettings;
use server::settings::Secret;

use crate::support::{Backend, corpus_platform, repo_root};

/// oidc-provider on a free loopback port; stopped when dropped.
pub struct Provider {
    pub issuer: String,
    child: Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Provider {
    /// Starts the provider with lexgate registered as a client that returns to `redirect_uri`.
    pub fn start(redirect_uri: &str) -> Self {
        let dir = repo_root().join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is not installed: run scripts/test.sh (it runs `npm ci` in tests/oidc)"
        );
        let port = free_port();
        let child = Command::new(std::env::var_os("LEXGATE_NODE").map(PathBuf::from).unwrap_or("node".into()))
            .current_dir(&dir)
            .args(["provider.mjs", &port.to_string(), redirect_uri])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node (Node.js 20+ is needed for the test OpenID provider)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the OpenID provider did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { issuer: format!("http://127.0.0.1:{port}"), child }
    }

    pub fn settings(&self, redirect_uri: &str) -> OidcSettings {
        OidcSettings {
            issuer: self.issuer.clone(),
            client_id: "lexgate".into(),
            client_secret: Secret::new("lexgate-test-secret"),
            redirect_url: redirect_uri.to_owned(),
            scopes: server::settings::default_scopes(),
            claims: Default::default(),
        }
    }
}

/// An HTTP client with a cookie jar that does not follow redirects, so each step can be checked.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

fn reply(mut r: ureq::http::Response<ureq::Body>) -> Reply {
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Reply { status: r.status().as_u16(), location, body: r.body_mut().read_to_string().unwrap_or_default() }
}

pub fn get(agent: &ureq::Agent, url: &str) -> Reply {
    reply(agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}")))
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http") { location.to_owned() } else { format!("{base}{location}") }
}

/// Follows redirects from `url` until one points at `stop_prefix` (returned, not followed) or a
/// page answers.
fn follow_until(agent: &ureq::Agent, mut url: String, stop_prefix: &str) -> Result<String, Reply> {
    for _ in 0..10 {
        if url.starts_with(stop_prefix) {
            return Ok(url);
        }
        let r = get(agent, &url);
        match r.location.clone() {
            Some(next) => {
                let origin: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                url = absolute(&origin, &next);
            }
            None => return Err(r),
        }
    }
    panic!("too many redirects")
}

/// Signs `login` in at the provider, starting from its authorization URL; returns the callback
/// URL (with code and state) the provider redirects to, without following it.
pub fn provider_login(
    agent: &ureq::Agent,
    provider: &Provider,
    authorize_url: &str,
    callback: &str,
    login: &str,
) -> String {
    let page = follow_until(agent, authorize_url.to_owned(), callback).expect_err("the provider shows its login form");
    assert_eq!(page.status, 200, "{}", page.body);
    let action = page.body.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("a login form");
    let submit = absolute(&provider.issuer, action);
    let r = reply(
        agent
            .post(&submit)
            .send_form([("prompt", "login"), ("login", login), ("password", "any")])
            .expect("submit the login form"),
    );
    let next = r.location.unwrap_or_else(|| panic!("the login form did not redirect: {}", r.body));
    follow_until(agent, absolute(&provider.issuer, &next), callback)
        .unwrap_or_else(|r| panic!("no callback: {}", r.body))
}

/// A corpus platform whose users sign in with the provider, served on a loopback port.
pub async fn oidc_platform() -> (tempfile::TempDir, Platform, Provider, String) {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callback = format!("{base}/signin/callback");
    let provider = tokio::task::spawn_blocking({
        let callback = callback.clone();
        move || Provider::start(&callback)
    })
    .await
    .unwrap();
    let mut settings = (*p.settings).clone();
    settings.bind = format!("127.0.0.1:{port}");
    settings.oidc = Some(provider.settings(&callback));
    let p = Platform { settings: std::sync::Arc::new(settings), ..p };
    (dir, p, provider, base)
}

/// Runs `steps` (blocking HTTP) against the served app.
async fn against_app<T: Send + 'static>(p: &Platform, steps: impl FnOnce() -> T + Send + 'static) -> T {
    let app = Application::build(p).await.expect("start the app (the provider's discovery must succeed)");
    let server = tokio::spawn(app.run_until_stopped());
    let result = tokio::task::spawn_blocking(steps).await;
    server.abort();
    result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_through_the_provider_and_tenant_groups_and_clearance_come_from_the_token() {
    let (_dir, p, provider, base) = oidc_platform().await;
    let issuer = provider.issuer.clone();
    let signin_page = against_app(&p, move || {
        let a = agent();
        let signin = get(&a, &format!("{base}/signin"));
        assert!(signin.body.contains("/signin/oidc"), "the sign-in page offers the provider");
        assert!(!signin.body.contains("alice@acme-bank"), "the development sign-in is not offered");

        let start = get(&a, &format!("{base}/signin/oidc"));
        assert_eq!(start.status, 303);
        let authorize = start.location.unwrap();
        assert!(authorize.starts_with(&issuer), "{authorize}");
        for param in ["code_challenge=", "code_challenge_method=S256", "nonce=", "state=", "scope=openid"] {
            assert!(authorize.contains(param), "{param} missing in {authorize}");
        }
        let callback = provider_login(&a, &provider, &authorize, &format!("{base}/signin/callback"), "olivia");
        let done = get(&a, &callback);
        assert_eq!((done.status, done.location.as_deref()), (303, Some("/ask")), "{}", done.body);
        let ask = get(&a, &format!("{base}/ask"));
        assert_eq!(ask.status, 200);
        assert!(ask.body.contains("Olivia Analyst") && ask.body.contains("tenant acme-bank"), "{}", ask.body);

        // The same callback cannot be replayed: the pending sign-in was used up.
        let replay = get(&a, &callback);
        assert_eq!(replay.status, 400, "{}", replay.body);
        drop(provider);
        signin.body
    })
    .await;
    assert!(signin_page.contains("organisation"));
    let actor = p.storage.actor("oidc:olivia").await.unwrap().expect("the principal is recorded");
    assert_eq!(actor.tenant.as_str(), "acme-bank");
    assert_eq!(actor.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(), ["compliance", "staff"]);
    assert_eq!(actor.clearance.as_str(), "confidential");
    assert_eq!(actor.role.as_str(), "analyst");
    let (events, _) = p.storage.audit_page(None, 0, 10, Some("sign_in"), Some("succeeded")).await.unwrap();
    assert!(events.iter().any(|e| e.actor == "oidc:olivia" && e.detail.contains("\"oidc\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_state_a_missing_tenant_or_an_unknown_tenant_is_rejected_and_no_session_starts() {
    let (_dir, p, provider, base) = oidc_platform().await;
    against_app(&p, move || {
        let callback_prefix = format!("{base}/signin/callback");
        let session_cookie = |a: &ureq::Agent| {
            a.cookie_jar_lock()
                .iter()
                .any(|c| c.name() == server::http::session::SESSION_COOKIE && !c.value().is_empty())
        };
        // State altered on the way back.
        let a = agent();
        let authorize = get(&a, &format!("{base}/signin/oidc")).location.unwrap();
        let callback = provider_login(&a, &provider, &authorize, &callback_prefix, "olivia");
        let forged = regex_replace_param(&callback, "state", "forged-state");
        let r = get(&a, &forged);
        assert_eq!(r.status, 400);
        assert!(r.body.contains("does not belong to this browser"), "{}", r.body);
        assert!(!session_cookie(&a));

        // A callback arriving in a browser that never started a sign-in.
        let r = get(&agent(), &callback);
        assert_eq!(r.status, 400);
        assert!(r.body.contains("No sign-in is in progress"), "{}", r.body);

        // The token carries no tenant, or one lexgate does not serve.
        for (login, message) in [("nomad", "names no organisation"), ("stranger", "not set up on lexgate")] {
            let a = agent();
            let authorize = get(&a, &format!("{base}/signin/oidc")).location.unwrap();
            let callback = provider_login(&a, &provider, &authorize, &callback_prefix, login);
            let r = get(&a, &callback);
            assert_eq!(r.status, 400, "{login}");
            assert!(r.body.contains(message), "{login}: {}", r.body);
            assert!(!session_cookie(&a));
        }

        // The development sign-in is refused while a provider is configured.
        let a = agent();
        let page = get(&a, &format!("{base}/signin"));
        let csrf = page.body.split("name=\"csrf\" value=\"").nth(1).map(|s| s.split('"').next().unwrap_or(""));
        let r = reply(
            a.post(&format!("{base}/signin/dev"))
                .send_form([("csrf", csrf.unwrap_or("")), ("principal_id", "alice@acme-bank")])
                .unwrap(),
        );
        assert_eq!(r.status, 400);
        assert!(!session_cookie(&a));
    })
    .await;
    let (rejected, total) = p.storage.audit_page(None, 0, 10, Some("sign_in"), Some("rejected")).await.unwrap();
    assert_eq!(total, 4, "every rejected sign-in is audited");
    assert!(rejected.iter().all(|e| e.detail.contains("oidc")));
    assert!(p.storage.actor("oidc:nomad").await.unwrap().is_none());
    assert!(p.storage.actor("oidc:stranger").await.unwrap().is_none());
}

fn regex_replace_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let query: Vec<String> = query
        .split('&')
        .map(|kv| if kv.starts_with(&format!("{name}=")) { format!("{name}={value}") } else { kv.to_owned() })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_expired_or_foreign_id_token_is_rejected() {
    let results = tokio::task::spawn_blocking(|| {
        let callback = format!("http://127.0.0.1:{}/signin/callback", free_port());
        let provider = Provider::start(&callback);
        let client = OidcClient::discover(provider.settings(&callback)).expect("discovery");
        let a = agent();
        let (authorize, pending) = client.begin();
        let returned = provider_login(&a, &provider, &authorize, &callback, "oscar");
        let code = returned.split("code=").nth(1).unwrap().split('&').next().unwrap();
        let raw = client.exchange(&pending, code).expect("the provider issues an ID token");
        let now = chrono::Utc::now().timestamp();

        let identity = client.verify_id_token(&raw, &pending.nonce, now).expect("the genuine token verifies");
        assert_eq!(identity.tenant.as_str(), "acme-bank");
        assert_eq!(identity.role.as_str(), "admin");
        assert_eq!(identity.clearance.as_str(), "restricted");

        let parts: Vec<&str> = raw.split('.').collect();
        let payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let exp = payload["exp"].as_i64().unwrap();
        let mut forged = payload.clone();
        forged["tenant"] = "borealis-insurance".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_string());
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        let unsigned = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        let hmac = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#), parts[1], parts[2]);

        let check = |token: &str, nonce: &str, at: i64| match client.verify_id_token(token, nonce, at) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.to_string(),
        };
        vec![
            ("tampered", check(&tampered, &pending.nonce, now)),
            ("expired", check(&raw, &pending.nonce, exp + 3600)),
            ("wrong nonce", check(&raw, "another-sign-in", now)),
            ("alg none", check(&unsigned, &pending.nonce, now)),
            ("hmac", check(&hmac, &pending.nonce, now)),
            ("issued in the future", check(&raw, &pending.nonce, now - 3600)),
        ]
    })
    .await
    .unwrap();
    let expect = [
        ("tampered", "signature is invalid"),
        ("expired", "has expired"),
        ("wrong nonce", "does not belong to this sign-in"),
        ("alg none", "malformed"),
        ("hmac", "unaccepted signature algorithm"),
        ("issued in the future", "issued in the future"),
    ];
    for ((case, got), (_, want)) in results.iter().zip(expect) {
        assert!(got.contains(want), "{case}: {got}");
    }
}
