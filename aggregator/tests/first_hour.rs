//! A newcomer's first hour: `scripts/dev` starts the collector and the dashboard and prints the
//! snippet, the dashboard's address and a token; a page that embeds exactly that snippet,
//! visited in a real headless Chromium, shows up in the dashboard, under the dev banner.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use footfall_store::testing::browser::{Browser, NORMAL_CHROME};
use footfall_store::testing::{self, TestDb};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const SITE: &str = "newcomer.test";

mod run;

use run::{binaries, free_addr};

/// `scripts/dev` in a process group of its own, stopped with the group.
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// What `scripts/dev` printed: the snippet's script tag, the dashboard's URL and the token.
struct Printed {
    script: String,
    dashboard: String,
    token: String,
}

fn read_printed(out: impl std::io::Read) -> Printed {
    let (mut script, mut dashboard) = (None, None);
    for line in BufReader::new(out).lines() {
        let line = line.unwrap();
        let line = line.trim();
        if line.starts_with("<script defer src=") {
            script = Some(line.to_owned());
        } else if let Some(url) = line.strip_prefix("Dashboard:") {
            dashboard = Some(url.trim().to_owned());
        } else if let Some(token) = line.strip_prefix("Token:") {
            return Printed {
                script: script.expect("the snippet comes first"),
                dashboard: dashboard.expect("the dashboard's address comes first"),
                token: token.trim().to_owned(),
            };
        }
    }
    panic!("scripts/dev ended before printing a token");
}

/// Serves one page on 127.0.0.1 that embeds `snippet` with `SITE` named.
async fn serve_page(snippet: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let html = format!(
        "<!doctype html><html><head><title>Hello</title>{}</head><body><p>Hello</p></body></html>",
        snippet.replace("SITE", SITE)
    );
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let html = html.clone();
            let service = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                let mut r = http::Response::new(Full::new(bytes::Bytes::from(html.clone())));
                r.headers_mut()
                    .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
                async move { Ok::<_, std::convert::Infallible>(r) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_through_the_snippet_scripts_dev_prints_shows_in_its_dashboard() {
    let db = TestDb::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let collector = free_addr().to_string();
    let dashboard = free_addr().to_string();
    let mut child = Command::new(root.join("scripts/dev"))
        .env("FOOTFALL_CLICKHOUSE_URL", testing::clickhouse_url())
        .env("FOOTFALL_CLICKHOUSE_DATABASE", &db.name)
        .env("FOOTFALL_LISTEN", &collector)
        .env("FOOTFALL_METRICS_LISTEN", free_addr().to_string())
        .env("FOOTFALL_AGGREGATOR_LISTEN", &dashboard)
        .env("FOOTFALL_DATA_DIR", db.data_dir.path())
        .env("FOOTFALL_DEV_BIN", binaries())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let dev = Dev(child);
    let printed = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::task::spawn_blocking(move || read_printed(out)),
    )
    .await
    .expect("scripts/dev printed its addresses within two minutes")
    .unwrap();
    assert!(printed.script.contains(&format!("http://{collector}/t.js")));
    assert_eq!(printed.dashboard, format!("http://{dashboard}/"));
    assert!(printed.token.starts_with("fft_"), "{}", printed.token);

    let page = serve_page(printed.script.clone()).await;
    let browser = Browser::start_with(
        &[
            NORMAL_CHROME,
            // Else navigator.webdriver is true, and the tracker marks the visit as a bot's.
            "--disable-blink-features=AutomationControlled",
            "--window-size=1280,1400",
        ],
        None,
    )
    .await;
    browser.visit(&format!("http://{page}/hello")).await;
    browser.visit(&printed.dashboard).await;
    browser.type_into("#token", &printed.token).await;
    browser.click("form[action='/login'] button").await;
    browser
        .wait_for("return document.querySelector('.signout')")
        .await;
    let today = format!("{}?site={SITE}&range=today", printed.dashboard);
    let mut shown = false;
    for _ in 0..60 {
        browser.visit(&today).await;
        let found = browser
            .run("return [...document.querySelectorAll('#pages tbody th')].some(th => th.textContent == '/hello')")
            .await;
        if found == true {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(shown, "the visit shows in the dashboard within a minute");
    let text = browser
        .run("return document.body.innerText")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(text.contains("Development mode"), "{text}");
    browser
        .screenshot(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots/first-hour.png"),
        )
        .await;
    browser.quit().await;
    drop(dev);
}

/// A command that fails prints one report: the message, each cause once, no backtrace (even
/// with `RUST_BACKTRACE=1`, as many shells and CI images set it), and exits non-zero.
#[test]
fn a_failing_command_says_what_went_wrong_once_without_a_backtrace() {
    let closed = format!("http://{}", free_addr());
    let dir = binaries();
    let commands: [(&str, &[&str]); 3] = [
        ("footfall-collector", &["migrate"]),
        ("footfall-aggregator", &["migrate"]),
        (
            "footfall-aggregator",
            &[
                "export",
                "--report",
                "pages",
                "--from",
                "2026-01-01",
                "--to",
                "2026-01-02",
            ],
        ),
    ];
    for (binary, args) in commands {
        let out = Command::new(dir.join(binary))
            .args(args)
            .args(["--clickhouse-url", &closed])
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{binary} {args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        let reports = err.lines().filter(|l| l.starts_with("error: ")).count();
        assert_eq!(reports, 1, "one report: {err}");
        assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
        assert!(
            !err.contains("backtrace") && !err.contains("anyhow::"),
            "{err}"
        );
        let mut lines: Vec<_> = err.lines().collect();
        let all = lines.len();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), all, "no line twice: {err}");
    }
}
