//! What the criterion suites share: a pixel [`App`] as the server builds it, and browser-like
//! pixel requests. Kept in the library so the suites do not each carry a copy.

use std::sync::Arc;

use clap::Parser as _;
use footfall_collector::config::{Cli, Command};
use footfall_collector::enrich::geoip::GeoIp;
use footfall_collector::metrics::Metrics;
use footfall_collector::routes::{App, Wiring, now_ms};
use footfall_collector::sealer::Sealer;
use footfall_collector::sink::{Queue, SinkStatus};
use footfall_seal::SecretKey;
use http::Request;

/// An app as `footfall-collector serve --trusted-proxies 10.0.0.0/8` builds it (default privacy
/// policy), with `geoip` if any, pushing its events to `queue`.
pub fn app(queue: Queue, geoip: Option<Arc<GeoIp>>) -> App {
    let secret = "Jd8fK2mQ9xLz0pRt5vWb7nYc3aHs6gEu1iOk4lMj";
    let argv = [
        "footfall-collector",
        "serve",
        "--secret",
        secret,
        "--trusted-proxies",
        "10.0.0.0/8",
    ];
    let Some(Command::Serve(args)) = Cli::try_parse_from(argv).expect("valid options").command
    else {
        unreachable!("a serve command")
    };
    App::new(
        &args,
        secret.as_bytes(),
        Wiring {
            queue,
            status: Arc::new(SinkStatus::default()),
            sealer: Arc::new(Sealer::new(
                SecretKey::generate().public_key(),
                60_000,
                now_ms(),
            )),
            metrics: Arc::new(Metrics::new()),
            geoip,
            rate_limit: None,
            new_visitors: None,
        },
    )
}

/// A pixel hit for page `page` (a path) as a browser sends it behind a proxy, with `cookie`
/// as its `Cookie` header if any.
pub fn pixel_request(page: &str, cookie: Option<&str>) -> Request<()> {
    let uri = format!(
        "/p.gif?site=shop.example.com&url=https%3A%2F%2Fshop.example.com{}%3Futm_source%3Dnewsletter%26utm_medium%3Demail&ref=https%3A%2F%2Fwww.google.com%2F&title=Red%20shoes",
        page.replace('/', "%2F")
    );
    let mut req = Request::get(uri)
        .header("host", "collector.example.com")
        .header("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36")
        .header("accept", "image/avif,image/webp,image/apng,image/*,*/*;q=0.8")
        .header("x-forwarded-for", "203.0.113.77");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    req.body(()).expect("a valid request")
}
