//! What the criterion suites share: a pixel [`App`] as the server builds it, and browser-like
//! pixel requests. Kept in the library so the suites do not each carry a copy.

use std::sync::Arc;

use footfall_collector::enrich::Enricher;
use footfall_collector::hit::customer::LinkPolicy;
use footfall_collector::hit::privacy::{OptOutCookies, PrivacyPolicy};
use footfall_collector::hit::visitor::{CookiePolicy, CookieWriter};
use footfall_collector::metrics::Metrics;
use footfall_collector::routes::{App, now_ms};
use footfall_collector::sealer::Sealer;
use footfall_collector::signing::Signer;
use footfall_collector::sink::{Queue, SinkStatus};
use footfall_seal::SecretKey;
use http::Request;

/// An app that pushes its events to `queue`, trusting 10.0.0.0/8 as proxies, with the default
/// privacy policy and no GeoIP database.
pub fn app(queue: Queue) -> App {
    let cookie_policy = CookiePolicy {
        max_age_days: 395,
        same_site: cookie::SameSite::Lax,
        domain: None,
        secure: true,
    };
    App {
        cookie: CookieWriter::new(&cookie_policy),
        opt_out_cookies: OptOutCookies::new(&cookie_policy),
        privacy: PrivacyPolicy {
            honor_dnt: true,
            honor_gpc: true,
            consent_required: false,
        },
        signer: Signer::new(&[7; 32]),
        customer_links: LinkPolicy {
            signer: Signer::new(&[7; 32]),
            max_age_secs: 900,
        },
        kept_params: Default::default(),
        trusted_proxies: "10.0.0.0/8".parse().expect("a valid CIDR"),
        enricher: Enricher::new(None),
        sealer: Arc::new(Sealer::new(
            SecretKey::generate().public_key(),
            60_000,
            now_ms(),
        )),
        queue,
        metrics: Arc::new(Metrics::new()),
        status: Arc::new(SinkStatus::default()),
        allowed_origins: Default::default(),
        rate_limit: None,
    }
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
