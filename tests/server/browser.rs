//! Page tests in a real browser: headless Chromium driven over WebDriver (chromedriver) against
//! the lexgate server listening on a loopback port. scripts/test.sh installs Chromium and
//! chromedriver (Debian packages chromium, chromium-driver); the test fails, never skips, without
//! them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::http::app::Application;

use crate::oidc::oidc_platform;
use crate::support::{Backend, corpus_platform, corpus_platform_with, repo_root};

fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: run scripts/test.sh (it installs the Debian packages chromium and chromium-driver) or set {env}",
        path.display()
    );
    path
}

/// One WebDriver request; returns the response's `value`.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to chromedriver");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // One request per connection; the reply ends when chromedriver closes it.
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open, so the reply is read by its length.
    let mut reply = Vec::new();
    let mut buf = [0u8; 8192];
    let payload = loop {
        let n = stream.read(&mut buf).expect("read from chromedriver");
        assert!(n > 0, "chromedriver closed the connection early: {}", String::from_utf8_lossy(&reply));
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let Some((head, raw)) = text.split_once("\r\n\r\n") else { continue };
        let head = head.to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") {
            if raw.ends_with("0\r\n\r\n") {
                break dechunk(raw);
            }
            continue;
        }
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .expect("a content length");
        if raw.len() >= length {
            break raw[..length].to_owned();
        }
    };
    let payload = payload.as_str();
    let value: Value = serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"));
    value["value"].clone()
}

/// The body of a chunked HTTP reply.
fn dechunk(mut raw: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        raw = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// chromedriver with one headless Chromium session; both end when this is dropped.
struct Browser {
    port: u16,
    session: String,
    driver: Child,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ =
            std::panic::catch_unwind(|| webdriver(self.port, "DELETE", &format!("/session/{}", self.session), None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    fn start(base: String, downloads: &Path) -> Self {
        let chromium = tool("LEXGATE_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = tool("LEXGATE_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
                "prefs": { "download.default_directory": downloads.to_string_lossy(), "download.prompt_for_download": false },
            },
        }}});
        let created = webdriver(port, "POST", "/session", Some(&capabilities));
        let session = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        let browser = Self { port, session, driver, base };
        browser.command("POST", "/window/rect", &json!({ "width": 1280, "height": 1000 }));
        // Headless Chromium saves downloads only when told where.
        browser.command(
            "POST",
            "/chromium/send_command",
            &json!({ "cmd": "Page.setDownloadBehavior", "params": { "behavior": "allow", "downloadPath": downloads.to_string_lossy() } }),
        );
        browser
    }

    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        webdriver(self.port, method, &format!("/session/{}{path}", self.session), Some(body))
    }

    fn open(&self, path: &str) -> String {
        self.command("POST", "/url", &json!({ "url": format!("{}{path}", self.base) }));
        self.source()
    }

    fn source(&self) -> String {
        webdriver(self.port, "GET", &format!("/session/{}/source", self.session), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn click(&self, xpath: &str) {
        let found = self.command("POST", "/element", &json!({ "using": "xpath", "value": xpath }));
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {xpath}: {found}"))
            .to_owned();
        self.command("POST", &format!("/element/{id}/click"), &json!({}));
    }

    fn sign_in(&self, principal: &str) {
        webdriver(self.port, "DELETE", &format!("/session/{}/cookie", self.session), None);
        self.open("/signin");
        self.click(&format!("//button[text()='Sign in as {principal}']"));
        // A click can return before the form's redirect lands; wait for it, or the next
        // navigation races it.
        self.wait_for_path("/ask");
    }

    fn element(&self, xpath: &str) -> String {
        let found = self.command("POST", "/element", &json!({ "using": "xpath", "value": xpath }));
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {xpath}: {found}"))
            .to_owned()
    }

    /// Types `text` into a field; for a file input, `text` is the path of the file to choose.
    fn fill(&self, xpath: &str, text: &str) {
        let id = self.element(xpath);
        self.command("POST", &format!("/element/{id}/value"), &json!({ "text": text }));
    }

    /// Waits until the page shows `text` (htmx swaps and redirects land asynchronously).
    fn wait_for_text(&self, text: &str) -> String {
        self.wait_for_text_within(text, Duration::from_secs(60))
    }

    fn wait_for_text_within(&self, text: &str, limit: Duration) -> String {
        let started = Instant::now();
        loop {
            let source = self.source();
            if source.contains(text) {
                return source;
            }
            assert!(started.elapsed() < limit, "never showed {text:?}: {source}");
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Saves a PNG of the viewport.
    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let data = webdriver(self.port, "GET", &format!("/session/{}/screenshot", self.session), None);
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Signs in through the OpenID provider's login form.
    fn sign_in_with_provider(&self, login: &str) {
        // The provider runs on the same host, so this also ends any session there.
        webdriver(self.port, "DELETE", &format!("/session/{}/cookie", self.session), None);
        self.open("/signin");
        self.click("//a[@id='signin-oidc']");
        self.wait_for_text("name=\"login\"");
        self.fill("//input[@name='login']", login);
        self.fill("//input[@name='password']", "any password");
        self.click("//button[@type='submit']");
        self.wait_for_path("/ask");
    }

    fn wait_for_path(&self, path: &str) {
        let started = Instant::now();
        loop {
            let url = webdriver(self.port, "GET", &format!("/session/{}/url", self.session), None);
            if url.as_str().is_some_and(|u| u.strip_prefix(&self.base).is_some_and(|rest| rest.starts_with(path))) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "never reached {path}: at {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_reviewer_reads_the_audit_log_and_downloads_the_packet_and_an_analyst_cannot() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    let app = Application::build(&p).await.expect("bind");
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    let result = tokio::task::spawn_blocking(move || {
        let browser = Browser::start(base, &downloads);

        browser.sign_in("alice@acme-bank");
        assert!(browser.source().contains("Ask the documents you can access"), "the analyst is signed in");
        for path in ["/governance", "/governance/audit"] {
            let page = browser.open(path);
            assert!(page.contains("not allowed") && !page.contains("Risk tier"), "{path}: {page}");
        }

        browser.sign_in("rita@acme-bank");
        let page = browser.open("/governance");
        assert!(page.contains("Risk tier 3"), "{page}");
        browser.click("//a[text()='Audit log']");
        browser.wait_for_path("/governance/audit");
        let log = browser.source();
        assert!(
            log.contains("<h1>Audit log</h1>") && log.contains("read_governance") && log.contains("denied"),
            "{log}"
        );

        browser.open("/governance");
        browser.click("//a[text()='Download the governance packet']");
        let packet = downloads.join("lexgate-governance-packet.zip");
        let started = Instant::now();
        while !packet.is_file() {
            assert!(started.elapsed() < Duration::from_secs(30), "the packet was not downloaded");
            std::thread::sleep(Duration::from_millis(200));
        }
        let bytes = std::fs::read(&packet).unwrap();
        assert!(bytes.starts_with(b"PK") && bytes.windows(9).any(|w| w == b"README.md"));
    })
    .await;
    server.abort();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    // Both refusals of the analyst are in the audit log.
    let denials = p.storage.audit_page(None, 0, 50, Some("read_governance"), Some("denied")).await.unwrap();
    assert_eq!(denials.1, 2);
}

/// Where the page tests leave their screenshots (not committed): target/screenshots.
fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_users_sign_in_through_the_provider_ask_with_citations_and_an_admin_uploads_and_deletes() {
    let (dir, p, provider, base) = oidc_platform().await;
    let app = Application::build(&p).await.expect("start the app");
    let server = tokio::spawn(app.run_until_stopped());
    let pdf_path = dir.path().join("Heron sightings.pdf");
    std::fs::write(&pdf_path, crate::web::heron_pdf()).unwrap();
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let shots = screenshots_dir();

    let result = tokio::task::spawn_blocking(move || {
        let browser = Browser::start(base, &downloads);

        // An analyst signs in at the provider, asks, and follows a citation to the marked span.
        browser.sign_in_with_provider("olivia");
        browser.wait_for_text("Olivia Analyst");
        browser.fill("//input[@name='q']", "How long are customer onboarding files kept?");
        browser.click("//form[contains(@class,'ask')]//button[@type='submit']");
        let page = browser.wait_for_text("<h2>Answer</h2>");
        assert!(page.contains("eight years") && page.contains("cite-marker"), "{page}");
        browser.screenshot(&shots.join("ask.png"));
        browser.click("(//a[@class='cite-marker'])[1]");
        browser.wait_for_path("/passages/");
        let passage = browser.wait_for_text("<mark id=\"cited\">");
        let marked = passage.split("<mark id=\"cited\">").nth(1).unwrap().split("</mark>").next().unwrap();
        assert!(marked.contains("eight years"), "{marked}");
        browser.screenshot(&shots.join("citation.png"));

        // An admin uploads a PDF, watches it ingest, then deletes it and reads the receipt.
        browser.sign_in_with_provider("oscar");
        browser.open("/documents");
        browser.fill("//input[@name='files']", &pdf_path.to_string_lossy());
        browser.fill("//input[@name='owner']", "Facilities");
        browser.click("//button[@id='upload-submit']");
        browser.wait_for_path("/documents/jobs/");
        let done = browser.wait_for_text("id=\"job-done\"");
        assert!(done.contains("Indexed: 1"), "{done}");
        browser.screenshot(&shots.join("upload-progress.png"));
        browser.open("/documents");
        browser.wait_for_text("acme-bank.heron-sightings");
        browser.screenshot(&shots.join("documents.png"));
        browser.open("/documents/acme-bank.heron-sightings/delete");
        browser.fill("//input[@name='reason']", "uploaded to test the page");
        browser.click("//button[@id='confirm-delete']");
        let receipt = browser.wait_for_text("Deletion receipt");
        assert!(receipt.contains("Deleted and verified"), "{receipt}");
        browser.screenshot(&shots.join("deletion-receipt.png"));

        // An analyst of another tenant asking tenant A's question is told nothing is found.
        browser.sign_in_with_provider("bianca");
        browser.fill("//input[@name='q']", "How long does Acme Bank keep customer onboarding files?");
        browser.click("//form[contains(@class,'ask')]//button[@type='submit']");
        let page = browser.wait_for_text("id=\"not-found\"");
        assert!(page.contains("Not found in the documents you can access") && !page.contains("eight years"), "{page}");
        drop(provider);
    })
    .await;
    server.abort();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    assert!(p.storage.document("acme-bank.heron-sightings").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_analyst_accepts_an_obligation_and_confirms_a_control_and_a_reviewer_approves_it() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    let app = Application::build(&p).await.expect("bind");
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let shots = screenshots_dir();

    let result = tokio::task::spawn_blocking(move || {
        let browser = Browser::start(base, &downloads);
        let gaps = |n: usize| format!("<strong id=\"gap-count\">{n}</strong>");
        let obligation = "//a[contains(text(), 'submit an initial notification')]";

        browser.sign_in("greta@acme-bank");
        browser.click("//a[text()='Obligations']");
        browser.wait_for_path("/obligations");
        let register = browser.wait_for_text(&gaps(0));
        assert!(register.contains("Sample Regulation on Reporting ICT-related Incidents"), "{register}");
        browser.click(obligation);
        let detail = browser.wait_for_text("span verified against the stored text");
        assert!(detail.contains("<mark>1. Financial entities shall submit an initial notification"), "{detail}");
        browser.click("//button[@value='accepted']");
        browser.wait_for_text("<td id=\"status\">accepted");
        browser.open("/obligations");
        browser.wait_for_text(&gaps(1));
        browser.screenshot(&shots.join("obligation-register.png"));

        browser.click(obligation);
        browser.wait_for_text("Suggested policy passages");
        browser.click("(//button[@value='confirm'])[1]");
        let detail = browser.wait_for_text("confirmed by greta@acme-bank");
        assert!(
            detail.contains("Reporting Major ICT-related Incidents"),
            "the bank's incident standard is the control: {detail}"
        );
        browser.open("/obligations");
        browser.wait_for_text(&gaps(0));

        browser.sign_in("rita@acme-bank");
        browser.open("/obligations?status=accepted");
        browser.wait_for_text("Waiting for approval");
        browser.click(obligation);
        browser.wait_for_text("Approve: track it as an action");
        browser.fill("//input[@name='owner']", "CISO office");
        browser.fill("//input[@name='due_date']", "2030-01-31");
        browser.click("//button[@value='approved']");
        let detail = browser.wait_for_text("<td id=\"status\">approved");
        assert!(detail.contains("CISO office, due 2030-01-31"), "{detail}");
        browser.screenshot(&shots.join("obligation-detail.png"));
        let register = browser.open("/obligations");
        assert!(register.contains("tracked actions: 1"), "{register}");

        // A reader of the tenant without the regulation's group sees an empty register.
        browser.sign_in("bob@acme-bank");
        let register = browser.open("/obligations");
        assert!(register.contains("No obligations match.") && !register.contains("initial notification"), "{register}");
    })
    .await;
    server.abort();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    let events = p.storage.recent_audit(100).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "obligation_status" && e.outcome == "succeeded").count(), 2);
    assert_eq!(events.iter().filter(|e| e.action == "obligation_control" && e.outcome == "succeeded").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_the_generated_answer_streams_in_verified_sentences_whose_links_open_their_spans() {
    let (dir, p) =
        corpus_platform_with(Backend::Sqlite, |s| s.generator = Some(crate::generate::real_generator())).await;
    let app = Application::build(&p).await.expect("bind");
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let downloads = dir.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let shots = screenshots_dir();

    let result = tokio::task::spawn_blocking(move || {
        let browser = Browser::start(base, &downloads);
        browser.sign_in("alice@acme-bank");
        browser.fill("//input[@name='q']", "How long are customer onboarding files kept?");
        browser.click("//form[contains(@class,'ask')]//button[@type='submit']");
        // The quoted answer comes first; the generated one streams in over server-sent events.
        browser.wait_for_text("Generated by qwen2.5-coder-1.5b-instruct-q4_k_m from the passages below");
        let page = browser.wait_for_text_within("data-state=\"", Duration::from_secs(240));
        assert!(page.contains("data-state=\"done\""), "the model answered: {page}");
        let generated = page.split("id=\"generated-sentences\"").nth(1).unwrap().split("</ol>").next().unwrap();
        assert!(generated.contains("<li>") && generated.contains("class=\"cite-marker\""), "{generated}");
        assert!(page.contains("verified sentence(s)"), "{page}");
        browser.screenshot(&shots.join("generated-answer.png"));

        // A generated sentence's link opens the span that supports it.
        browser.click("//ol[@id='generated-sentences']/li[1]/a[1]");
        browser.wait_for_text("<mark id=\"cited\">");
        browser.screenshot(&shots.join("generated-answer-span.png"));
    })
    .await;
    server.abort();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// On a shared workstation, Back after signing out must not show the last user's answer: every
/// page is `no-store`, so the browser asks again, and the server sends it to sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_back_after_signing_out_shows_nothing_of_the_previous_page() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    let app = Application::build(&p).await.expect("bind");
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    let downloads = dir.path().join("downloads");

    let result = tokio::task::spawn_blocking(move || {
        let browser = Browser::start(base, &downloads);
        browser.sign_in("alice@acme-bank");
        let answer = "identification files are kept for eight years";
        let page = browser.open("/ask?q=How+long+are+customer+onboarding+files+kept%3F");
        assert!(page.contains(answer), "{page}");
        // Positive control: while signed in, Back from another page shows the answer again.
        browser.open("/sessions");
        browser.command("POST", "/back", &json!({}));
        browser.wait_for_text(answer);

        browser.click("//button[text()='Sign out']");
        browser.wait_for_path("/signin");
        browser.command("POST", "/back", &json!({}));
        // Whatever Back lands on, it is not the previous page's text.
        std::thread::sleep(Duration::from_millis(500));
        let after = browser.source();
        assert!(!after.contains(answer) && !after.contains("onboarding files"), "{after}");
        let url = webdriver(browser.port, "GET", &format!("/session/{}/url", browser.session), None);
        assert!(url.as_str().is_some_and(|u| u.ends_with("/signin")), "sent to sign in: {url}");
    })
    .await;
    server.abort();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
