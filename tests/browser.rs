//! End to end in a real browser: headless Chromium, driven through chromedriver's W3C WebDriver
//! HTTP API, follows the link of a real invite email, fills in the accept form and submits it, the
//! way a guest would (CSRF cookie, SameSite, CSP and all).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`apt-get install chromium
//! chromium-driver`; CI installs them).

mod common;

use awc::http::Method;
use common::smtp::SmtpSink;
use common::*;
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
