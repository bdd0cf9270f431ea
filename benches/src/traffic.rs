//! The traffic a load run sends: a site's pages, where visitors come from, who they are.
//!
//! Every request target and beacon body is rendered once at start ([`Catalog`]), so sending a
//! hit costs the load generator a random pick, not string formatting. Visitors ([`Visitors`])
//! are of two sorts: first-time visitors who send no cookie and are never seen again, and a pool
//! of returning visitors who send back the `ff_id` the collector last gave them.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, COOKIE, HOST, ORIGIN, REFERER, USER_AGENT};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Host of the tracked site's pages.
const SITE_ORIGIN: &str = "https://shop.example.com";
const SECTIONS: [&str; 7] = ["shop", "blog", "docs", "help", "about", "news", "product"];
const KNOWN_REFERRERS: [&str; 8] = [
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/x1y2z3",
    "https://news.ycombinator.com/",
    "https://www.facebook.com/",
    "https://www.linkedin.com/feed/",
    "https://www.reddit.com/r/webdev/",
];
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
];
/// Share of page views without a referrer (typed, bookmarked, from an app).
const DIRECT_SHARE: f64 = 0.4;
/// Rendered variants per page, each with its own referrer draw.
const VARIANTS_PER_PAGE: usize = 4;

/// What the traffic looks like.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    pub site: String,
    pub pages: usize,
    pub referrers: usize,
    pub new_visitor_share: f64,
    pub beacon_share: f64,
    /// The `Host` header: the collector's address.
    pub host: String,
}

/// Whether a hit is a pixel request or a beacon event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitKind {
    Pixel,
    Beacon,
}

/// Every request a run can send, rendered once.
pub struct Catalog {
    config: TrafficConfig,
    host: HeaderValue,
    pixel_uris: Vec<Uri>,
    beacon_bodies: Vec<Bytes>,
    user_agents: Vec<HeaderValue>,
}

impl Catalog {
    pub fn new(config: TrafficConfig, rng: &mut StdRng) -> Self {
        let referrers = referrer_urls(config.referrers);
        let mut pixel_uris = Vec::with_capacity(config.pages * VARIANTS_PER_PAGE);
        let mut beacon_bodies = Vec::with_capacity(config.pages * VARIANTS_PER_PAGE);
        for page in 0..config.pages {
            let url = page_url(page);
            let title = format!("Page {page} | Example Shop");
            for _ in 0..VARIANTS_PER_PAGE {
                let referrer = if referrers.is_empty() || rng.gen_bool(DIRECT_SHARE) {
                    ""
                } else {
                    referrers[rng.gen_range(0..referrers.len())].as_str()
                };
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("site", &config.site)
                    .append_pair("url", &url)
                    .append_pair("ref", referrer)
                    .append_pair("title", &title)
                    .finish();
                pixel_uris.push(
                    format!("/p.gif?{query}")
                        .parse()
                        .expect("an encoded query is a valid URI"),
                );
                // The tracker names each page view; engagement reports refer to it.
                let pageview_id = footfall_store::id::Id::random().to_string();
                let event = if rng.gen_bool(0.5) {
                    serde_json::json!({"kind": "pageview", "site": config.site, "url": url,
                        "pageview_id": pageview_id, "referrer": referrer, "title": title})
                } else {
                    serde_json::json!({"kind": "engagement", "site": config.site, "url": url,
                        "pageview_id": pageview_id, "engaged_ms": rng.gen_range(1_000..120_000)})
                };
                beacon_bodies.push(Bytes::from(event.to_string()));
            }
        }
        Self {
            host: HeaderValue::from_str(&config.host).expect("an address is a valid Host"),
            user_agents: USER_AGENTS
                .iter()
                .map(|ua| HeaderValue::from_static(ua))
                .collect(),
            config,
            pixel_uris,
            beacon_bodies,
        }
    }

    pub fn config(&self) -> &TrafficConfig {
        &self.config
    }

    /// Draws what the next hit is.
    pub fn kind(&self, rng: &mut StdRng) -> HitKind {
        if self.config.beacon_share > 0.0 && rng.gen_bool(self.config.beacon_share) {
            HitKind::Beacon
        } else {
            HitKind::Pixel
        }
    }

    /// A random hit of `kind`, carrying `cookie` when the visitor has one.
    pub fn request(
        &self,
        kind: HitKind,
        cookie: Option<&HeaderValue>,
        rng: &mut StdRng,
    ) -> Request<Full<Bytes>> {
        let ua = self
            .user_agents
            .choose(rng)
            .expect("there are user agents")
            .clone();
        let builder = Request::builder()
            .header(HOST, self.host.clone())
            .header(USER_AGENT, ua);
        let builder = match cookie {
            Some(cookie) => builder.header(COOKIE, cookie.clone()),
            None => builder,
        };
        let pick = rng.gen_range(0..self.pixel_uris.len());
        match kind {
            HitKind::Pixel => builder
                .method(Method::GET)
                .uri(self.pixel_uris[pick].clone())
                .header(
                    ACCEPT,
                    HeaderValue::from_static("image/avif,image/webp,*/*"),
                )
                .header(REFERER, HeaderValue::from_static(SITE_ORIGIN))
                .body(Full::default()),
            // sendBeacon posts a string as text/plain, so no CORS preflight is needed.
            HitKind::Beacon => builder
                .method(Method::POST)
                .uri("/e")
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain;charset=UTF-8"),
                )
                .header(ORIGIN, HeaderValue::from_static(SITE_ORIGIN))
                .body(Full::new(self.beacon_bodies[pick].clone())),
        }
        .expect("a catalogued request is valid")
    }
}

/// Page `n` of the site; every fifth came from an email campaign.
fn page_url(n: usize) -> String {
    let section = SECTIONS[n % SECTIONS.len()];
    if n.is_multiple_of(5) {
        format!(
            "{SITE_ORIGIN}/{section}/item-{n}?utm_source=newsletter&utm_medium=email&utm_campaign=week-{}",
            n % 52
        )
    } else {
        format!("{SITE_ORIGIN}/{section}/item-{n}")
    }
}

/// `count` distinct referrers: well-known ones first, then blogs.
fn referrer_urls(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| match KNOWN_REFERRERS.get(i) {
            Some(known) => (*known).to_owned(),
            None => format!("https://blog-{i}.example.net/posts/{}", i * 7),
        })
        .collect()
}

/// Who sends a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// A first-time visitor, never seen again.
    New,
    /// Returning visitor number `n` of the pool.
    Returning(usize),
}

/// One connection's share of the visitors, with the cookie each was last given.
pub struct Visitors {
    cookies: Vec<Option<HeaderValue>>,
    new_share: f64,
}

impl Visitors {
    pub fn new(pool: usize, new_share: f64) -> Self {
        Self {
            cookies: vec![None; pool],
            new_share,
        }
    }

    pub fn pick(&self, rng: &mut StdRng) -> Who {
        if self.cookies.is_empty() || (self.new_share > 0.0 && rng.gen_bool(self.new_share)) {
            Who::New
        } else {
            Who::Returning(rng.gen_range(0..self.cookies.len()))
        }
    }

    /// The `Cookie` header this visitor sends, if it has been given an id.
    pub fn cookie(&self, who: Who) -> Option<&HeaderValue> {
        match who {
            Who::New => None,
            Who::Returning(n) => self.cookies[n].as_ref(),
        }
    }

    /// Keeps the id the collector gave, as a browser would; first-time visitors forget it.
    pub fn remember(&mut self, who: Who, cookie: HeaderValue) {
        if let Who::Returning(n) = who {
            self.cookies[n] = Some(cookie);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn catalog(beacon_share: f64) -> Catalog {
        Catalog::new(
            TrafficConfig {
                site: "bench.example".into(),
                pages: 10,
                referrers: 12,
                new_visitor_share: 0.2,
                beacon_share,
                host: "127.0.0.1:8080".into(),
            },
            &mut StdRng::seed_from_u64(1),
        )
    }

    #[test]
    fn pixel_requests_carry_the_site_and_a_page() {
        let c = catalog(0.0);
        let mut rng = StdRng::seed_from_u64(2);
        assert_eq!(c.kind(&mut rng), HitKind::Pixel);
        let req = c.request(HitKind::Pixel, None, &mut rng);
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/p.gif");
        let query = footfall_collector::hit::query::PixelQuery::parse(req.uri().query().unwrap());
        assert_eq!(query.site.as_deref(), Some("bench.example"));
        assert!(query.url.unwrap().starts_with(SITE_ORIGIN));
        assert!(req.headers().get(COOKIE).is_none());
        assert_eq!(req.headers()[HOST], "127.0.0.1:8080");
    }

    #[test]
    fn beacons_are_json_events_of_the_site() {
        let c = catalog(1.0);
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(c.kind(&mut rng), HitKind::Beacon);
        let cookie = HeaderValue::from_static("ff_id=abc");
        let req = c.request(HitKind::Beacon, Some(&cookie), &mut rng);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/e");
        assert_eq!(req.headers()[COOKIE], "ff_id=abc");
        let body = body_of(req);
        let events = footfall_collector::hit::beacon::parse(&body).expect("a valid beacon body");
        assert_eq!(events[0].site(), "bench.example");
    }

    fn body_of(req: Request<Full<Bytes>>) -> Bytes {
        use http_body_util::BodyExt;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(req.into_body().collect())
            .unwrap()
            .to_bytes()
    }

    #[test]
    fn referrers_are_distinct_and_well_known_first() {
        let r = referrer_urls(10);
        assert_eq!(r[0], KNOWN_REFERRERS[0]);
        assert!(r[9].contains("blog-9"));
        let mut unique = r.clone();
        unique.dedup();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn returning_visitors_send_back_what_they_were_given() {
        let mut v = Visitors::new(3, 0.0);
        let mut rng = StdRng::seed_from_u64(4);
        let who = v.pick(&mut rng);
        assert!(matches!(who, Who::Returning(_)));
        assert!(v.cookie(who).is_none(), "not given an id yet");
        v.remember(who, HeaderValue::from_static("ff_id=x"));
        assert_eq!(v.cookie(who).unwrap(), "ff_id=x");
        v.remember(Who::New, HeaderValue::from_static("ff_id=y"));
        assert!(v.cookie(Who::New).is_none());
        assert_eq!(Visitors::new(0, 0.0).pick(&mut rng), Who::New);
    }
}
