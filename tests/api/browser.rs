//! End to end in a real browser: headless Chromium, driven through chromedriver's W3C WebDriver
//! HTTP API, follows the link of a real invite email, fills in the accept form and submits it, the
//! way a guest would (CSRF cookie, SameSite, CSP and all); and an admin runs a query in GraphiQL.
//! The browser reaches the loopback addresses only, as on a machine with no internet.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`; CI installs them).

use crate::common::smtp::SmtpSink;
use crate::common::*;
use awc::http::Method;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WAIT: Duration = Duration::from_secs(20);
/// The W3C WebDriver "web element identifier": the key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

#[actix_rt::test]
async fn a_guest_accepts_an_emailed_invite_in_a_real_browser() {
    require_browser();
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    data(
        app.admin(
            INVITE,
            json!({ "input": { "siteId": app.site_id, "emails": ["grace@partner.example"], "role": "GUEST" } }),
        )
        .await,
    );
    let msgs = sink.wait_for(1, WAIT).await;
    assert_eq!(msgs.len(), 1, "no invite email arrived within {WAIT:?}");
    let link = msgs[0].invite_link();
    assert!(
        link.starts_with(&format!("{}/invite/", app.address)),
        "{link}"
    );

    let driver = Chromedriver::start();
    let browser = Browser::open(&driver).await;

    // The guest opens the link, fills in the form and submits it.
    browser.goto(&link).await;
    browser.wait_for("#display_name").await;
    browser.type_into("#display_name", "Zoë Hopper").await;
    browser
        .type_into("#password", "correct horse battery staple")
        .await;
    browser
        .type_into("#password_confirmation", "correct horse battery staple")
        .await;
    browser.click("button[type=submit]").await;

    browser.wait_for("#accepted").await;
    assert_eq!(browser.text("h1").await, "Welcome, Zoë Hopper");
    assert!(
        browser.text("#accepted").await.contains("Docs (Acme)"),
        "{}",
        browser.source().await
    );

    // The link is used now: a second visit shows the invalid-link page.
    browser.goto(&link).await;
    browser.wait_for("#invalid").await;
    assert_eq!(
        browser.text("#invalid").await,
        "This invitation link is not valid"
    );
    let form = browser.find("#display_name").await;
    assert_eq!(
        form.map_err(|e| e["error"].clone()),
        Err(json!("no such element")),
        "the form is still offered"
    );

    browser.quit().await;
    drop(driver);

    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM users WHERE display_name = 'Zoë Hopper' \
             AND email_normalized = 'grace@partner.example' AND password_hash IS NOT NULL"
        ),
        1
    );
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM invites WHERE email = 'grace@partner.example' AND status = 'ACCEPTED'"
        ),
        1
    );
    app.stop().await;
}

/// An admin opens GraphiQL with no internet, puts their token in the headers editor and a query in
/// the query editor by typing, runs it with the run button and reads their email in the result; the
/// page loaded nothing from another origin and broke no CSP rule on the way.
#[actix_rt::test]
async fn an_admin_runs_a_query_in_graphiql_offline() {
    require_browser();
    let app = spawn_app().await;
    let driver = Chromedriver::start();
    let browser = Browser::open(&driver).await;

    // The browser is offline: a host elsewhere is never reached (`.invalid` never resolves anyway).
    let away = browser
        .command(
            Method::POST,
            "/url",
            Some(json!({ "url": "http://offline-check.invalid/" })),
        )
        .await;
    assert!(
        away.as_ref()
            .is_err_and(|e| e.to_string().contains("ERR_PROXY_CONNECTION_FAILED")),
        "another host answered or failed otherwise: {away:?}"
    );

    browser.goto(&format!("{}/graphiql", app.address)).await;
    browser.wait_for("button.graphiql-execute-button").await;
    // The placeholder the page starts with, in the headers editor shown open.
    let editors = "return Array.from(document.querySelectorAll('.graphiql-editors .CodeMirror'), \
                   e => e.CodeMirror.getValue())";
    let before = browser.execute(editors).await.to_string();
    assert!(
        before.contains("Bearer <paste a token>"),
        "no header placeholder: {before}"
    );
    assert!(
        before.contains("me { email }"),
        "no default query: {before}"
    );

    // CodeMirror reads keys from its hidden textarea; Ctrl-A then Backspace empties the editor, and
    // its bracket closing skips over the closing brackets and quotes typed after it.
    const CLEAR: &str = "\u{E009}a\u{E000}\u{E003}";
    let headers = json!({ "Authorization": format!("Bearer {}", app.admin_token) }).to_string();
    browser
        .type_into(
            "section.graphiql-editor-tool .graphiql-editor:not(.hidden) textarea",
            &format!("{CLEAR}{headers}"),
        )
        .await;
    browser
        .type_into(
            "section.graphiql-query-editor textarea",
            &format!("{CLEAR}{{ me {{ email }} }}"),
        )
        .await;
    let typed = browser.execute(editors).await;
    assert_eq!(typed[0], "{ me { email } }", "{typed}");
    assert!(
        typed.as_array().unwrap().contains(&json!(headers)),
        "the headers editor holds {typed}"
    );

    browser.click("button.graphiql-execute-button").await;
    let start = Instant::now();
    let result = loop {
        let text = browser.text("section.result-window").await;
        if text.contains("admin@acme.example") || start.elapsed() > WAIT {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        result.contains(r#""email": "admin@acme.example""#),
        "no email in the result pane: {result}"
    );

    // GraphiQL keeps its tabs in localStorage, the query included, but not the token.
    let start = Instant::now();
    let stored = loop {
        let stored = browser
            .execute("return JSON.stringify(Object.assign({}, localStorage))")
            .await;
        let stored = stored.as_str().unwrap_or_default().to_string();
        if stored.contains("{ me { email } }") || start.elapsed() > WAIT {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(stored.contains("{ me { email } }"), "{stored}");
    assert!(
        !stored.contains(&app.admin_token),
        "the token is stored: {stored}"
    );

    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    browser
        .screenshot(&target.join("test-artifacts/graphiql.png"))
        .await;

    // A dialog: GraphiQL adds a <style> element for it, which the page's CSP allows by nonce.
    browser
        .click("button[aria-label='Open settings dialog']")
        .await;
    browser.wait_for("[role=dialog]").await;

    let loaded = browser
        .execute("return performance.getEntriesByType('resource').map(e => e.name)")
        .await;
    let loaded: Vec<&str> = loaded
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let own = format!("{}/", app.address);
    assert!(
        loaded.iter().all(|u| u.starts_with(&own)),
        "loaded from another origin: {loaded:?}"
    );
    for file in [
        "graphiql.min.js",
        "graphiql.min.css",
        "guestpass-graphiql.js",
    ] {
        assert!(
            loaded.iter().any(|u| u.ends_with(&format!("/{file}"))),
            "{file} not loaded: {loaded:?}"
        );
    }
    assert!(
        loaded.contains(&format!("{}/graphql", app.address).as_str()),
        "{loaded:?}"
    );
    let log = browser.log().await;
    let bad: Vec<&Value> = log
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["source"] == "security")
        .collect();
    assert!(bad.is_empty(), "the page logged errors: {bad:#?}");

    browser.quit().await;
    drop(driver);
    app.stop().await;
}

/// The page's policy and the assets' caching, over plain HTTP: the page allows only its own origin
/// and no inline script, every asset URL it names answers with its type and a year's immutable
/// caching, and nothing answers while GraphiQL is switched off.
#[actix_rt::test]
async fn graphiql_has_a_strict_policy_and_immutable_assets() {
    let app = spawn_app().await;
    let c = app.client();
    let get = |path: String| c.get(format!("{}{path}", app.address)).send();
    let mut page = get("/graphiql".into()).await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |res: &awc::ClientResponse<_>, name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let csp = header(&page, "content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self';",
        "connect-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(csp.contains("style-src 'self' 'nonce-"), "{csp}");
    assert_eq!(header(&page, "cache-control"), "no-store");
    let body = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
    assert!(!body.contains("<script>"), "an inline script: {body}");
    assert!(!body.contains("style="), "an inline style: {body}");
    let again = get("/graphiql".into()).await.unwrap();
    assert_ne!(
        header(&again, "content-security-policy"),
        csp,
        "two responses share a nonce"
    );

    let assets: Vec<String> = body
        .split('"')
        .filter(|s| s.starts_with("/graphiql/assets/"))
        .map(String::from)
        .collect();
    assert_eq!(assets.len(), 6, "{body}");
    for url in &assets {
        let mut res = get(url.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let kind = if url.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert_eq!(
            header(&res, "content-type"),
            format!("{kind}; charset=utf-8"),
            "{url}"
        );
        assert_eq!(
            header(&res, "cache-control"),
            "public, max-age=31536000, immutable",
            "{url}"
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{url}");
        let len = res.body().limit(8 << 20).await.unwrap().len();
        let head = c
            .head(format!("{}{url}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "{url}");
        assert_eq!(header(&head, "content-length"), len.to_string(), "{url}");
    }
    // A URL whose hash is not the content's is not that content.
    let (_, name) = assets[0].rsplit_once('/').unwrap();
    let stale = get(format!("/graphiql/assets/0000000000000000/{name}"))
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
    app.stop().await;

    let off = spawn_app_with(AppOptions {
        workers: false,
        configure: Some(|c| c.graphiql = false),
        ..Default::default()
    })
    .await;
    for path in ["/graphiql", assets[0].as_str()] {
        let res = off
            .client()
            .get(format!("{}{path}", off.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    off.stop().await;
}

/// Fails (never skips) when the browser is not installed.
fn require_browser() {
    for bin in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(bin).exists(),
            "{bin} is missing: this test needs Chromium and chromedriver. \
             Run `apt-get install chromium chromium-driver` (CI's .ci/run installs them)."
        );
    }
}

/// A chromedriver child process on a free port, with a fresh Chromium profile directory. Dropping
/// it (also when a test panics) kills chromedriver and every browser process it started.
struct Chromedriver {
    child: Child,
    url: String,
    profile: PathBuf,
    log: PathBuf,
}

impl Chromedriver {
    fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("gp-browser-{}", uuid::Uuid::new_v4().simple()));
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = dir.join("chromedriver.log");
        // The free port is only free until chromedriver binds it: try again if another process won.
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // its own process group, so that Drop can end the browser along with the driver
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
            let mut driver = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
                profile: profile.clone(),
                log: log.clone(),
            };
            if driver.wait_ready() {
                return driver;
            }
        }
        panic!("chromedriver did not start; its log:\n{}", read_log(&log));
    }

    /// Waits until chromedriver answers on its port; false if it exited first.
    fn wait_ready(&mut self) -> bool {
        let addr = self.url.trim_start_matches("http://").to_string();
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if std::net::TcpStream::connect(&addr).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "chromedriver did not listen on {addr} within {WAIT:?}; its log:\n{}",
            read_log(&self.log)
        );
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // chromedriver's process group: the driver and the Chromium processes it launched
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = self.profile.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// One WebDriver session: the W3C endpoints this test needs, each a small method.
struct Browser {
    http: awc::Client,
    session: String,
}

impl Browser {
    async fn open(driver: &Chromedriver) -> Self {
        let http = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            // The page's console, CSP violations included, for `Browser::log`.
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,800",
                    // No request leaves the machine: every name but the loopback address resolves
                    // to nothing, and whatever would still go out (an address literal) goes to a
                    // proxy on the discard port, where nothing listens. Loopback bypasses proxies.
                    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                    "--proxy-server=http://127.0.0.1:9",
                    "--proxy-bypass-list=127.0.0.1",
                    format!("--user-data-dir={}", driver.profile.display()),
                ],
            },
        } } });
        let (status, body) = request(
            &http,
            Method::POST,
            &format!("{}/session", driver.url),
            Some(caps),
        )
        .await;
        assert_eq!(
            status,
            200,
            "cannot create a browser session: {body}\nchromedriver log:\n{}",
            read_log(&driver.log)
        );
        let id = body["value"]["sessionId"].as_str().expect("a session id");
        Self {
            http,
            session: format!("{}/session/{id}", driver.url),
        }
    }

    /// A WebDriver command: its `value`, or the WebDriver error as `Err`.
    async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let (status, mut res) =
            request(&self.http, method, &format!("{}{path}", self.session), body).await;
        let value = res["value"].take();
        if status == 200 { Ok(value) } else { Err(value) }
    }

    async fn expect(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        self.command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {what} failed: {e}"))
    }

    async fn goto(&self, url: &str) {
        self.expect(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The element matching a CSS selector, or the WebDriver error (e.g. "no such element").
    async fn find(&self, css: &str) -> Result<String, Value> {
        let el = self
            .command(
                Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        Ok(el[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no {ELEMENT_KEY} in {el}"))
            .to_string())
    }

    /// Polls until an element matches (the page may still be loading after a navigation or a submit).
    async fn wait_for(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            match self.find(css).await {
                Ok(id) => return id,
                Err(e) if start.elapsed() > WAIT => panic!(
                    "no {css} after {WAIT:?} ({e}); the page:\n{}",
                    self.source().await
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.wait_for(css).await;
        self.expect(
            Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.wait_for(css).await;
        self.expect(
            Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.wait_for(css).await;
        let text = self
            .expect(Method::GET, &format!("/element/{id}/text"), None)
            .await;
        text.as_str().expect("element text").to_string()
    }

    async fn source(&self) -> String {
        let src = self.expect(Method::GET, "/source", None).await;
        src.as_str().unwrap_or_default().to_string()
    }

    /// Runs a script in the page; its return value.
    async fn execute(&self, script: &str) -> Value {
        self.expect(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// What the page logged since the last call: console messages, failed loads and CSP violations
    /// (chromedriver's log endpoint, enabled by `goog:loggingPrefs`).
    async fn log(&self) -> Vec<Value> {
        let log = self
            .expect(Method::POST, "/se/log", Some(json!({ "type": "browser" })))
            .await;
        log.as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the window.
    async fn screenshot(&self, path: &Path) {
        let png = self.expect(Method::GET, "/screenshot", None).await;
        let png = base64_decode(png.as_str().expect("a base64 PNG"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session, which closes the browser.
    async fn quit(self) {
        self.expect(Method::DELETE, "", None).await;
    }
}

/// One HTTP request to chromedriver: the status and the JSON body.
async fn request(
    http: &awc::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = http.request(method.clone(), url);
    let sent = match body {
        Some(b) => req.send_json(&b).await,
        None => req.send().await,
    };
    let mut res = sent.unwrap_or_else(|e| panic!("chromedriver {method} {url}: {e}"));
    let json = res
        .json::<Value>()
        .limit(16 * 1024 * 1024)
        .await
        .unwrap_or_else(|e| panic!("chromedriver {method} {url}: not JSON: {e}"));
    (res.status().as_u16(), json)
}

/// Standard base64 (a WebDriver screenshot), padding and all.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut n) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}
