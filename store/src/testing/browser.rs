//! A real headless Chromium for the tests, driven over WebDriver (chromedriver): the few JSON
//! commands the tests need, over the same small HTTP client as the other tests.
//! `scripts/test` installs Debian's `chromium` and `chromium-driver` where they are missing.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::http::{post, request};

/// The switch that gives the browser an ordinary desktop Chrome's user agent, for tests whose
/// visits must count: headless Chromium's own (`HeadlessChrome`) is classified as a bot.
pub const NORMAL_CHROME: &str = "--user-agent=Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                                 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// A chromedriver process (in a process group of its own, with the browsers it starts) and
/// one session of headless Chromium.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        Self::start_with(&[], None).await
    }

    /// A browser with extra command-line `args` (like `--user-agent=…`), downloading into
    /// `downloads` when given.
    pub async fn start_with(extra: &[&str], downloads: Option<&Path>) -> Self {
        use std::os::unix::process::CommandExt as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver is installed (scripts/test installs Debian's chromium-driver)");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            addr: ([127, 0, 0, 1], port).into(),
            session: String::new(),
            _profile: profile,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(browser.addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args = vec!["--headless".to_owned()];
        args.extend(
            [
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ]
            .map(str::to_owned),
        );
        args.push(format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        ));
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut options = json!({"binary": chromium(), "args": args});
        if let Some(dir) = downloads {
            options["prefs"] = json!({
                "download.default_directory": dir.display().to_string(),
                "download.prompt_for_download": false,
            });
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
        }}});
        let created = browser
            .command("POST", "/session", Some(capabilities))
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        browser
    }

    /// One WebDriver command; returns its `value`.
    pub async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let host = self.addr.to_string();
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ];
        let answer = match body {
            Some(body) => post(self.addr, path, &headers, body.to_string()).await,
            None => request(self.addr, method, path, &headers).await,
        };
        let value: Value = serde_json::from_slice(&answer.body).unwrap();
        assert!(
            answer.status.is_success(),
            "WebDriver {method} {path}: {value}"
        );
        value["value"].clone()
    }

    pub async fn session(&self, method: &str, command: &str, body: Option<Value>) -> Value {
        self.command(
            method,
            &format!("/session/{}/{command}", self.session),
            body,
        )
        .await
    }

    /// Loads `url` and returns once the page has loaded.
    pub async fn visit(&self, url: &str) {
        self.session("POST", "url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn run(&self, script: &str) -> Value {
        self.session(
            "POST",
            "execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The value of cookie `name` as the browser holds it for the current page.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.session("GET", "cookie", None).await;
        cookies
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["value"].as_str().unwrap().to_owned())
    }

    /// Opens a new tab in front (the current one goes to the background) and returns its handle.
    pub async fn new_tab(&self) -> String {
        let tab = self
            .session("POST", "window/new", Some(json!({ "type": "tab" })))
            .await;
        tab["handle"].as_str().unwrap().to_owned()
    }

    pub async fn window(&self) -> String {
        self.session("GET", "window", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn switch_to(&self, handle: &str) {
        self.session("POST", "window", Some(json!({ "handle": handle })))
            .await;
    }

    /// Runs `script`, which ends by calling `done` (its last argument), and returns what it
    /// passed.
    pub async fn run_async(&self, script: &str) -> Value {
        self.session(
            "POST",
            "execute/async",
            Some(json!({ "script": format!("var done = arguments[0]; {script}"), "args": [] })),
        )
        .await
    }

    /// The current page's URL.
    pub async fn url(&self) -> String {
        self.session("GET", "url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Sets the window's size in CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.session(
            "POST",
            "window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves a PNG of the viewport at `path` (creating its folder).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.session("GET", "screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The WebDriver id of the first element matching CSS `selector`, if any.
    pub async fn find(&self, selector: &str) -> Option<String> {
        let found = self
            .session(
                "POST",
                "elements",
                Some(json!({ "using": "css selector", "value": selector })),
            )
            .await;
        found.as_array()?.first().map(|e| {
            e.as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
    }

    /// Clicks the first element matching `selector`.
    pub async fn click(&self, selector: &str) {
        let id = self
            .find(selector)
            .await
            .unwrap_or_else(|| panic!("no element matches {selector}"));
        self.session("POST", &format!("element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Types `text` into the first element matching `selector`.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let id = self
            .find(selector)
            .await
            .unwrap_or_else(|| panic!("no element matches {selector}"));
        self.session(
            "POST",
            &format!("element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Waits (at most 20 s) until `script` (a function body) returns something truthy, and
    /// returns that.
    pub async fn wait_for(&self, script: &str) -> Value {
        for _ in 0..200 {
            let v = self.run(script).await;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for: {script}");
    }

    pub async fn quit(self) {
        self.command("DELETE", &format!("/session/{}", self.session), None)
            .await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser it left behind.
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.driver.id()))
            .status();
        let _ = self.driver.wait();
    }
}

fn chromium() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromium is installed (scripts/test installs Debian's chromium)")
        .to_owned()
}
