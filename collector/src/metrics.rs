//! The collector's Prometheus metrics, served at `/metrics`.
//!
//! Each running collector owns its registry (no global state), so tests can run several
//! collectors in one process. Hot-path counters are resolved once at start and then are plain
//! atomic increments.

use std::fmt;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::hit::customer::Rejected;
use crate::hit::privacy::Withheld;
use crate::sink::metrics::SinkMetrics;
use footfall_store::event::Kind;

/// Why a hit was not accepted. Each has a label value on `footfall_hits_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MissingSite,
    BadSite,
    MissingUrl,
    BadUrl,
    /// An email-open marker whose token this collector did not sign (forged or damaged).
    BadEmailToken,
    /// The in-memory queue to the spool was full.
    Overloaded,
    /// The spool on disk was at its bound (ClickHouse down for long).
    SpoolFull,
    /// Writing the spool failed (disk full, I/O error), and has not recovered yet.
    DiskFailing,
    /// A beacon body that is not valid JSON for events, or breaks a bound.
    BadBeacon,
    /// An engagement of more than a day.
    DwellOutOfRange,
    /// A beacon from a page whose origin is not in FOOTFALL_ALLOWED_ORIGINS.
    OriginNotAllowed,
    /// A client past FOOTFALL_RATE_LIMIT_PER_MINUTE.
    RateLimited,
    /// A custom event whose name is empty, too long or holds control characters.
    BadEvent,
    /// A `POST /optout` or `/optin` not sent by the collector's own confirmation page.
    ForeignOptChange,
}

impl Rejection {
    /// Every reason, in declaration order: `rejected()` indexes counters by the discriminant.
    pub const ALL: [Rejection; 14] = [
        Rejection::MissingSite,
        Rejection::BadSite,
        Rejection::MissingUrl,
        Rejection::BadUrl,
        Rejection::BadEmailToken,
        Rejection::Overloaded,
        Rejection::SpoolFull,
        Rejection::DiskFailing,
        Rejection::BadBeacon,
        Rejection::DwellOutOfRange,
        Rejection::OriginNotAllowed,
        Rejection::RateLimited,
        Rejection::BadEvent,
        Rejection::ForeignOptChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MissingSite => "missing_site",
            Rejection::BadSite => "bad_site",
            Rejection::MissingUrl => "missing_url",
            Rejection::BadUrl => "bad_url",
            Rejection::BadEmailToken => "bad_email_token",
            Rejection::Overloaded => "overloaded",
            Rejection::SpoolFull => "spool_full",
            Rejection::DiskFailing => "disk_failing",
            Rejection::BadBeacon => "bad_beacon",
            Rejection::DwellOutOfRange => "dwell_out_of_range",
            Rejection::OriginNotAllowed => "origin_not_allowed",
            Rejection::RateLimited => "rate_limited",
            Rejection::BadEvent => "bad_event",
            Rejection::ForeignOptChange => "foreign_opt_change",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabel {
    field: &'static str,
}

pub struct Metrics {
    registry: Registry,
    accepted: [Counter; Kind::ALL.len()],
    bots: [Counter; Kind::ALL.len()],
    rejected: [Counter; Rejection::ALL.len()],
    withheld: [Counter; Withheld::ALL.len()],
    customer_links_rejected: [Counter; Rejected::ALL.len()],
    truncated: Family<FieldLabel, Counter>,
    pub queue_depth: Gauge,
    pub queue_bytes: Gauge,
    pub rate_limit_clients: Gauge,
    pub new_visitors_capped: Counter,
    pub sink: SinkMetrics,
    pub geoip_reloads: Counter,
    pub geoip_reload_failures: Counter,
    pub connections: ConnectionMetrics,
}

/// Client connections of the public listener (the metrics listener's are not counted).
#[derive(Clone, Debug, Default)]
pub struct ConnectionMetrics {
    pub open: Gauge,
    /// Open, waiting for a byte without hyper's state: before their first request, or idle
    /// keep-alive connections released.
    pub parked: Gauge,
    pub released: Counter,
    pub timed_out: Counter,
}

impl ConnectionMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "connections_open",
            "Client connections open (each takes one of FOOTFALL_MAX_CONNECTIONS)",
            metrics.open.clone(),
        );
        registry.register(
            "connections_parked",
            "Open connections waiting for their next request without an HTTP connection's buffers: new ones before their first byte, idle keep-alive ones past FOOTFALL_IDLE_RELEASE_MS",
            metrics.parked.clone(),
        );
        registry.register(
            "connections_released",
            "Times an idle keep-alive connection's HTTP buffers were freed (it stays open)",
            metrics.released.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Connections closed because no request head came within FOOTFALL_HEADER_READ_TIMEOUT_MS of the last answer (or of the connection's first byte)",
            metrics.timed_out.clone(),
        );
        metrics
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("footfall");
        let accepted_family = Family::<KindLabel, Counter>::default();
        let bots_family = Family::<KindLabel, Counter>::default();
        let rejected_family = Family::<ReasonLabel, Counter>::default();
        let withheld_family = Family::<ReasonLabel, Counter>::default();
        let customer_links_family = Family::<ReasonLabel, Counter>::default();
        let truncated = Family::<FieldLabel, Counter>::default();
        let queue_depth = Gauge::default();
        let queue_bytes = Gauge::default();
        let rate_limit_clients = Gauge::default();
        let new_visitors_capped = Counter::default();
        let sink = SinkMetrics::register(&mut registry);
        let geoip_reloads = Counter::default();
        let geoip_reload_failures = Counter::default();
        let connections = ConnectionMetrics::register(&mut registry);
        registry.register(
            "hits_accepted",
            "Hits accepted and queued for ClickHouse, by kind",
            accepted_family.clone(),
        );
        // No site label: sites are unbounded, and the share per site is a query on `events`.
        registry.register(
            "hits_bot",
            "Accepted hits flagged as bots (stored, left out of reports), by kind",
            bots_family.clone(),
        );
        registry.register(
            "hits_rejected",
            "Hits not stored, by reason",
            rejected_family.clone(),
        );
        registry.register(
            "hits_withheld",
            "Hits answered but not recorded because of the visitor's privacy choice, by reason",
            withheld_family.clone(),
        );
        registry.register(
            "customer_links_rejected",
            "Customer links not believed (the hit was recorded without the link), by reason: forged, expired, refused (a navigation or cross-site request)",
            customer_links_family.clone(),
        );
        registry.register(
            "fields_truncated",
            "Fields cut to their length bound, by field",
            truncated.clone(),
        );
        registry.register(
            "queue_depth",
            "Events waiting in memory for the spool",
            queue_depth.clone(),
        );
        registry.register(
            "queue_bytes",
            "Bytes of the events acknowledged and not yet durable: queued, or waiting for the spool's next fsync",
            queue_bytes.clone(),
        );
        registry.register(
            "rate_limit_clients",
            "Clients the per-IP rate limit is tracking (0 when it is off)",
            rate_limit_clients.clone(),
        );
        registry.register(
            "new_visitors_capped",
            "New visitors past their network's daily cap: stored as not counted (like bots), given no cookie",
            new_visitors_capped.clone(),
        );
        registry.register(
            "geoip_reloads",
            "New editions of the GeoIP database taken into use",
            geoip_reloads.clone(),
        );
        registry.register(
            "geoip_reload_failures",
            "New editions of the GeoIP database that could not be read (the previous one stays)",
            geoip_reload_failures.clone(),
        );
        Self {
            accepted: Kind::ALL.map(|k| {
                accepted_family
                    .get_or_create(&KindLabel { kind: k.as_str() })
                    .clone()
            }),
            bots: Kind::ALL.map(|k| {
                bots_family
                    .get_or_create(&KindLabel { kind: k.as_str() })
                    .clone()
            }),
            rejected: Rejection::ALL.map(|r| {
                rejected_family
                    .get_or_create(&ReasonLabel { reason: r.as_str() })
                    .clone()
            }),
            withheld: Withheld::ALL.map(|w| {
                withheld_family
                    .get_or_create(&ReasonLabel { reason: w.as_str() })
                    .clone()
            }),
            customer_links_rejected: Rejected::ALL.map(|r| {
                customer_links_family
                    .get_or_create(&ReasonLabel { reason: r.as_str() })
                    .clone()
            }),
            registry,
            truncated,
            queue_depth,
            queue_bytes,
            rate_limit_clients,
            new_visitors_capped,
            sink,
            geoip_reloads,
            geoip_reload_failures,
            connections,
        }
    }

    /// An accepted hit, and whether it is a bot's.
    pub fn accepted(&self, kind: Kind, is_bot: bool) {
        self.accepted[kind as usize].inc();
        if is_bot {
            self.bots[kind as usize].inc();
        }
    }

    pub fn rejected(&self, reason: Rejection) {
        self.rejected[reason as usize].inc();
    }

    pub fn withheld(&self, reason: Withheld) {
        self.withheld[reason as usize].inc();
    }

    pub fn customer_link_rejected(&self, reason: Rejected) {
        self.customer_links_rejected[reason as usize].inc();
    }

    pub fn truncated(&self, field: &'static str) {
        self.truncated.get_or_create(&FieldLabel { field }).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_its_own_counter() {
        let m = Metrics::new();
        for (i, reason) in Rejection::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "ALL is in declaration order");
            for _ in 0..=i {
                m.rejected(reason);
            }
        }
        let text = m.render();
        for (i, reason) in Rejection::ALL.into_iter().enumerate() {
            let line = format!(
                "footfall_hits_rejected_total{{reason=\"{reason}\"}} {}",
                i + 1
            );
            assert!(text.contains(&line), "{line} missing in {text}");
        }
        assert!(text.contains("footfall_spool_bytes 0"), "{text}");
    }

    #[test]
    fn counters_show_up_by_label() {
        let m = Metrics::new();
        m.accepted(Kind::Pageview, false);
        m.accepted(Kind::Pageview, true);
        m.rejected(Rejection::BadUrl);
        m.truncated("url");
        m.withheld(Withheld::DoNotTrack);
        m.customer_link_rejected(Rejected::Expired);
        let text = m.render();
        for line in [
            r#"footfall_hits_accepted_total{kind="pageview"} 2"#,
            r#"footfall_hits_accepted_total{kind="engagement"} 0"#,
            r#"footfall_hits_bot_total{kind="pageview"} 1"#,
            r#"footfall_hits_rejected_total{reason="bad_url"} 1"#,
            r#"footfall_fields_truncated_total{field="url"} 1"#,
            r#"footfall_hits_withheld_total{reason="dnt"} 1"#,
            r#"footfall_hits_withheld_total{reason="opted_out"} 0"#,
            r#"footfall_customer_links_rejected_total{reason="expired"} 1"#,
            r#"footfall_customer_links_rejected_total{reason="refused"} 0"#,
            "footfall_insert_duration_seconds_bucket",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
    }
}
